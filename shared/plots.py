"""The seed's training curves, written as PNGs (no display needed)."""

from __future__ import annotations

from pathlib import Path


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, plt.figure(figsize=(6.4, 4.8), dpi=100)


def training_curves(*, history: dict[str, list[float]], out_dir: Path, title: str = "") -> list[Path]:
    """accuracy.png and loss.png: training as dots, validation as a line, as in the book."""
    written = []
    for metric, label in (("accuracy", "accuracy"), ("loss", "loss")):
        plt, fig = _figure()
        epochs = range(1, len(history.get(metric, [])) + 1)
        plt.plot(epochs, history.get(metric, []), "bo", label=f"Training {label}")
        plt.plot(epochs, history.get(f"val_{metric}", []), "b", label=f"Validation {label}")
        plt.title(f"Training and validation {label}" + (f"\n{title}" if title else ""))
        plt.xlabel("epoch")
        plt.legend()
        path = out_dir / f"{metric}.png"
        tmp = path.with_name(f".{path.name}.tmp.png")
        fig.savefig(tmp)
        plt.close(fig)
        tmp.replace(path)
        written.append(path)
    return written
