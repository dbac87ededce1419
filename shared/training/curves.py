"""The seed's training curves of a run: accuracy.png and loss.png beside its model."""

from __future__ import annotations

from pathlib import Path

from shared.core.figures import figure, save


def training_curves(*, history: dict[str, list[float]], out_dir: Path, title: str = "") -> list[Path]:
    """accuracy.png and loss.png: training as dots, validation as a line, as in the book."""
    written = []
    for metric, label in (("accuracy", "accuracy"), ("loss", "loss")):
        plt, fig = figure()
        epochs = range(1, len(history.get(metric, [])) + 1)
        plt.plot(epochs, history.get(metric, []), "bo", label=f"Training {label}")
        validation = history.get(f"val_{metric}")
        if validation:  # MNIST, as the seed trains it, has no validation set
            plt.plot(epochs, validation, "b", label=f"Validation {label}")
        what = "Training and validation" if validation else "Training"
        plt.title(f"{what} {label}" + (f"\n{title}" if title else ""))
        plt.xlabel("epoch")
        plt.legend()
        written.append(save(fig, plt, out_dir / f"{metric}.png", tight=False))
    return written
