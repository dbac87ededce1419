"""Score one trained run on the test subset, and write what a user reads (reports/<model>/seed-<S>/).

shared/orchestration/reporting.py runs this over every run, then rewrites the summary and the page.

A report is reused only while everything it depends on is unchanged (the model file's hash, the split's
fingerprint, METRICS_VERSION); a model trained on another split is never scored: its test images may
be ones it was trained or validated on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from shared.core.errors import PermanentError
from shared.core.hints import train_hint
from shared.core.seeds import DEFAULT_SEED
from shared.reports import plots
from shared.reports.metrics import binary_metrics, roc_curve
from shared.reports.stats import wilson
from shared.training.catalog import spec
from shared.training.models import load_trained
from shared.training.runs import TrainRun, trained_run
from shared.volume.fsutil import (
    clear_stale,
    read_cached,
    read_json,
    replace_dir,
    sha256_file,
    staged_dir,
    write_json,
)
from shared.volume.layout import CLASSES, HEAD_FILE, MODEL_FILE, Volume, run_key

# Bump when metrics.json's content or its computation changes: older reports are redone.
# 4: the book's number is book_accuracy and book_text (3 called them seed_accuracy*; read_report maps them).
METRICS_VERSION = 4
_OLD_KEYS = {"seed_accuracy": "book_accuracy", "seed_accuracy_text": "book_text"}
MISTAKES = 12


def read_report(path: Path) -> dict | None:
    """A run's metrics.json, any version, with the book's number under its current keys; None if unreadable."""
    return read_cached(path, renamed=_OLD_KEYS)


class TrainedOnAnotherSplit(PermanentError):
    pass


def synthetic_note(kind: str | None) -> str:
    return ("SYNTHETIC: generated stand-in data, not Kaggle's photos; not comparable with the book"
            if kind == "synthetic" else "")


def current_run(vol: Volume, model: str, split: dict, seed: int = DEFAULT_SEED) -> TrainRun:
    """The trained run, if it may be scored on the volume's split."""
    run = trained_run(vol, model, seed)
    if run.split != split["fingerprint"]:
        raise TrainedOnAnotherSplit(
            f"{run_key(model, seed)} was trained on split {run.split}, but the volume's split is "
            f"{split['fingerprint']}: its test images may be ones it learned from; retrain it: "
            f"{train_hint(model, force=True, seed=seed)}")
    return run


def identity(vol: Volume, run: TrainRun, split: dict) -> dict:
    """What a report depends on: it is reused only while all of this is equal."""
    return {"model_sha256": sha256_file(vol.model_dir(run.model, run.seed) / MODEL_FILE), "split": split["fingerprint"],
            "metrics_version": METRICS_VERSION}


def predictions(*, vol: Volume, run: TrainRun, batch_size: int, config: dict, model):
    """(true labels, p(dog), test file paths), in the test subset's file order; `model` is model.keras."""
    from shared.data.pipeline import list_files, subset_dataset

    files, labels = list_files(volume=vol, subset="test")  # the dataset's order: no second decoding pass
    stored = stored_test_features(vol=vol, run=run, config=config, labels=labels.ravel())
    if stored is not None:  # VGG16 already ran on these very images: only the head runs
        head = load_trained(vol.model_dir(run.model, run.seed) / HEAD_FILE)
        p = np.concatenate([np.asarray(head.predict_on_batch(np.asarray(stored[at:at + batch_size])))
                            for at in range(0, len(stored), batch_size)])
        return labels.ravel(), p.ravel(), [Path(f) for f in files]
    data = subset_dataset(volume=vol, subset="test", image_size=run.image_size, batch_size=batch_size)
    p = model.predict(data, verbose=0)
    return labels.ravel(), p.ravel(), [Path(f) for f in data.file_paths]


def stored_test_features(*, vol: Volume, run: TrainRun, config: dict, labels: np.ndarray):
    """The test features the model's own VGG16 computed at training time, when they are still those of
    these test images in this precision; else None (and the images are scored)."""
    from shared.training.features import load_features, store_problem

    key = (config.get("validation") or {}).get("features")
    if not run.spec.on_features or not key:
        return None
    with vol.reading(f"features-{key}", what=f"evaluating {run.model}"):  # not replaced while opened
        meta = read_cached(vol.features / key / "meta.json") or {}
        if store_problem(vol.features / key, ("test",)) is not None or meta.get("split") != run.split \
                or meta.get("precision", "float32") != run.precision:
            return None
        x, y = load_features(vol.features / key, "test")
    return x if len(y) == len(labels) and np.array_equal(y, labels) else None


def evaluate_model(*, vol: Volume, model: str, split: dict, batch_size: int, force: bool,
                   seed: int = DEFAULT_SEED) -> dict:
    """reports/<model>/seed-<seed>/: metrics.json and three PNGs."""
    run = current_run(vol, model, split, seed)
    key, out = identity(vol, run, split), vol.report_dir(model, seed)
    previous = None if force else read_report(out / "metrics.json")  # unreadable: scored again
    if previous is not None and previous.get("identity") == key:
        return previous
    config = read_json(vol.model_dir(model, seed) / "config.json")
    image_model = load_trained(vol.model_dir(model, seed) / MODEL_FILE)
    y, p, paths = predictions(vol=vol, run=run, batch_size=batch_size, config=config, model=image_model)
    metrics = binary_metrics(y, p)
    kind = config.get("data_source_kind")
    title = f"{model}, seed {seed}\n{config.get('data_source')}" + (" [SYNTHETIC]" if kind == "synthetic" else "")
    correct = metrics["confusion_matrix"][0][0] + metrics["confusion_matrix"][1][1]
    report = {
        "model": model,
        "seed": seed,
        "metrics": metrics,
        "accuracy_ci95": list(wilson(correct, metrics["count"])),  # the test set's sampling error alone
        "book_accuracy": spec(model).book_accuracy,
        "book_text": spec(model).book_text,
        "data_source": config.get("data_source"),
        "data_source_kind": kind,
        "synthetic": kind == "synthetic",
        "note": synthetic_note(kind),
        "weights": config.get("weights"),
        "precision": run.precision,
        "split": split["fingerprint"],
        "test_images": metrics["count"],
        "model_config": config,
        "identity": key,
        "cost": cost(config=config, history=read_cached(vol.model_dir(model, seed) / "history.json") or {},
                     train_images=sum(split["counts"]["train"].values())),
        "trained_at": config.get("finished_at"),
        "evaluated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    wrong = [i for i in np.argsort(-np.abs(p - y)) if (p[i] > 0.5) != (y[i] == 1)][:MISTAKES]
    name = run_key(model, seed)
    clear_stale(vol.staging, f"evaluate-{name}")  # a killed evaluation's (this one holds the run's lock)
    with staged_dir(vol.staging, f"evaluate-{name}") as tmp:
        write_json(tmp / "metrics.json", report)
        plots.confusion_matrix(matrix=metrics["confusion_matrix"], path=tmp / "confusion_matrix.png",
                               title=f"Confusion matrix: {title}")
        fpr, tpr, _ = roc_curve(y, p)
        plots.roc(fpr=fpr, tpr=tpr, auc=metrics["roc_auc"], path=tmp / "roc.png", title=f"ROC: {title}")
        _mistakes(image_model, items=[(paths[i], CLASSES[int(y[i])], float(p[i])) for i in wrong],
                  path=tmp / "mistakes.png", title=title, image_size=run.image_size)
        replace_dir(tmp, out)
    _augmentation(vol, model=image_model, name=model, image_size=run.image_size, source=config.get("data_source"))
    return report


def _mistakes(model, *, items: list[tuple[Path, str, float]], path: Path, title: str, image_size: int) -> None:
    """The most confident mistakes, each with its Grad-CAM heat map: where the model saw the wrong class."""
    from shared.reports.explain import explained_pictures

    pictures, layer = explained_pictures(model, [p for p, _, _ in items], image_size=image_size)
    plots.image_grid(items=[(picture, f"{p.name}\ntrue {truth}, p(dog) {p_dog:.2f}")
                            for picture, (p, truth, p_dog) in zip(pictures, items, strict=True)],
                     path=path, title=f"Most confident mistakes, Grad-CAM of {layer}: {title}")


def _augmentation(vol: Volume, *, model, name: str, image_size: int, source: str | None) -> None:
    """reports/<model>/augmentation.png, for a model that augments: the training subset's first image."""
    from shared.data.pipeline import decode_resize, list_files
    from shared.reports.augmentation import augmentation_layers, write_augmentation

    if augmentation_layers(model) is None:
        return
    files, _ = list_files(volume=vol, subset="train")
    if not files:
        return
    image = decode_resize(files[0], image_size).numpy()
    write_augmentation(model=model, image=image, path=vol.reports / name / "augmentation.png",
                       title=f"{name}: nine augmentations of {Path(files[0]).name} ({image_size}px), by its own "
                             f"layers\n{source}")


def cost(*, config: dict, history: dict, train_images: int) -> dict:
    """What a run cost: wall time of the training command, seconds an epoch, images a second, where it ran."""
    seconds = [s for s in history.get("epoch_seconds", []) if isinstance(s, int | float)]
    per_epoch = sorted(seconds)[len(seconds) // 2] if seconds else None  # the median: epoch 1 also compiles
    strategy = config.get("strategy") or {}
    return {"wall_seconds": config.get("wall_seconds"), "epochs": len(seconds), "epoch_seconds": per_epoch,
            "images_per_second": train_images / per_epoch if per_epoch else None,
            "device": config.get("device"), "precision": (config.get("run") or {}).get("precision"),
            "replicas": strategy.get("replicas"), "strategy": strategy.get("name")}
