"""The seed's augmentation preview: nine augmented versions of one training image, by the model's own layers.

Written once per model (reports/<model>/augmentation.png) for the models that augment. Every seed's run
has the same augmentation layers but its own random state; the preview copies the layers' configuration
with one fixed seed and takes the training subset's first image, so it is the same picture whichever run
draws it (several evaluations writing it at once write the same bytes, each under its own temporary name).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shared.core.figures import png_bytes, pyplot
from shared.volume.fsutil import write_bytes

AUGMENTATION_LAYER = "data_augmentation"  # shared/training/models.py names it so
PREVIEW_SEED = 0
GRID = 3


def augmentation_layers(model):
    """The model's augmentation block, or None when it does not augment."""
    for layer in model.layers:
        if layer.name == AUGMENTATION_LAYER:
            return layer
    return None


def preview_block(block):
    """A copy of the augmentation block with PREVIEW_SEED for every layer, in float32 (a model trained in a
    mixed precision keeps its policy in its layers' configuration)."""
    from tensorflow import keras

    config = block.get_config()
    config["dtype"] = "float32"
    for layer in config["layers"]:
        if "seed" in layer["config"]:
            layer["config"]["seed"] = PREVIEW_SEED
        layer["config"]["dtype"] = "float32"
    return keras.Sequential.from_config(config)


def augmentation_png(*, model, image: np.ndarray, title: str) -> bytes | None:
    """The GRID x GRID preview of `image` (float pixels 0-255, H x W x 3) as PNG bytes; None if `model`
    does not augment."""
    block = augmentation_layers(model)
    if block is None:
        return None
    preview = preview_block(block)
    plt = pyplot()
    fig, axes = plt.subplots(GRID, GRID, figsize=(7, 7.4))
    batch = np.asarray(image, dtype=np.float32)[None]
    for ax in axes.flat:
        augmented = np.asarray(preview(batch, training=True))[0]
        ax.imshow(np.clip(augmented, 0, 255).astype("uint8"))
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    return png_bytes(fig, plt)


def write_augmentation(*, model, image: np.ndarray, path: Path, title: str) -> Path | None:
    data = augmentation_png(model=model, image=image, title=title)
    return None if data is None else write_bytes(path, data)
