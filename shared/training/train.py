"""The train stage: one of the catalog's models on the split, resumable after a kill, with its artifacts."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

from shared.core.console import is_terminal, say, verbose
from shared.core.errors import PermanentError
from shared.data.split import load_manifest
from shared.training.catalog import SPECS, spec
from shared.training.precision import precision_policy
from shared.training.runs import TrainConfig, TrainRun, check_options, resolve, saved_run
from shared.training.strategy import place
from shared.volume.fsutil import read_cached, remove, replace_dir, write_json, write_marker, write_text
from shared.volume.layout import COMPLETE, HEAD_FILE, MODEL_FILE, STATE, Volume, run_key


def train(*, config: TrainConfig) -> Path:
    """Train, resume, or do nothing; returns models/<model>/seed-<seed>/."""
    check_options(config)
    from shared.training.doctor import require_gpu, warn_if_gpus_unused

    if config.require_gpu:
        require_gpu()
    else:
        warn_if_gpus_unused()
    vol = Volume(config.data_dir)
    key = run_key(spec(config.model).name.value, config.seed)
    # One trainer per run and volume; the split stays as read until the run ends (README: "Concurrency").
    with vol.lock(f"train-{key}", what=f"training {key}"), vol.reading("subsets", what=f"training {key}"):
        split_manifest = load_manifest(vol)
        return _train(config, vol, resolve(config, vol, split_manifest), split_manifest)


def _train(config: TrainConfig, vol: Volume, run: TrainRun, split_manifest: dict) -> Path:
    final, key = vol.model_dir(run.model, run.seed), run_key(run.model, run.seed)
    if (final / COMPLETE).exists() and not config.force:
        if saved_run(final) == run:
            say(f"{run.model} is already trained at {final}: nothing to do (--force retrains it)")
            if config.summary and (final / "summary.txt").is_file():  # what it built, one flag away
                say((final / "summary.txt").read_text().rstrip("\n"))
            return final
        raise PermanentError(f"{final} holds a {run.model} model trained with other settings; "
                             "pass --force to retrain it")
    started = time.monotonic()
    work = vol.staging / f"train-{key}"
    if saved_run(work) == run:  # killed while moving a finished run into place: finish the move
        with vol.replacing(f"model-{key}", what=f"training {key}"):
            replace_dir(work, final)
        return final
    from shared.training.callbacks import resumable_state

    # --force redoes a finished model; an interrupted run with these very settings resumes either way.
    state = resumable_state(work, asdict(run), fresh=False)
    placement = place(config.strategy)
    with precision_policy(run.precision):
        history, validation, parameters = _fit(vol=vol, run=run, work=work, state=state, split_manifest=split_manifest,
                                   config=config, placement=placement)
    _finalize(vol=vol, run=run, work=work, history=history, split_manifest=split_manifest, placement=placement,
              validation=validation, parameters=parameters, wall_seconds=time.monotonic() - started,
              resumed=state is not None)
    with vol.replacing(f"model-{key}", what=f"training {key}"):  # never under an evaluation
        _keep_exports(final, work)
        replace_dir(work, final)
    say(f"trained {run.model}: best val_loss {min(history['val_loss']):.4f}, artifacts in {final}")
    return final


def _keep_exports(final: Path, work: Path) -> None:
    """A retrained run keeps its exported versions: the next export is the next version number, and a
    server watching export/<model>/ keeps serving the last one until then."""
    if (final / "export").is_dir() and not (work / "export").exists():
        os.replace(final / "export", work / "export")


def train_with_prerequisite(*, config: TrainConfig, prerequisite_epochs: int | None = None) -> Path:
    """fine-tune's base first, if it is not trained yet (same sizes, seed and weights), then the model."""
    base = spec(config.model).starts_from
    if base is not None and not (Volume(config.data_dir).model_dir(base.value, config.seed) / COMPLETE).exists():
        say(f"{spec(config.model).name.value} needs {base.value}: training it first")
        train(config=replace(config, model=base, epochs=prerequisite_epochs, learning_rate=None, force=False))
    return train(config=config)


def _datasets(vol: Volume, run: TrainRun, split_manifest: dict, *, cache: bool):
    """(the training batches from an epoch on, validation data, what the builder may take, the feature store
    or None). The training batches are a function of the first epoch, known once a killed run is resumed."""
    from shared.data.pipeline import array_batches, subset_dataset, training_batches

    inputs = {"image_size": run.image_size, "learning_rate": run.learning_rate, "seed": run.seed,
              "weights": None if run.weights == "none" else run.weights,
              "jit_compile": "auto" if run.xla is None else run.xla}
    epochs = {"batch_size": run.batch_size, "seed": run.seed, "epochs": run.epochs}
    if run.spec.starts_from is not None:
        inputs["base_model_path"] = vol.model_dir(run.spec.starts_from.value, run.seed) / MODEL_FILE
    if run.spec.on_features:
        from shared.training.features import ensure_features, feature_shape, load_features

        store = ensure_features(volume=vol, split_manifest=split_manifest, weights=run.weights, seed=run.seed,
                                image_size=run.image_size, batch_size=run.batch_size, precision=run.precision)
        with vol.reading(f"features-{store.name}", what=f"training {run.model}"):
            inputs["feature_shape"] = feature_shape(store)
            (x, y), validation = load_features(store, "train"), load_features(store, "validation")
        return lambda first: array_batches(x, y, first_epoch=first, **epochs), validation, inputs, store
    return (lambda first: training_batches(volume=vol, image_size=run.image_size, cache=cache, first_epoch=first,
                                           **epochs),
            subset_dataset(volume=vol, subset="validation", image_size=run.image_size, batch_size=run.batch_size,
                           cache=cache), inputs, None)


def _fit(*, vol: Volume, run: TrainRun, work: Path, state: dict | None, split_manifest: dict,
         config: TrainConfig, placement) -> tuple[dict[str, list], dict, dict[str, int]]:
    import tensorflow as tf
    from tensorflow import keras

    from shared.training.callbacks import (
        AtomicBestCheckpoint,
        EpochState,
        StillLocked,
        StopOnNonFinite,
        history_lists,
        resume,
    )

    if run.deterministic:
        tf.config.experimental.enable_op_determinism()
    train_data, val_data, inputs, store = _datasets(vol, run, split_manifest, cache=config.cache)
    if placement.replicas > 1:
        say(f"training {run.model} on {placement.replicas} replicas ({placement.name}), global batch "
            f"{run.batch_size}")
    # Seeded once, here, after anything the volume decides (computing a feature store seeds and builds VGG16;
    # reusing one does not): what trains starts from the same numbers either way (issue 25).
    keras.utils.set_random_seed(run.seed)
    with placement.strategy.scope():  # the model's and the optimizer's variables on every replica
        model = run.spec.build(**inputs)
        history, initial_epoch, best = resume(model, work, state)
    from shared.training.describe import parameter_counts, summary_text

    summary = summary_text(model)
    write_text(work / "summary.txt", summary)  # what it built, as the seed's model.summary()
    if config.summary:
        say(summary.rstrip("\n"))
    parameters = parameter_counts(model)
    if state:
        say(f"resuming {run.model} after epoch {initial_epoch} of {run.epochs} (best val_loss {best:.4f})")
    checkpoint = work / (HEAD_FILE if store is not None else MODEL_FILE)
    from shared.training.frozen import plan_validation

    with placement.strategy.scope():
        val_data, first, validation = plan_validation(
            model=model, val_data=val_data, n=sum(split_manifest["counts"]["validation"].values()),
            batch_size=run.batch_size, volume=vol, image_size=run.image_size, split_fingerprint=run.split,
            precision=run.precision, enabled=config.frozen_cache and store is None,
            successors=[s.freeze for s in SPECS.values() if s.starts_from and s.starts_from.value == run.model])
    state_callback = EpochState(work, config=asdict(run), history=history, clock=first[-1],
                                extra={"replicas": placement.replicas, "strategy": placement.name})
    callbacks = [
        *first,  # validation on cached activations, if any: what the others read
        StopOnNonFinite(),
        StillLocked(vol.locks, f"train-{run_key(run.model, run.seed)}"),
        AtomicBestCheckpoint(checkpoint, record=work / "best.json", best=best),
        state_callback,
        keras.callbacks.TensorBoard(log_dir=str(work / "logs")),
    ]
    fit_args = {"epochs": run.epochs, "initial_epoch": initial_epoch, "callbacks": callbacks,
                "verbose": 1 if is_terminal() else 2}
    if initial_epoch < run.epochs:
        batches, steps = train_data(initial_epoch)
        if verbose():  # as the seed prints when it first iterates the dataset
            data_batch, labels_batch = next(iter(batches))
            say(f"data batch shape: {tuple(data_batch.shape)}\nlabels batch shape: {tuple(labels_batch.shape)}")
        if store is not None:  # validation arrays, batched as the seed's fit(x, y, batch_size) did
            fit_args["validation_batch_size"] = run.batch_size
        model.fit(batches, steps_per_epoch=steps, validation_data=val_data, shuffle=False, **fit_args)  # by tf.data
    history = state_callback.history
    if not checkpoint.exists():  # val_loss never finite: keep the last model, and say so
        say(f"warning: val_loss never improved on infinity; {checkpoint.name} is the last epoch's model")
        model.save(checkpoint)
    if store is not None:
        _save_image_model(run=run, work=work, store=store)
    validation["features"] = store.name if store is not None else None  # evaluate reuses its test features
    return history_lists(history, run.epochs), validation, parameters


def _save_image_model(*, run: TrainRun, work: Path, store: Path) -> None:
    """The head takes stored features; model.keras puts the same VGG16 in front, so it takes images."""
    from tensorflow import keras

    from shared.training.features import build_base

    head = keras.models.load_model(work / HEAD_FILE)
    with Volume(store.parent.parent).reading(f"features-{store.name}", what=f"saving {run.model}"):
        base = build_base(weights=run.weights, seed=run.seed, image_size=run.image_size, store=store)
    inputs = keras.Input(shape=(run.image_size, run.image_size, 3))
    outputs = head(base(keras.applications.vgg16.preprocess_input(inputs)))
    tmp = work / f".{MODEL_FILE}.tmp.keras"
    keras.Model(inputs, outputs).save(tmp)
    os.replace(tmp, work / MODEL_FILE)


def _finalize(*, vol: Volume, run: TrainRun, work: Path, history: dict, split_manifest: dict, placement,
              validation: dict, parameters: dict, wall_seconds: float, resumed: bool) -> None:
    import tensorflow as tf

    from shared.training.curves import training_curves
    from shared.training.strategy import device_name

    raw = read_cached(vol.raw_manifest) or {}
    write_json(work / "history.json", history)
    write_json(work / "config.json", {
        "run": asdict(run),
        "data_source": split_manifest.get("source"),
        "data_source_kind": split_manifest["params"]["source"]["source"],
        "split": split_manifest["params"],
        "weights": _describe_weights(run.weights),
        "best": read_cached(work / "best.json"),
        "raw_archive_sha256": raw.get("archive_sha256"),
        "strategy": {"name": placement.name, "replicas": placement.replicas},
        "device": device_name(placement),
        "wall_seconds": wall_seconds,  # of the command that finished it (`resumed`: after another was killed)
        "resumed": resumed,
        "validation": validation,
        "parameters": parameters,  # of what trained (feature-extraction: its head); summary.txt lists the layers
        "tensorflow": tf.__version__,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    })
    training_curves(history=history, out_dir=work, title=f"{run.model} on {split_manifest.get('source')}")
    for name in [STATE, *(p.name for p in work.glob("epoch-*.weights.h5"))]:
        remove(work / name)
    write_marker(work / COMPLETE, datetime.now(UTC).isoformat() + "\n")  # last


def _describe_weights(weights: str | None) -> str:
    if weights is None:
        return "none (trained from scratch)"
    if weights == "imagenet":
        return "VGG16 ImageNet weights"
    if weights == "none":
        return "VGG16 randomly initialised (--weights none): not the book's transfer learning"
    return f"VGG16 weights from {weights}"
