"""MNIST for the chapter's opening convnet: Keras's download, a local mnist.npz, or generated digits.

Every source ends as arrays in Keras's format (x: uint8 (N, 28, 28), y: integer labels 0-9 (N,)),
checked before anything trains on them.
"""

from __future__ import annotations

import hashlib
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.core.errors import PermanentError, one_line

KERAS, SYNTHETIC = "keras", "synthetic"
KEYS = ("x_train", "y_train", "x_test", "y_test")
# Seven-segment strokes per digit: a top, b top-right, c bottom-right, d bottom, e bottom-left, f top-left, g middle
SEGMENTS = {0: "abcdef", 1: "bc", 2: "abged", 3: "abgcd", 4: "fgbc", 5: "afgcd", 6: "afgedc", 7: "abc",
            8: "abcdefg", 9: "abcdfg"}
_ENDS = {"a": ((0, 0), (1, 0)), "b": ((1, 0), (1, 1)), "c": ((1, 1), (1, 2)), "d": ((0, 2), (1, 2)),
         "e": ((0, 1), (0, 2)), "f": ((0, 0), (0, 1)), "g": ((0, 1), (1, 1))}


@dataclass(frozen=True)
class MnistData:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: dict  # what the numbers were computed on: kind, description, sha256 of the npz

    @property
    def synthetic(self) -> bool:
        return self.source["kind"] == SYNTHETIC


def validate(arrays: dict, *, where: str) -> dict:
    """Keras's format exactly, or a PermanentError that says what is wrong."""
    missing = [k for k in KEYS if k not in arrays]
    if missing:
        raise PermanentError(f"{where} is not an MNIST npz: it lacks {', '.join(missing)} (expected {', '.join(KEYS)})")
    for part in ("train", "test"):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if x.ndim != 3 or x.shape[1:] != (28, 28) or x.dtype != np.uint8:
            raise PermanentError(f"{where}: x_{part} is {x.dtype} {x.shape}, expected uint8 (N, 28, 28)")
        if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
            raise PermanentError(f"{where}: y_{part} is {y.dtype} {y.shape}, expected integers ({len(x)},)")
        if len(x) == 0 or y.min() < 0 or y.max() > 9:
            raise PermanentError(f"{where}: y_{part} must hold labels 0-9 for at least one image")
    return {k: arrays[k] for k in KEYS}


def _check_headers(path: Path) -> None:
    """Each member an .npy whose header's size fits the bytes it holds: a header claiming 10^12 elements
    would otherwise be allocated before anything is read."""
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            with zf.open(info) as f:
                major, _ = np.lib.format.read_magic(f)  # ValueError: not in npy format
                read_header = np.lib.format.read_array_header_1_0 if major == 1 else \
                    np.lib.format.read_array_header_2_0
                shape, _, dtype = read_header(f)
            declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if declared > info.file_size:
                raise ValueError(f"{info.filename} declares {declared:,} bytes of data but holds {info.file_size:,}")


def read_npz(path: Path) -> dict:
    if not path.is_file():
        raise PermanentError(f"--source {path}: no such file (expected keras, synthetic, or an mnist.npz)")
    try:
        _check_headers(path)
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError,
            MemoryError) as e:  # not a zip, truncated, pickled objects, damaged members
        raise PermanentError(f"{path} is not a readable npz file ({one_line(e, limit=200)})") from None
    return validate(arrays, where=str(path))


def keras_arrays() -> dict:
    """keras.datasets.mnist.load_data(), cached under $KERAS_HOME/datasets (on the volume, like VGG16's weights)."""
    from tensorflow import keras

    from shared.volume.locks import keras_download_lock

    try:
        with keras_download_lock():
            (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as e:  # no network, a proxy, a bad checksum: retrying the same way will not help
        raise PermanentError(f"cannot download MNIST through Keras ({type(e).__name__}): put Keras's mnist.npz "
                             "in $KERAS_HOME/datasets/, or pass --source PATH or --source synthetic") from None
    return validate({"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test},
                    where="keras.datasets.mnist")


def digit(rng: np.random.Generator, label: int) -> np.ndarray:
    """One 28x28 digit drawn as jittered seven-segment strokes, blurred, with noise: learnable, not trivial."""
    from PIL import Image, ImageDraw, ImageFilter

    img = Image.new("L", (28, 28), 0)
    draw = ImageDraw.Draw(img)
    w, h = rng.uniform(7, 12), rng.uniform(7, 10)
    x0, y0, slant = rng.uniform(6, 21 - w), rng.uniform(3, 24 - 2 * h), rng.uniform(-2.5, 2.5)

    def at(point):
        px, py = point
        return (x0 + px * w + slant * (1 - py / 2) + rng.normal(0, 0.6), y0 + py * h + rng.normal(0, 0.6))

    for segment in SEGMENTS[label]:
        start, end = _ENDS[segment]
        draw.line([at(start), at(end)], fill=int(rng.integers(180, 256)), width=int(rng.integers(2, 4)))
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.9)))
    noisy = np.asarray(img, dtype=np.float32) + rng.normal(0, 12, size=(28, 28))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def synthetic_arrays(*, train: int, test: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for part, n in (("train", train), ("test", test)):
        y = np.arange(n, dtype=np.uint8) % 10
        rng.shuffle(y)
        out[f"x_{part}"] = np.stack([digit(rng, int(label)) for label in y]) if n else np.zeros((0, 28, 28), np.uint8)
        out[f"y_{part}"] = y
    return out


def write_synthetic(path: Path, *, train: int, test: int, seed: int) -> Path:
    """An mnist.npz of generated digits in Keras's format, written to a temporary name and renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{np.random.default_rng().integers(1 << 62)}.tmp.npz")
    try:
        np.savez_compressed(tmp, **synthetic_arrays(train=train, test=test, seed=seed))
        tmp.replace(path)
    except BaseException:  # a full disk or a kill mid-write leaves no partial file behind
        tmp.unlink(missing_ok=True)
        raise
    return path


def digest(arrays: dict) -> str:
    h = hashlib.sha256()
    for key in KEYS:
        h.update(f"{key}{arrays[key].dtype}{arrays[key].shape}".encode())
        h.update(np.ascontiguousarray(arrays[key]).tobytes())
    return h.hexdigest()


def load(*, source: str, synthetic_path: Path, samples: int, seed: int) -> MnistData:
    """The arrays for --source keras | synthetic | PATH, with a description of where they came from."""
    if source == KERAS:
        arrays, kind, description = keras_arrays(), KERAS, "MNIST (keras.datasets.mnist)"
    elif source == SYNTHETIC:
        if not synthetic_path.is_file():
            write_synthetic(synthetic_path, train=samples, test=max(samples // 6, 10), seed=seed)
        arrays, kind = read_npz(synthetic_path), SYNTHETIC
        description = f"generated digits ({samples} training images, seed {seed})"
    else:
        arrays, kind, description = read_npz(Path(source)), "file", f"local file {Path(source).resolve()}"
    return MnistData(**arrays, source={"kind": kind, "description": description, "sha256": digest(arrays)})
