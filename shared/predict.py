"""The predict stage: classify image files with a trained model, reporting unreadable files one by one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shared.catalog import ModelName
from shared.errors import PermanentError
from shared.layout import CLASSES, MODEL_FILE, Volume
from shared.models import load_trained
from shared.training import trained_run


@dataclass(frozen=True)
class PredictConfig:
    data_dir: Path
    model: ModelName
    paths: tuple[Path, ...]
    batch_size: int = 32


@dataclass(frozen=True)
class Prediction:
    path: Path
    label: str | None = None
    probability: float | None = None  # of `label`
    p_dog: float | None = None
    error: str | None = None


def expand(paths: tuple[Path, ...]) -> list[Path]:
    """Files as given, folders as their files (recursively, sorted); a missing path stays, to be reported."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        else:
            out.append(path)
    return out


def _load(path: Path, image_size: int):
    import tensorflow as tf

    from shared.data import load_image

    try:
        return load_image(path, image_size=image_size), None
    except tf.errors.NotFoundError:
        return None, "no such file"
    except (tf.errors.InvalidArgumentError, tf.errors.FailedPreconditionError, ValueError):
        return None, "not a readable image"


def predict(*, config: PredictConfig) -> list[Prediction]:
    import numpy as np

    vol = Volume(config.data_dir)
    run = trained_run(vol, ModelName(config.model).value)
    files = expand(config.paths)
    if not files:
        raise PermanentError("no files to classify in " + ", ".join(str(p) for p in config.paths))
    size = run.image_size
    model = load_trained(vol.model_dir(run.model) / MODEL_FILE)
    results: list[Prediction] = []
    batch: list[tuple[Path, object]] = []

    def flush():
        if batch:
            p = model.predict(np.concatenate([img for _, img in batch]), verbose=0).ravel()
            for (path, _), p_dog in zip(batch, p, strict=True):
                label = CLASSES[int(p_dog > 0.5)]
                results.append(Prediction(path, label, float(p_dog if label == "dog" else 1 - p_dog), float(p_dog)))
            batch.clear()

    for path in files:
        image, error = _load(path, size)
        if error:
            flush()  # keep the output in the order the files were given
            results.append(Prediction(path, error=error))
            continue
        batch.append((path, image.numpy()))
        if len(batch) == config.batch_size:
            flush()
    flush()
    return results
