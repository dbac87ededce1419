"""The reports' figures, written as PNGs (no display needed); the training curves are shared/training/curves.py."""

from __future__ import annotations

from pathlib import Path

from shared.core.figures import figure as _figure
from shared.core.figures import png_bytes, pyplot
from shared.core.figures import save as _save


def confusion_matrix(*, matrix: list[list[int]], path: Path, title: str,
                     labels: tuple[str, ...] = ("cat", "dog")) -> Path:
    """Rows: the true class; columns: the predicted one."""
    plt, fig = _figure()
    ax = fig.gca()
    ax.imshow(matrix, cmap="Blues")
    ticks = list(range(len(labels)))
    short = len(labels) > 2
    ax.set_xticks(ticks, labels=list(labels) if short else [f"predicted {c}" for c in labels])
    ax.set_yticks(ticks, labels=list(labels) if short else [f"true {c}" for c in labels])
    if short:
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center", fontsize=8 if short else 16,
                    color="white" if value > peak / 2 else "black")
    ax.set_title(title, fontsize=10)
    return _save(fig, plt, path)


def roc(*, fpr, tpr, auc: float | None, path: Path, title: str) -> Path:
    plt, fig = _figure()
    plt.plot(fpr, tpr, "b", label=f"ROC (AUC {auc:.3f})" if auc is not None else "ROC (AUC undefined)")
    plt.plot([0, 1], [0, 1], "k:", label="chance")
    plt.xlabel("false positive rate (cats called dogs)")
    plt.ylabel("true positive rate (dogs called dogs)")
    plt.title(title, fontsize=10)
    plt.legend(loc="lower right")
    return _save(fig, plt, path)


def image_grid(*, items: list[tuple[object, str]], path: Path, title: str, columns: int = 4,
               empty: str = "no mistakes") -> Path:
    """Images (PIL images or arrays) with a caption each; `empty` where there are none."""
    plt = pyplot()  # subplots makes the figure: a figure() here would never be closed
    rows = max(1, -(-len(items) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3.2 * rows + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (image, caption) in zip(axes.flat, items, strict=False):
        ax.imshow(image, cmap="gray")
        ax.set_title(caption, fontsize=9)
    if not items:
        axes.flat[0].text(0.5, 0.5, empty, ha="center", va="center", fontsize=16)
    fig.suptitle(title)
    return _save(fig, plt, path)


def _band(runs: list[list[float]]):
    """(epochs, mean, low, high) over the epochs every run has."""
    import numpy as np

    length = min(len(r) for r in runs)
    values = np.asarray([r[:length] for r in runs], dtype=float)
    return np.arange(1, length + 1), values.mean(axis=0), values.min(axis=0), values.max(axis=0)


def validation_by_epoch(*, curves: dict[str, list[list[float]]], book: dict[str, float | None], title: str) -> bytes:
    """Every model's validation accuracy by epoch: the mean across its runs, the band their range; the
    book's test accuracy as a marker at the model's last epoch."""
    plt, fig = _figure()
    fig.set_size_inches(9, 5)
    for model, runs in curves.items():
        epochs, mean, low, high = _band(runs)
        (line,) = plt.plot(epochs, mean, label=f"{model} (n={len(runs)})")
        if len(runs) > 1:
            plt.fill_between(epochs, low, high, color=line.get_color(), alpha=0.2)
        if book.get(model) is not None:
            plt.plot([epochs[-1]], [book[model]], marker="*", markersize=12, color=line.get_color(),
                     linestyle="none")
    plt.title(f"Validation accuracy by epoch (mean, band: min-max across seeds; star: the book)\n{title}")
    plt.xlabel("epoch")
    plt.ylabel("validation accuracy")
    plt.legend(fontsize="small")
    return png_bytes(fig, plt)


def train_vs_validation(*, runs: list[dict[str, list[float]]], title: str) -> bytes:
    """Training against validation accuracy (mean across runs, band: their range): the gap is overfitting."""
    plt, fig = _figure()
    for key, style, label in (("accuracy", "o", "training"), ("val_accuracy", "-", "validation")):
        epochs, mean, low, high = _band([r[key] for r in runs])
        plt.plot(epochs, mean, "b" + style, label=f"{label} accuracy", markersize=3)
        if len(runs) > 1:
            plt.fill_between(epochs, low, high, color="b", alpha=0.15)
    plt.title(f"Training and validation accuracy\n{title}")
    plt.xlabel("epoch")
    plt.legend()
    return png_bytes(fig, plt)
