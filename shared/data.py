"""Reading the split: tf.data pipelines over subsets/, labels cat=0, dog=1."""

from __future__ import annotations

from pathlib import Path

from shared.errors import PermanentError
from shared.layout import CLASSES, Volume


def subset_dataset(*, volume: Volume, subset: str, image_size: int, batch_size: int, seed: int | None = None,
                   shuffle: bool | None = None):
    """Batches of (uint8-valued float images, float labels of shape (batch, 1)).

    Only the training set is shuffled (by `seed`); validation and test keep file order.
    """
    from tensorflow import keras

    folder = volume.subset(subset)
    if not folder.is_dir():
        raise PermanentError(f"no {subset} subset at {folder}: run the split stage first")
    shuffle = subset == "train" if shuffle is None else shuffle
    return keras.utils.image_dataset_from_directory(
        folder, labels="inferred", label_mode="binary", class_names=list(CLASSES),
        image_size=(image_size, image_size), batch_size=batch_size, shuffle=shuffle, seed=seed, verbose=False,
    )


def load_image(path: Path, *, image_size: int):
    """One file as a (1, size, size, 3) batch, resized as image_dataset_from_directory does."""
    import tensorflow as tf

    data = tf.io.read_file(str(path))
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    image = tf.image.resize(image, (image_size, image_size), method="bilinear")
    return tf.expand_dims(image, 0)
