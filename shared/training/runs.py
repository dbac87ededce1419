"""A training run: the options as given (TrainConfig), the run they resolve to (TrainRun, saved in config.json
and the state file), and the finished runs on the volume."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path

from shared.core.errors import PermanentError, UsageError
from shared.core.hints import train_hint
from shared.core.numbers import parse_number
from shared.core.seeds import DEFAULT_SEED, SEED_BOUNDS
from shared.training.catalog import ModelName, ModelSpec, spec
from shared.training.models import IMAGE_SIZE
from shared.training.precision import PRECISIONS, resolve_precision
from shared.training.strategy import STRATEGIES
from shared.volume.fsutil import read_cached
from shared.volume.layout import COMPLETE, Volume

MAX_LEARNING_RATE = 10.0
MAX_EPOCHS = 10_000  # --epochs and CATSDOGS_EPOCHS_*


@dataclass(frozen=True)
class TrainConfig:
    """The options as given; `resolve` turns them into a TrainRun."""

    data_dir: Path
    model: ModelName
    epochs: int | None = None  # None: the seed's number for this model
    batch_size: int = 32
    image_size: int | None = None  # None: 180, or the base model's for fine-tune
    learning_rate: float | None = None  # None: rmsprop's default, 1e-5 for fine-tune
    seed: int = DEFAULT_SEED  # another seed is another run, beside this one
    weights: str = "imagenet"  # imagenet | none | PATH
    deterministic: bool = True
    force: bool = False
    require_gpu: bool = False
    precision: str = "float32"  # float32 (the seed's) | mixed_float16 | mixed_bfloat16 | auto (the hardware's)
    xla: bool | None = None  # None: Keras decides ("auto")
    cache: bool = True  # decoded images in memory after the first epoch
    strategy: str = "auto"  # auto (mirrored over several GPUs) | single | mirrored
    frozen_cache: bool = True  # validation computes a frozen prefix once (shared/training/frozen.py); same numbers
    summary: bool = False  # print the model's summary before training, as the seed's model.summary()


@dataclass(frozen=True)
class TrainRun:
    """Everything a run's result depends on, saved as config.json's "run" and in the state file.

    A finished or half-finished run is reused only if its saved TrainRun equals this one.
    """

    model: str
    epochs: int
    batch_size: int
    image_size: int
    learning_rate: float | None
    seed: int
    weights: str | None  # None: no VGG16; "imagenet", "none" (random) or a weights file
    deterministic: bool
    precision: str  # what the run computes in: --precision auto resolved for this hardware
    xla: bool | None
    split: str  # the split manifest's fingerprint

    @property
    def spec(self) -> ModelSpec:
        return spec(self.model)

    @classmethod
    def from_dict(cls, data: object) -> TrainRun | None:
        """None for anything not written by this version (missing or extra fields): equal to no run."""
        names = {f.name for f in fields(cls)}
        return cls(**data) if isinstance(data, dict) and set(data) == names else None


def saved_run(folder: Path) -> TrainRun | None:
    """The run a finished model folder holds, or None."""
    if not (folder / COMPLETE).exists():
        return None
    config = read_cached(folder / "config.json")  # garbled or of another shape: no usable run, retrain it
    return TrainRun.from_dict(config.get("run")) if config else None


def folder_seed(name: str) -> int | None:
    """The seed a run folder's name says: `seed-<S>` with S written as `str(S)` would (ASCII digits, no
    leading zero), else None: `seed-01` or `seed-²` are not runs, however int() would read them."""
    text = name.removeprefix("seed-")
    try:
        seed = parse_number(text, name="seed", low=SEED_BOUNDS[0], high=SEED_BOUNDS[1])
    except UsageError:
        return None
    return seed if text != name and str(seed) == text else None


def finished_seeds(vol: Volume, model: str) -> list[int]:
    """The seeds of `model` with a finished run, in increasing order: a folder counts when its own record
    (config.json) says this model and this seed. One whose record is unreadable is still listed, so that
    trained_run can say what is wrong with it; one whose record names another run is not."""
    found = []
    for folder in (vol.models / model).glob("seed-*"):
        seed = folder_seed(folder.name)
        if seed is None or not (folder / COMPLETE).exists():
            continue
        run = saved_run(folder)
        if run is None or (run.model, run.seed) == (model, seed):
            found.append(seed)
    return sorted(found)


def trained_run(vol: Volume, model: str, seed: int = DEFAULT_SEED) -> TrainRun:
    """The run of a finished model, or a PermanentError that says what to do."""
    folder = vol.model_dir(model, seed)
    if not (folder / COMPLETE).exists():
        others = [s for s in finished_seeds(vol, model) if s != seed]
        also = f" (trained seeds: {', '.join(map(str, others))}; pick one with --seed)" if others else ""
        raise PermanentError(f"{model} is not trained with seed {seed} (no {folder}/{COMPLETE}){also}: train it "
                             f"first: {train_hint(model, seed=seed)}")
    run = saved_run(folder)
    if run is None:
        raise PermanentError(f"{folder}/config.json is unreadable or from another version of catsdogs: "
                             f"retrain it: {train_hint(model, force=True, seed=seed)}")
    if (run.model, run.seed) != (model, seed):  # copied or renamed by hand: its folder says otherwise
        raise PermanentError(f"{folder}/config.json records {run.model} with seed {run.seed}, not {model} with "
                             f"seed {seed}: move it back, or retrain it: {train_hint(model, force=True, seed=seed)}")
    return run


def check_base(base: TrainRun, *, image_size: int, weights: str, split: str) -> None:
    """A model that starts from `base` must agree with it on what both depend on (exit 3 if not): its reports
    would otherwise claim weights, a size or a split its starting point never had."""
    retrain = train_hint(base.model, force=True, seed=base.seed)
    if base.split != split:
        raise PermanentError(f"the {base.model} model (seed {base.seed}) was trained on another split: retrain "
                             f"it: {retrain}")
    if image_size != base.image_size:
        raise PermanentError(f"--image-size {image_size} differs from the {base.model} model's {base.image_size} "
                             f"(seed {base.seed}): train at {base.image_size}, or retrain it at {image_size}: "
                             f"{train_hint(base.model, force=True, seed=base.seed, image_size=image_size)}")
    if weights != base.weights:
        raise PermanentError(f"--weights {weights} differs from the {base.model} model's {base.weights} "
                             f"(seed {base.seed}): pass --weights {base.weights}, or retrain it: "
                             f"{train_hint(base.model, force=True, seed=base.seed, weights=weights)}")


def check_options(config: TrainConfig) -> None:
    """What is wrong with the options alone, before anything is read: a usage error."""
    if config.learning_rate is not None and not (math.isfinite(config.learning_rate)
                                                 and 0 < config.learning_rate <= MAX_LEARNING_RATE):
        raise UsageError(f"--learning-rate {config.learning_rate}: expected a number above 0 and at most "
                         f"{MAX_LEARNING_RATE:g}")
    if config.precision not in PRECISIONS:
        raise UsageError(f"--precision {config.precision}: expected one of {', '.join(PRECISIONS)}")
    if config.strategy not in STRATEGIES:
        raise UsageError(f"--strategy {config.strategy}: expected one of {', '.join(STRATEGIES)}")


def resolve(config: TrainConfig, vol: Volume, split_manifest: dict) -> TrainRun:
    model = spec(config.model)
    base = None
    if model.starts_from is not None:
        where = vol.model_dir(model.starts_from.value, config.seed)
        if not (where / COMPLETE).exists():
            raise PermanentError(f"{model.name.value} starts from the trained {model.starts_from.value} model of the "
                                 f"same seed, which is missing at {where}: train both with "
                                 f"{train_hint(model.name.value, seed=config.seed)}")
        base = trained_run(vol, model.starts_from.value, config.seed)
    image_size = config.image_size or (base.image_size if base else IMAGE_SIZE)
    if base is not None:
        check_base(base, image_size=image_size, weights=config.weights, split=split_manifest["fingerprint"])
    weights = base.weights if base else (config.weights if model.uses_vgg16 else None)
    if weights not in (None, "imagenet", "none") and not Path(weights).is_file():
        raise UsageError(f"--weights {weights}: no such file (expected imagenet, none, or a weights file)")
    if image_size < model.min_image_size:
        raise UsageError(f"--image-size {image_size} is too small for {model.name.value}: its layers need at "
                         f"least {model.min_image_size} pixels a side")
    return TrainRun(model=model.name.value, epochs=config.epochs or model.epochs, batch_size=config.batch_size,
                    image_size=image_size, learning_rate=config.learning_rate, seed=config.seed, weights=weights,
                    deterministic=config.deterministic, precision=resolve_precision(config.precision),
                    xla=config.xla,
                    split=split_manifest["fingerprint"])
