"""The train stage: one of the five models on the split, resumable after a kill, with its artifacts."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from shared.errors import PermanentError, UsageError
from shared.fsutil import read_json, remove, replace_dir, write_json
from shared.layout import COMPLETE, STATE, Volume
from shared.models import (
    BUILDERS,
    DEFAULT_EPOCHS,
    IMAGE_SIZE,
    PREREQUISITE,
    USES_VGG16,
    ModelName,
    min_image_size,
)
from shared.progress import is_terminal, say
from shared.split import load_manifest

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


@dataclass(frozen=True)
class TrainConfig:
    data_dir: Path
    model: ModelName
    epochs: int | None = None  # None: the seed's number for this model
    batch_size: int = 32
    image_size: int | None = None  # None: 180, or the base model's for fine-tune
    learning_rate: float | None = None  # None: rmsprop's default, 1e-5 for fine-tune
    seed: int = 1337
    weights: str = "imagenet"  # imagenet | none | PATH
    deterministic: bool = True
    force: bool = False
    require_gpu: bool = False
    precision: str = "float32"  # float32 (the seed's) | mixed_float16 | mixed_bfloat16
    xla: bool | None = None  # None: Keras decides ("auto")
    cache: bool = True  # decoded images in memory after the first epoch


def _base_config(vol: Volume, model: ModelName) -> dict | None:
    base = PREREQUISITE.get(model)
    if base is None:
        return None
    folder = vol.model_dir(base.value)
    if not (folder / COMPLETE).exists():
        raise PermanentError(f"{model.value} starts from the trained {base.value} model, which is missing "
                             f"at {folder}: run `make train-{base.value}` first")
    return read_json(folder / "config.json")


def resolve(config: TrainConfig, vol: Volume, split_manifest: dict) -> dict:
    """Everything the run's result depends on; a finished or half-finished run is reused only if equal."""
    model = ModelName(config.model)
    base = _base_config(vol, model)
    image_size = config.image_size or (base["run"]["image_size"] if base else IMAGE_SIZE)
    if base and image_size != base["run"]["image_size"]:
        raise PermanentError(f"--image-size {image_size} differs from the {PREREQUISITE[model].value} model's "
                             f"{base['run']['image_size']}; fine-tune at that size or retrain the base")
    if base and base["run"]["split"] != split_manifest["fingerprint"]:
        raise PermanentError(f"the {PREREQUISITE[model].value} model was trained on another split: retrain it "
                             f"(make train-{PREREQUISITE[model].value} FORCE=1)")
    weights = base["run"]["weights"] if base else (config.weights if model in USES_VGG16 else None)
    if weights not in (None, "imagenet", "none") and not Path(weights).is_file():
        raise PermanentError(f"--weights {weights}: no such file (expected imagenet, none, or a weights file)")
    if image_size < min_image_size(model):
        raise UsageError(f"--image-size {image_size} is too small for {model.value}: its layers need at least "
                         f"{min_image_size(model)} pixels a side")
    if config.precision not in PRECISIONS:
        raise UsageError(f"--precision {config.precision}: expected one of {', '.join(PRECISIONS)}")
    return {
        "model": model.value,
        "epochs": config.epochs or DEFAULT_EPOCHS[model],
        "batch_size": config.batch_size,
        "image_size": image_size,
        "learning_rate": config.learning_rate,
        "seed": config.seed,
        "weights": weights,
        "deterministic": config.deterministic,
        "precision": config.precision,
        "xla": config.xla,
        "split": split_manifest["fingerprint"],
    }


def train(*, config: TrainConfig) -> Path:
    """Train, resume, or do nothing; returns models/<model>/."""
    if config.require_gpu:
        from shared.doctor import require_gpu

        require_gpu()
    vol = Volume(config.data_dir)
    split_manifest = load_manifest(vol)
    run = resolve(config, vol, split_manifest)
    final = vol.model_dir(run["model"])
    if (final / COMPLETE).exists() and not config.force:
        if read_json(final / "config.json").get("run") == run:
            say(f"{run['model']} is already trained at {final}: nothing to do (--force retrains it)")
            return final
        raise PermanentError(f"{final} holds a {run['model']} model trained with other settings; "
                             "pass --force to retrain it")
    work = vol.staging / f"train-{run['model']}"
    if (work / COMPLETE).exists() and not config.force and read_json(work / "config.json").get("run") == run:
        replace_dir(work, final)  # killed while moving a finished run into place: finish the move
        return final
    state = _resumable_state(work, run, fresh=config.force)
    try:
        history = _fit(vol=vol, run=run, work=work, state=state, split_manifest=split_manifest, cache=config.cache)
    finally:
        from tensorflow import keras

        keras.mixed_precision.set_global_policy("float32")  # the process may go on (tests, prerequisites)
    _finalize(vol=vol, run=run, work=work, history=history, split_manifest=split_manifest)
    replace_dir(work, final)
    say(f"trained {run['model']}: best val_loss {min(history['val_loss']):.4f}, artifacts in {final}")
    return final


def train_with_prerequisite(*, config: TrainConfig, prerequisite_epochs: int | None = None) -> Path:
    """fine-tune's base first, if it is not trained yet (same sizes, seed and weights), then the model."""
    base = PREREQUISITE.get(ModelName(config.model))
    if base is not None and not (Volume(config.data_dir).model_dir(base.value) / COMPLETE).exists():
        say(f"{config.model.value} needs {base.value}: training it first")
        train(config=replace(config, model=base, epochs=prerequisite_epochs, learning_rate=None, force=False))
    return train(config=config)


def _resumable_state(work: Path, run: dict, *, fresh: bool) -> dict | None:
    state_path = work / STATE
    if work.exists() and not fresh and state_path.exists():
        state = read_json(state_path)
        if state.get("config") == run and (work / state["weights"]).exists():
            return state
    remove(work)  # another config, --force, or killed before its first epoch ended: start over
    work.mkdir(parents=True)
    return None


def _datasets(vol: Volume, run: dict, split_manifest: dict, *, cache: bool):
    """(training data, validation data, builder kwargs) for the run's model."""
    model = ModelName(run["model"])
    if model is ModelName.feature_extraction:
        from shared.features import ensure_features, feature_shape, load_features

        store = ensure_features(volume=vol, split_manifest=split_manifest, weights=run["weights"],
                                seed=run["seed"], image_size=run["image_size"], batch_size=run["batch_size"])
        return load_features(store, "train"), load_features(store, "validation"), {
            "feature_shape": feature_shape(store), "store": store}
    from shared.data import subset_dataset

    common = {"volume": vol, "image_size": run["image_size"], "batch_size": run["batch_size"], "seed": run["seed"],
              "cache": cache}
    kwargs = {"image_size": run["image_size"], "weights": None if run["weights"] == "none" else run["weights"]}
    if model in PREREQUISITE:
        kwargs["base_model_path"] = vol.model_dir(PREREQUISITE[model].value) / "best.keras"
    return subset_dataset(subset="train", **common), subset_dataset(subset="validation", **common), kwargs


def _fit(*, vol: Volume, run: dict, work: Path, state: dict | None, split_manifest: dict,
         cache: bool) -> dict[str, list]:
    import tensorflow as tf
    from tensorflow import keras

    from shared.callbacks import AtomicBestCheckpoint, EpochState

    keras.utils.set_random_seed(run["seed"])
    if run["deterministic"]:
        tf.config.experimental.enable_op_determinism()
    if run["precision"] != "float32" and not tf.config.list_physical_devices("GPU"):
        say(f"warning: {run['precision']} on the CPU is slow; mixed precision is meant for GPUs")
    # New layers take the policy; the output layer is pinned to float32 by the builders.
    keras.mixed_precision.set_global_policy(run["precision"])
    train_data, val_data, kwargs = _datasets(vol, run, split_manifest, cache=cache)
    store = kwargs.pop("store", None)
    jit = "auto" if run["xla"] is None else run["xla"]
    model = BUILDERS[ModelName(run["model"])](learning_rate=run["learning_rate"], seed=run["seed"],
                                              jit_compile=jit, **kwargs)
    history, initial_epoch, best = {}, 0, math.inf
    if state:
        model.optimizer.build(model.trainable_variables)
        model.load_weights(work / state["weights"])
        history, initial_epoch = state["history"], state["epoch"]
        best_file = work / "best.json"
        known = [h["val_loss"] for h in history.values() if "val_loss" in h]
        best = min(known + ([read_json(best_file)["val_loss"]] if best_file.exists() else []), default=math.inf)
        say(f"resuming {run['model']} after epoch {initial_epoch} of {run['epochs']} (best val_loss {best:.4f})")
    callbacks = [
        AtomicBestCheckpoint(work / "best.keras", best=best),
        EpochState(work, config=run, history=history),
        keras.callbacks.TensorBoard(log_dir=str(work / "logs")),
    ]
    fit_args = {"epochs": run["epochs"], "initial_epoch": initial_epoch, "callbacks": callbacks,
                "verbose": 1 if is_terminal() else 2}
    if initial_epoch < run["epochs"]:
        if store is not None:
            (x, y), (vx, vy) = train_data, val_data
            model.fit(x, y, batch_size=run["batch_size"], validation_data=(vx, vy), shuffle=True, **fit_args)
        else:
            model.fit(train_data, validation_data=val_data, shuffle=False, **fit_args)  # shuffled by tf.data
    history = callbacks[1].history
    if not (work / "best.keras").exists():  # val_loss never finite: keep the last model, and say so
        say("warning: val_loss never improved on infinity; best.keras is the last epoch's model")
        model.save(work / "best.keras")
    if store is not None:
        _save_full_feature_extraction(run=run, work=work, store=store)
    return {key: [history[str(e)][key] for e in range(1, run["epochs"] + 1)]
            for key in history[str(run["epochs"])]}


def _save_full_feature_extraction(*, run: dict, work: Path, store: Path) -> None:
    """best.keras takes stored features; full.keras takes images, for predict."""
    from tensorflow import keras

    from shared.features import build_base

    head = keras.models.load_model(work / "best.keras")
    base = build_base(weights=run["weights"], seed=run["seed"], image_size=run["image_size"], store=store)
    inputs = keras.Input(shape=(run["image_size"], run["image_size"], 3))
    outputs = head(base(keras.applications.vgg16.preprocess_input(inputs)))
    tmp = work / ".full.tmp.keras"
    keras.Model(inputs, outputs).save(tmp)
    os.replace(tmp, work / "full.keras")


def _finalize(*, vol: Volume, run: dict, work: Path, history: dict, split_manifest: dict) -> None:
    import tensorflow as tf

    from shared.plots import training_curves

    raw = read_json(vol.raw_manifest) if vol.raw_manifest.exists() else {}
    write_json(work / "history.json", history)
    write_json(work / "config.json", {
        "run": run,
        "data_source": split_manifest.get("source"),
        "data_source_kind": split_manifest["params"]["source"]["source"],
        "split": split_manifest["params"],
        "weights": _describe_weights(run["weights"]),
        "best": read_json(work / "best.json") if (work / "best.json").exists() else None,
        "raw_archive_sha256": raw.get("archive_sha256"),
        "tensorflow": tf.__version__,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    })
    training_curves(history=history, out_dir=work, title=f"{run['model']} on {split_manifest.get('source')}")
    for name in [STATE, *(p.name for p in work.glob("epoch-*.weights.h5"))]:
        remove(work / name)
    (work / COMPLETE).write_text(datetime.now(UTC).isoformat() + "\n")  # last


def _describe_weights(weights: str | None) -> str:
    if weights is None:
        return "none (trained from scratch)"
    if weights == "imagenet":
        return "VGG16 ImageNet weights"
    if weights == "none":
        return "VGG16 randomly initialised (--weights none): not the book's transfer learning"
    return f"VGG16 weights from {weights}"
