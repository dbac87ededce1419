"""VGG16 features for feature-extraction: computed once per (weights, image size, split), stored on the volume."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from shared.core.console import progress, say
from shared.core.errors import PermanentError, one_line
from shared.data.pipeline import subset_dataset
from shared.training.precision import precision_policy
from shared.volume.fsutil import (
    clear_stale,
    ensure_free,
    no_follow,
    read_cached,
    read_json,
    replace_dir,
    sha256_file,
    staged_dir,
    write_json,
)
from shared.volume.layout import CLASSES, SUBSETS, Volume

RANDOM_BASE = "conv_base.weights.h5"  # kept with the features when VGG16 is randomly initialised
DTYPE = "<f4"  # features are stored as float32, whatever precision computed them


def weights_identity(*, weights: str, seed: int) -> dict:
    """What VGG16's weights are, in a form that changes whenever they do."""
    if weights == "imagenet":
        return {"weights": "imagenet"}
    if weights == "none":
        return {"weights": "none", "seed": seed}
    return {"weights": "file", "path": str(Path(weights).resolve()), "sha256": sha256_file(Path(weights))}


def feature_key(*, weights_id: dict, image_size: int, split_fingerprint: str, precision: str = "float32") -> str:
    """Stored features are float32 whatever they were computed in; the key tells computations apart."""
    key = {"w": weights_id, "size": image_size, "split": split_fingerprint}
    if precision != "float32":  # float32 keys stay as they were
        key["precision"] = precision
    blob = json.dumps(key, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_base(*, weights: str, seed: int, image_size: int, store: Path | None = None):
    """The conv base for `weights`; random weights are seeded, or read back from a feature store."""
    from tensorflow import keras

    from shared.training.models import conv_base

    if weights != "none":
        return conv_base(weights=weights, image_size=image_size)
    keras.utils.set_random_seed(seed)
    base = conv_base(weights=None, image_size=image_size)
    if store is not None and (store / RANDOM_BASE).exists():
        base.load_weights(store / RANDOM_BASE)
    return base


def ensure_features(*, volume: Volume, split_manifest: dict, weights: str, seed: int, image_size: int,
                    batch_size: int, precision: str = "float32") -> Path:
    """The feature store's folder for these inputs, computing it in one pass per subset if absent."""
    key = feature_key(weights_id=weights_identity(weights=weights, seed=seed), image_size=image_size,
                      split_fingerprint=split_manifest["fingerprint"], precision=precision)
    store = volume.features / key
    with volume.lock(f"features-{key}", what="computing these VGG16 features", wait_s=None):
        problem = store_problem(store, split=split_manifest["fingerprint"])
        if problem is None:  # perhaps computed by another while this one waited
            say(f"reusing VGG16 features at {store}")
            return store
        if store.exists():  # a cache: what a kill or a full disk garbled is computed again, never read
            say(f"warning: the VGG16 features at {store} are unusable ({problem}); computing them again")
        return _compute(volume=volume, split_manifest=split_manifest, weights=weights, seed=seed,
                        image_size=image_size, batch_size=batch_size, key=key, store=store, precision=precision)


def _compute(*, volume: Volume, split_manifest: dict, weights: str, seed: int, image_size: int, batch_size: int,
             key: str, store: Path, precision: str) -> Path:
    import tensorflow as tf
    from tensorflow import keras

    clear_stale(volume.staging, f"features-{key}")
    with precision_policy(precision):  # computed in the run's precision, stored as float32 below
        base = build_base(weights=weights, seed=seed, image_size=image_size)
    images = sum(split_manifest["counts"][s][c] for s in SUBSETS for c in CLASSES)
    ensure_free(volume.root, images * int(np.prod(base.output_shape[1:])) * 4, what="the VGG16 feature store")
    # One compiled function over the whole subset, instead of a predict() call per batch.
    extract = tf.function(lambda x: base(keras.applications.vgg16.preprocess_input(x), training=False))
    with staged_dir(volume.staging, f"features-{key}") as tmp:
        shapes = {}
        for subset in SUBSETS:
            n = sum(split_manifest["counts"][subset][c] for c in CLASSES)
            data = subset_dataset(volume=volume, subset=subset, image_size=image_size, batch_size=batch_size)
            labels, shape = write_batches(tmp / f"{subset}.npy", ((extract(x).numpy(), y) for x, y in data), n=n,
                                          description=f"VGG16 features of {subset}")
            np.save(tmp / f"{subset}.labels.npy", labels)
            shapes[subset] = list(shape)
        if weights == "none":
            base.save_weights(tmp / RANDOM_BASE)
        files = checksums(tmp, SUBSETS)
        write_json(tmp / "meta.json", {"key": key, "weights": weights_identity(weights=weights, seed=seed),
                                       "image_size": image_size, "split": split_manifest["fingerprint"],
                                       "precision": precision, "shapes": shapes, "files": files})
        with volume.replacing(f"features-{key}", what="storing VGG16 features"):  # none reads the old one
            replace_dir(tmp, store)
    say(f"stored VGG16 features at {store}")
    return store


def write_batches(path: Path, batches, *, n: int, description: str) -> tuple[np.ndarray, tuple[int, ...]]:
    """(outputs, labels) batches written as one float32 .npy behind its header: memory stays one batch,
    whatever n is. Returns the labels and the array's shape; a count other than n is a PermanentError."""
    labels = np.zeros((n,), dtype=np.float32)
    at, shape = 0, (n,)
    with open(path, "wb", opener=no_follow) as f, progress(description, n, unit="images") as advance:
        for out, y in batches:
            out = np.ascontiguousarray(out, dtype="<f4")
            if at == 0:
                shape = (n, *out.shape[1:])
                np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})
            if at + len(out) > n:
                raise PermanentError(f"{description}: more images than the {n} the split's manifest says")
            f.write(out.tobytes())
            labels[at:at + len(out)] = np.asarray(y).reshape(-1)
            at += len(out)
            advance(len(out))
    if at != n:
        raise PermanentError(f"{description}: {at} images, where the split's manifest says {n}")
    return labels, shape


META_FIELDS = {"key": str, "shapes": dict, "files": dict}


def checksums(folder: Path, subsets: tuple[str, ...]) -> dict:
    """meta.json's "files": what each subset's arrays are, so a store knows its own files."""
    return {subset: {"dtype": DTYPE, "features": sha256_file(folder / f"{subset}.npy"),
                     "labels": sha256_file(folder / f"{subset}.labels.npy")} for subset in subsets}


def store_problem(store: Path, subsets: tuple[str, ...] = SUBSETS, *, split: str | None = None) -> str | None:
    """Why a feature store is not what its meta.json says it is, or None when it is: the store of this key
    and split, each subset's files those it wrote (sha256: a file of another subset, or rewritten with
    another dtype, is caught), float32, of the recorded shape. A store from before the checksums is
    computed again."""
    meta = read_cached(store / "meta.json", fields=META_FIELDS)
    if meta is None:
        return "no readable meta.json with checksums (written by an older version, or garbled)"
    if meta["key"] != store.name or (split is not None and meta.get("split") != split):
        return f"meta.json describes another store (key {meta['key']}, split {meta.get('split')})"
    for subset in subsets:
        recorded = meta["files"].get(subset)
        if not isinstance(recorded, dict) or recorded.get("dtype") != DTYPE:
            return f"{subset}: meta.json records no float32 files"
        try:
            if (sha256_file(store / f"{subset}.npy"), sha256_file(store / f"{subset}.labels.npy")) != \
                    (recorded.get("features"), recorded.get("labels")):
                return f"{subset}: its files are not those this store wrote (checksums differ)"
            x, y = load_features(store, subset)
            expected = tuple(meta["shapes"][subset])
        except (OSError, ValueError, KeyError, TypeError) as e:  # truncated, garbled, or missing
            return f"{subset}: {one_line(e, limit=120)}"
        if x.dtype != np.dtype(DTYPE) or x.shape != expected or len(y) != x.shape[0]:
            return f"{subset}: {x.dtype} of shape {x.shape} and {len(y)} labels, where meta.json says " \
                   f"float32 of {expected}"
    return None


def load_features(store: Path, subset: str) -> tuple[np.ndarray, np.ndarray]:
    """Memory-mapped: once open, the arrays stay valid even if the store is replaced later (the old files
    live on until unmapped). Open them under `Volume.reading(f"features-{store.name}")`."""
    return np.load(store / f"{subset}.npy", mmap_mode="r"), np.load(store / f"{subset}.labels.npy")


def feature_shape(store: Path) -> tuple[int, ...]:
    return tuple(read_json(store / "meta.json")["shapes"]["train"][1:])
