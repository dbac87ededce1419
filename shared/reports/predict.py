"""The predict stage: classify image files with a trained model, reporting unreadable files one by one."""

from __future__ import annotations

import errno
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from shared.core.errors import PermanentError
from shared.core.hints import train_hint
from shared.core.seeds import DEFAULT_SEED
from shared.training.catalog import SPECS, ModelName
from shared.training.models import load_trained
from shared.training.runs import saved_run, trained_run
from shared.volume.fsutil import read_cached
from shared.volume.layout import CLASSES, MODEL_FILE, Volume, run_key

MAX_IMAGE_BYTES = 64 * 2**20  # Kaggle's largest image is under 1 MB; anything this big is not a photo


@dataclass(frozen=True)
class PredictConfig:
    data_dir: Path
    model: ModelName | None  # None: choose_model()
    paths: tuple[Path, ...]
    batch_size: int = 32
    seed: int = DEFAULT_SEED  # which run of the model


@dataclass(frozen=True)
class Prediction:
    path: Path
    label: str | None = None
    probability: float | None = None  # of `label`
    p_dog: float | None = None
    error: str | None = None


def expand(paths: tuple[Path, ...]) -> list[Path]:
    """Each path given, and each file inside a folder given (recursively, sorted, links to folders not
    followed). Nothing is checked here: `read_regular` checks every file on the descriptor it reads."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            for root, dirs, files in os.walk(path):  # os.walk does not follow links to folders
                dirs.sort()
                out.extend(Path(root) / name for name in sorted(files) if not name.startswith("."))
        else:
            out.append(path)
    return out


def read_regular(path: Path) -> tuple[bytes | None, str | None]:
    """(contents, None) or (None, why not). Checked on the open descriptor, so a file swapped for a link or
    a FIFO after it was listed is refused too: never followed, never waited on."""
    too_big = f"larger than {MAX_IMAGE_BYTES // 2**20} MiB: not an image"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None, "no such file"
    except OSError as e:
        if e.errno == errno.ELOOP:
            return None, "a symbolic link (not followed)"
        if e.errno == errno.ENXIO:  # a socket
            return None, "not a regular file"
        return None, f"cannot be read ({e.strerror})"
    try:
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                return None, "not a regular file"
            if info.st_size > MAX_IMAGE_BYTES:
                return None, too_big
            contents = f.read(MAX_IMAGE_BYTES + 1)  # bounded: the file may grow after fstat
    except OSError as e:
        return None, f"cannot be read ({e.strerror})"
    return (None, too_big) if len(contents) > MAX_IMAGE_BYTES else (contents, None)


def load_file(path: Path, image_size: int):
    """(its bytes, a (1, size, size, 3) batch resized as for training, None) or (None, None, why not)."""
    import tensorflow as tf

    from shared.data.pipeline import image_problem, load_image

    contents, error = read_regular(path)
    if error:
        return None, None, error
    if (problem := image_problem(contents)) is not None:
        return None, None, problem
    try:
        return contents, load_image(contents, image_size=image_size), None
    except (tf.errors.InvalidArgumentError, tf.errors.FailedPreconditionError, ValueError):
        return None, None, "not a readable image"


def choose_model(vol: Volume, seed: int = DEFAULT_SEED) -> tuple[str, str]:
    """(model, why) when none is named: fine-tune, the book's best, if trained; else the trained model with
    the lowest validation loss, preferring those trained on the volume's current split (runs of `seed`)."""
    trained = {s.name.value: saved_run(vol.model_dir(s.name.value, seed)) for s in SPECS.values()}
    trained = {m: r for m, r in trained.items() if r is not None}
    if ModelName.fine_tune.value in trained:
        return ModelName.fine_tune.value, "fine-tune, the chapter's best model"
    if not trained:
        raise PermanentError(f"no trained model on the volume at {vol.root}: train one first, e.g. "
                             f"{train_hint(ModelName.scratch.value)}")
    current = (read_cached(vol.split_manifest) or {}).get("fingerprint")

    def rank(model: str) -> tuple[bool, float]:
        best = vol.model_dir(model, seed) / "best.json"
        loss = (read_cached(best) or {}).get("val_loss")
        return trained[model].split != current, loss if isinstance(loss, float | int) else float("inf")

    model = min(trained, key=rank)
    return model, (f"{model}, the trained model with the lowest validation loss ({rank(model)[1]:.4f}); "
                   f"fine-tune is not trained (trained: {', '.join(trained)})")


def load_run(vol: Volume, model: str, seed: int, *, doing: str):
    """(the trained run, its model.keras loaded): a PermanentError naming the command if it is not trained."""
    key = run_key(model, seed)
    with vol.reading(f"model-{key}", what=f"{doing} with {key}"):  # not replaced while loaded
        run = trained_run(vol, model, seed)
        return run, load_trained(vol.model_dir(run.model, run.seed) / MODEL_FILE)


def predict(*, config: PredictConfig) -> list[Prediction]:
    import numpy as np

    vol = Volume(config.data_dir)
    if config.model is None:
        name, why = choose_model(vol, config.seed)
        print(f"predict: using {why}", file=sys.stderr, flush=True)
    else:
        name = ModelName(config.model).value
    run, model = load_run(vol, name, config.seed, doing="predicting")
    files = expand(config.paths)
    if not files:
        raise PermanentError("no files to classify in " + ", ".join(str(p) for p in config.paths))
    size = run.image_size
    results: list[Prediction] = []
    batch: list[tuple[Path, object]] = []

    def flush():
        if batch:
            # predict() would build and tear down a tf.data pipeline per batch (pipeline_options)
            p = np.asarray(model.predict_on_batch(np.concatenate([img for _, img in batch]))).ravel()
            for (path, _), p_dog in zip(batch, p, strict=True):
                label = CLASSES[int(p_dog > 0.5)]
                results.append(Prediction(path, label, float(p_dog if label == "dog" else 1 - p_dog), float(p_dog)))
            batch.clear()

    for path in files:
        _, image, error = load_file(path, size)
        if error:
            flush()  # keep the output in the order the files were given
            results.append(Prediction(path, error=error))
            continue
        batch.append((path, image.numpy()))
        if len(batch) == config.batch_size:
            flush()
    flush()
    return results
