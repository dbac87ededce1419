"""Reading the split: tf.data pipelines over subsets/, labels cat=0, dog=1.

Images are decoded and resized exactly as `image_dataset_from_directory` does (decode_image, bilinear
resize, float32), but once: after the first epoch they come from memory, not from JPEG again.
"""

from __future__ import annotations

import os

import numpy as np

from shared.core.console import say
from shared.core.errors import PermanentError
from shared.volume.layout import CLASSES, Volume

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
CACHE_SHARE = 0.4  # of physical memory, at most, for decoded images
PREFETCH_BATCHES = 2


def decode_threads() -> int:
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def pipeline_options():
    """tf.data without autotuning. Destroying an iterator waits for its autotuning thread, and with every
    core busy in convolutions that wait lasted 2-9 s here, at random (once per subset of a feature
    extraction of 30 s). Decoding is a small share of the work (about 1 ms an image against 40 for VGG16),
    so one decoding thread per core and a fixed prefetch lose nothing that autotuning would find."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def list_files(*, volume: Volume, subset: str) -> tuple[list[str], np.ndarray]:
    """The subset's files and labels, class by class, each class sorted: image_dataset_from_directory's order."""
    folder = volume.subset(subset)
    if not folder.is_dir():
        raise PermanentError(f"no {subset} subset at {folder}: run the split stage first")
    paths, labels = [], []
    for label, name in enumerate(CLASSES):
        for root, _, files in sorted(os.walk(folder / name), key=lambda entry: entry[0]):
            for fname in sorted(files):
                if fname.lower().endswith(IMAGE_SUFFIXES):
                    paths.append(os.path.join(root, fname))
                    labels.append(label)
    return paths, np.asarray(labels, dtype=np.float32).reshape(-1, 1)


def decode_resize(path, image_size: int):
    import tensorflow as tf

    return resize_decoded(tf.io.read_file(path), image_size)


def resize_decoded(contents, image_size: int):
    """An encoded image (bytes) as float32 pixels in [0, 255], resized as image_dataset_from_directory does."""
    import tensorflow as tf

    image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    image = tf.image.resize(image, (image_size, image_size), method="bilinear")
    image.set_shape((image_size, image_size, 3))
    return image


def memory_allows(nbytes: int) -> bool:
    """Whether `nbytes` may be kept in memory: at most CACHE_SHARE of the machine's."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return False
    return nbytes <= CACHE_SHARE * total


def fits_in_memory(n_images: int, image_size: int) -> bool:
    return memory_allows(n_images * image_size * image_size * 3 * 4)


def subset_dataset(*, volume: Volume, subset: str, image_size: int, batch_size: int, cache: bool = False):
    """Batches of (float32 images in [0, 255], float32 labels of shape (batch, 1)), in file order.

    `cache` keeps decoded images in memory for the passes after the first (when they fit); a single pass
    (features, evaluation) should not cache. Training reads `training_batches` instead.
    """
    paths, labels = list_files(volume=volume, subset=subset)
    data = _decoded(paths, labels, image_size=image_size, cache=cache, subset=subset)
    data = data.batch(batch_size).prefetch(PREFETCH_BATCHES).with_options(pipeline_options())
    data.file_paths = paths
    return data


def training_batches(*, volume: Volume, image_size: int, batch_size: int, seed: int, cache: bool,
                     first_epoch: int, epochs: int):
    """The training subset's epochs first_epoch+1..epochs as one dataset, and the batches in one epoch.

    Each epoch's order is a function of (seed, epoch) alone (epoch_order), not of how many epochs this
    process has read before: a run killed after epoch k and resumed reads exactly what the uninterrupted
    run read (fit it with steps_per_epoch, so Keras keeps one iterator across the epochs). With `cache`,
    the images are decoded once, before the first epoch, and every epoch gathers them from memory.
    """
    import tensorflow as tf

    paths, labels = list_files(volume=volume, subset="train")
    ys = tf.convert_to_tensor(labels)
    if cache and not fits_in_memory(len(paths), image_size):
        say(f"train: {len(paths)} decoded images at {image_size}px do not fit in memory; decoding every epoch")
        cache = False
    if cache and paths:
        images = _decoded(paths, labels, image_size=image_size, cache=False, subset="train") \
            .map(lambda x, _: x).batch(len(paths)).with_options(pipeline_options()).get_single_element()
        one_epoch = lambda e: (tf.data.Dataset.from_tensor_slices(epoch_order(len(paths), seed, e))  # noqa: E731
                               .batch(batch_size).map(lambda i: (tf.gather(images, i), tf.gather(ys, i))))
    else:
        files = tf.convert_to_tensor(paths, dtype=tf.string)
        one_epoch = lambda e: (tf.data.Dataset.from_tensor_slices(epoch_order(len(paths), seed, e))  # noqa: E731
                               .map(lambda i: (decode_resize(tf.gather(files, i), image_size), tf.gather(ys, i)),
                                    num_parallel_calls=decode_threads(), deterministic=True)
                               .batch(batch_size))
    return _by_epoch(one_epoch, n=len(paths), batch_size=batch_size, first_epoch=first_epoch, epochs=epochs)


def array_batches(x: np.ndarray, y: np.ndarray, *, batch_size: int, seed: int, first_epoch: int, epochs: int):
    """`training_batches` for arrays in memory (stored features): Keras's own shuffle of arrays restarts
    its sequence in every process, so a resumed run would see other batches."""
    import tensorflow as tf

    xs, ys = tf.convert_to_tensor(x), tf.convert_to_tensor(y)  # captured by reference, not embedded in a graph
    order = lambda e: tf.data.Dataset.from_tensor_slices(epoch_order(len(x), seed, e)).batch(batch_size)  # noqa: E731
    return _by_epoch(lambda e: order(e).map(lambda i: (tf.gather(xs, i), tf.gather(ys, i))),
                     n=len(x), batch_size=batch_size, first_epoch=first_epoch, epochs=epochs)


def epoch_order(n: int, seed: int, epoch):
    """A permutation of range(n) that depends on (seed, epoch) alone. Stateless (Philox keyed by the pair):
    no global or op seed enters, so every seed works, 0 included (tf.data's seeded shuffle compared a
    traced op seed with 0 when the global seed was 0, and `train --seed 0` exited 70)."""
    import tensorflow as tf

    key = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
    return tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=key, alg="philox")


def _by_epoch(one_epoch, *, n: int, batch_size: int, first_epoch: int, epochs: int):
    import tensorflow as tf

    data = tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch)
    return data.prefetch(PREFETCH_BATCHES).with_options(pipeline_options()), max(-(-n // batch_size), 1)


def _decoded(paths: list[str], labels: np.ndarray, *, image_size: int, cache: bool, subset: str):
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((paths, labels))
    data = data.map(lambda p, y: (decode_resize(p, image_size), y), num_parallel_calls=decode_threads(),
                    deterministic=True)
    if cache and not fits_in_memory(len(paths), image_size):
        say(f"{subset}: {len(paths)} decoded images at {image_size}px do not fit in memory; decoding every epoch")
        cache = False
    return data.cache() if cache else data  # one in-memory cache, shared by every epoch that reads it


MAX_PIXELS = 40_000_000  # Kaggle's photos are at most 500x500; a 14000x14000 PNG is a decompression bomb


def image_problem(contents: bytes) -> str | None:
    """Why encoded bytes are no image to decode, read from the header alone (nothing is decoded yet)."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(contents)) as im:
            width, height = im.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        return f"more pixels than a photo has, a decompression bomb ({e})"
    except (OSError, ValueError):
        return "not a readable image"
    if width * height > MAX_PIXELS:
        return f"{width}x{height} pixels: more pixels than a photo has ({MAX_PIXELS:,} at most)"
    return None


def load_image(contents: bytes, *, image_size: int):
    """One encoded image as a (1, size, size, 3) batch, resized as for training."""
    import tensorflow as tf

    return tf.expand_dims(resize_decoded(contents, image_size), 0)
