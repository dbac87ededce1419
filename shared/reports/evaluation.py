"""The evaluate stage: score each trained model on the test subset, and write what a user reads.

A report is reused only while everything it depends on is unchanged (the model file's hash, the split's
fingerprint, METRICS_VERSION); a model trained on another split is never scored: its test images may
be ones it was trained or validated on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from shared.data.split import check_subset, load_manifest
from shared.reports import plots
from shared.reports.metrics import binary_metrics, roc_curve
from shared.training.catalog import SPECS, ModelSpec, spec
from shared.training.models import load_trained
from shared.training.runs import TrainRun, trained_run
from shared.volume.errors import CatsDogsError, PermanentError, run_hint, train_hint
from shared.volume.fsutil import (
    clear_stale,
    read_cached,
    read_json,
    replace_dir,
    sha256_file,
    staged_dir,
    write_json,
    write_text,
)
from shared.volume.layout import CLASSES, COMPLETE, HEAD_FILE, MODEL_FILE, Volume
from shared.volume.progress import say

ALL = "all"
METRICS_VERSION = 2  # bump when metrics.json's content or its computation changes: older reports are redone
MISTAKES = 12
ANOTHER_SPLIT = "trained on another split"


@dataclass(frozen=True)
class EvaluateConfig:
    data_dir: Path
    model: str = ALL
    batch_size: int = 32
    force: bool = False


class TrainedOnAnotherSplit(PermanentError):
    pass


def synthetic_note(kind: str | None) -> str:
    return ("SYNTHETIC: generated stand-in data, not Kaggle's photos; not comparable with the book"
            if kind == "synthetic" else "")


def current_run(vol: Volume, model: str, split: dict) -> TrainRun:
    """The trained model's run, if it may be scored on the volume's split."""
    run = trained_run(vol, model)
    if run.split != split["fingerprint"]:
        raise TrainedOnAnotherSplit(
            f"{model} was trained on split {run.split}, but the volume's split is {split['fingerprint']}: its "
            f"test images may be ones it learned from; retrain it: "
            f"{train_hint(model, force=True)}")
    return run


def identity(vol: Volume, run: TrainRun, split: dict) -> dict:
    """What a report depends on: it is reused only while all of this is equal."""
    return {"model_sha256": sha256_file(vol.model_dir(run.model) / MODEL_FILE), "split": split["fingerprint"],
            "metrics_version": METRICS_VERSION}


def predictions(*, vol: Volume, run: TrainRun, batch_size: int, config: dict):
    """(true labels, p(dog), test file paths), in the test subset's file order."""
    from shared.data.pipeline import list_files, subset_dataset

    files, labels = list_files(volume=vol, subset="test")  # the dataset's order: no second decoding pass
    stored = stored_test_features(vol=vol, run=run, config=config, labels=labels.ravel())
    if stored is not None:  # VGG16 already ran on these very images: only the head runs
        head = load_trained(vol.model_dir(run.model) / HEAD_FILE)
        p = np.concatenate([np.asarray(head.predict_on_batch(np.asarray(stored[at:at + batch_size])))
                            for at in range(0, len(stored), batch_size)])
        return labels.ravel(), p.ravel(), [Path(f) for f in files]
    data = subset_dataset(volume=vol, subset="test", image_size=run.image_size, batch_size=batch_size)
    p = load_trained(vol.model_dir(run.model) / MODEL_FILE).predict(data, verbose=0)
    return labels.ravel(), p.ravel(), [Path(f) for f in data.file_paths]


def stored_test_features(*, vol: Volume, run: TrainRun, config: dict, labels: np.ndarray):
    """The test features the model's own VGG16 computed at training time, when they are still those of
    these test images in this precision; else None (and the images are scored)."""
    from shared.data.features import load_features, store_problem

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


def evaluate_model(*, vol: Volume, model: str, split: dict, batch_size: int, force: bool) -> dict:
    """reports/<model>/: metrics.json and three PNGs."""
    run = current_run(vol, model, split)
    key, out = identity(vol, run, split), vol.report_dir(model)
    previous = None if force else read_cached(out / "metrics.json")  # unreadable: scored again
    if previous is not None and previous.get("identity") == key:
        return previous
    config = read_json(vol.model_dir(model) / "config.json")
    y, p, paths = predictions(vol=vol, run=run, batch_size=batch_size, config=config)
    metrics = binary_metrics(y, p)
    kind = config.get("data_source_kind")
    title = f"{model}\n{config.get('data_source')}" + (" [SYNTHETIC]" if kind == "synthetic" else "")
    report = {
        "model": model,
        "metrics": metrics,
        "seed_accuracy": spec(model).book_accuracy,
        "seed_accuracy_text": spec(model).book_text,
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
        "trained_at": config.get("finished_at"),
        "evaluated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    wrong = [i for i in np.argsort(-np.abs(p - y)) if (p[i] > 0.5) != (y[i] == 1)][:MISTAKES]
    clear_stale(vol.staging, f"evaluate-{model}")  # a killed evaluation's (this one holds the model's lock)
    with staged_dir(vol.staging, f"evaluate-{model}") as tmp:
        write_json(tmp / "metrics.json", report)
        plots.confusion_matrix(matrix=metrics["confusion_matrix"], path=tmp / "confusion_matrix.png",
                               title=f"Confusion matrix: {title}")
        fpr, tpr, _ = roc_curve(y, p)
        plots.roc(fpr=fpr, tpr=tpr, auc=metrics["roc_auc"], path=tmp / "roc.png", title=f"ROC: {title}")
        plots.mistakes(items=[(paths[i], CLASSES[int(y[i])], float(p[i])) for i in wrong],
                       path=tmp / "mistakes.png", title=f"Most confident mistakes: {title}")
        replace_dir(tmp, out)
    return report


def evaluate(*, config: EvaluateConfig) -> list[dict]:
    """Score the asked-for model or every trained one; the summary always covers all five."""
    vol = Volume(config.data_dir)
    with vol.reading("subsets", what="an evaluation"):  # the test images stay those the manifest lists
        return _evaluate(config, vol)


def _evaluate(config: EvaluateConfig, vol: Volume) -> list[dict]:
    split = load_manifest(vol)
    check_subset(vol, split, "test")
    wanted = list(SPECS.values()) if config.model == ALL else [spec(config.model)]
    if config.model != ALL:
        trained_run(vol, config.model)  # not trained: say so before touching anything
    scored, failed = {}, {}
    for s in wanted:
        name = s.name.value
        if config.model == ALL and not (vol.model_dir(name) / COMPLETE).exists():
            continue
        try:
            with vol.lock(f"evaluate-{name}", what=f"evaluating {name}", wait_s=None), \
                    vol.reading(f"model-{name}", what=f"evaluating {name}"):
                scored[name] = evaluate_model(vol=vol, model=name, split=split, batch_size=config.batch_size,
                                              force=config.force)
        except CatsDogsError as e:
            failed[name] = e
            say(f"warning: {name} not scored: {e}")
    rows = update_summary(vol=vol, split=split, scored=scored, failed=failed)
    if config.model != ALL and failed:
        raise failed[config.model]
    return [r for r in rows if r["model"] in {s.name.value for s in wanted}]


def update_summary(*, vol: Volume, split: dict, scored: dict[str, dict] | None = None,
                   failed: dict[str, CatsDogsError] | None = None) -> list[dict]:
    """Rewrite reports/summary.md from every model's current state, one writer at a time.

    Rows are read under the lock, after this process's reports are written: whichever evaluation
    writes last has seen every report written before it, so no row is lost when several run at once.
    """
    scored, failed = scored or {}, failed or {}
    with vol.lock("summary", what="writing the summary", wait_s=None):
        rows = [scored.get(s.name.value) or _status_row(vol, s, split, failed.get(s.name.value))
                for s in SPECS.values()]
        write_summary(vol=vol, rows=rows)
    return rows


def _status_row(vol: Volume, s: ModelSpec, split: dict, error: CatsDogsError | None) -> dict:
    """A model without a fresh score: why, or its report if that is still current."""
    name = s.name.value
    row = {"model": name, "seed_accuracy_text": s.book_text}
    if error is None:
        if not (vol.model_dir(name) / COMPLETE).exists():
            if vol.failure_record(name).exists():
                failure = read_cached(vol.failure_record(name)) or {}
                return {**row, "status": f"failed (exit {failure.get('exit_code', '?')}): "
                                         f"{failure.get('error', 'its failure record is unreadable')}"}
            return {**row, "status": "not trained"}
        try:
            run = current_run(vol, name, split)
            path = vol.report_dir(name) / "metrics.json"
            report = read_cached(path) or {}
            if report.get("identity") == identity(vol, run, split):
                return report
            return {**row, "status": f"not evaluated yet ({run_hint('evaluate', 'make evaluate')})"}
        except CatsDogsError as e:
            error = e
    status = ANOTHER_SPLIT if isinstance(error, TrainedOnAnotherSplit) else f"not scored: {error}"
    return {**row, "status": status}


def sources(rows: list[dict]) -> str:
    found = sorted({r["data_source"] for r in rows if "metrics" in r and r.get("data_source")})
    return "; ".join(found) or "no scored model"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _settings(run: dict) -> str:
    lr = "default" if run["learning_rate"] is None else f"{run['learning_rate']:g}"
    return f"{run['epochs']} epochs, {run['image_size']}px, batch {run['batch_size']}, lr {lr}, seed {run['seed']}"


# (header, cell of a scored report); a row without a score fills the first three with its status.
COLUMNS = [
    ("model", lambda r: r["model"] + (" [SYNTHETIC]" if r.get("synthetic") else "")),
    ("test accuracy", lambda r: _pct(r["metrics"]["accuracy"])),
    ("seed (book)", lambda r: r["seed_accuracy_text"]),
    ("test images", lambda r: str(r["test_images"])),
    ("loss", lambda r: _num(r["metrics"]["loss"])),
    ("precision", lambda r: _num(r["metrics"]["precision"])),
    ("recall", lambda r: _num(r["metrics"]["recall"])),
    ("F1", lambda r: _num(r["metrics"]["f1"])),
    ("ROC AUC", lambda r: _num(r["metrics"]["roc_auc"])),
    ("weights", lambda r: r.get("weights") or ""),
    ("compute", lambda r: r["precision"]),
    ("settings", lambda r: _settings(r["model_config"]["run"])),
    ("split", lambda r: r["split"]),
    ("data", lambda r: r.get("data_source") or ""),
    ("trained", lambda r: r["trained_at"]),
    ("evaluated", lambda r: r["evaluated_at"]),
]
CONSOLE = ("model", "test accuracy", "seed (book)", "test images", "loss", "F1", "ROC AUC", "compute", "split")
HEADER = [h for h, _ in COLUMNS]


def table_rows(rows: list[dict], headers: list[str] = HEADER) -> list[list[str]]:
    cells = dict(COLUMNS)
    out = []
    for r in rows:
        if "metrics" in r:
            out.append([cells[h](r) for h in headers])
        else:
            out.append([r["model"], r["status"], r["seed_accuracy_text"], *[""] * (len(headers) - 3)])
    return out


def write_summary(*, vol: Volume, rows: list[dict]) -> Path:
    synthetic = any(r.get("synthetic") for r in rows)
    lines = [f"# Dogs vs. Cats: test results on {sources(rows)}", ""]
    if synthetic:
        lines += [f"> **{synthetic_note('synthetic')}.** These numbers show the pipeline works; the seed's "
                  "column is what the book reports on Kaggle's photos.", ""]
    lines += ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in cells) + " |" for cells in table_rows(rows)]
    lines += ["", "Positive class: dog. `split` is the fingerprint of the split the model was trained and tested "
              "on; `compute` the precision it ran in. Per-model metrics, confusion matrices, ROC curves and the "
              "most confident mistakes are in `reports/<model>/`.", ""]
    return write_text(vol.reports / "summary.md", "\n".join(lines))


def print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    synthetic = any(r.get("synthetic") for r in rows)
    title = f"Test results on {sources(rows)}" + (" [SYNTHETIC stand-in: not the book's data]" if synthetic else "")
    table = Table(title=title)
    for name in CONSOLE:
        table.add_column(name, justify="left" if name in ("model", "seed (book)", "compute", "split") else "right")
    for cells in table_rows(rows, list(CONSOLE)):
        table.add_row(*cells)
    Console(width=160).print(table)
