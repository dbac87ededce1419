"""The evaluate stage: score each trained model on the test subset, and write what a user reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from shared import plots
from shared.errors import PermanentError
from shared.fsutil import read_json, replace_dir, staged_dir, write_json
from shared.layout import CLASSES, COMPLETE, Volume
from shared.metrics import binary_metrics, roc_curve
from shared.models import SEED_ACCURACY, ModelName
from shared.progress import say
from shared.split import load_manifest

ALL = "all"
SEED_TEXT = {
    ModelName.scratch: "69.5%",
    ModelName.scratch_augmented: "83.5%",
    ModelName.feature_extraction: "~97% (validation)",
    ModelName.feature_extraction_augmented: "97.5%",
    ModelName.fine_tune: "98.5%",
}
MISTAKES = 12


@dataclass(frozen=True)
class EvaluateConfig:
    data_dir: Path
    model: str = ALL
    batch_size: int = 32
    force: bool = False


def trained(vol: Volume, model: ModelName) -> bool:
    return (vol.model_dir(model.value) / COMPLETE).exists()


def synthetic_note(kind: str | None) -> str:
    return ("SYNTHETIC: generated stand-in data, not Kaggle's photos; not comparable with the book"
            if kind == "synthetic" else "")


def predictions(*, vol: Volume, model: ModelName, run: dict, batch_size: int):
    """(true labels, p(dog), test file paths) for a trained model, in the test subset's file order."""
    from tensorflow import keras

    from shared.data import list_files, subset_dataset

    data = subset_dataset(volume=vol, subset="test", image_size=run["image_size"], batch_size=batch_size,
                          shuffle=False)
    paths = [Path(p) for p in data.file_paths]
    folder = vol.model_dir(model.value)
    if model is ModelName.feature_extraction:
        from shared.features import ensure_features, load_features

        store = ensure_features(volume=vol, split_manifest=load_manifest(vol), weights=run["weights"],
                                seed=run["seed"], image_size=run["image_size"], batch_size=batch_size)
        x, y = load_features(store, "test")
        p = keras.models.load_model(folder / "best.keras").predict(np.asarray(x), batch_size=batch_size, verbose=0)
        return y, p.ravel(), paths
    _, labels = list_files(volume=vol, subset="test")  # the dataset's order: no second decoding pass for labels
    p = keras.models.load_model(folder / "best.keras").predict(data, verbose=0)
    return labels.ravel(), p.ravel(), paths


def evaluate_model(*, vol: Volume, model: ModelName, batch_size: int, force: bool) -> dict:
    """reports/<model>/: metrics.json and three PNGs. Reused when the model has not changed since."""
    folder, out = vol.model_dir(model.value), vol.report_dir(model.value)
    config = read_json(folder / "config.json")
    trained_at = config.get("finished_at")
    if (out / "metrics.json").exists() and not force:
        previous = read_json(out / "metrics.json")
        if previous.get("model_finished_at") == trained_at:
            return previous
    split = load_manifest(vol)
    y, p, paths = predictions(vol=vol, model=model, run=config["run"], batch_size=batch_size)
    metrics = binary_metrics(y, p)
    kind = config.get("data_source_kind")
    title = f"{model.value}\n{config.get('data_source')}" + (" [SYNTHETIC]" if kind == "synthetic" else "")
    report = {
        "model": model.value,
        "metrics": metrics,
        "seed_accuracy": SEED_ACCURACY[model],
        "seed_accuracy_text": SEED_TEXT[model],
        "data_source": config.get("data_source"),
        "data_source_kind": kind,
        "synthetic": kind == "synthetic",
        "note": synthetic_note(kind),
        "weights": config.get("weights"),
        "model_config": config,
        "model_finished_at": trained_at,
        "split_matches_training": split["fingerprint"] == config["run"]["split"],
        "evaluated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if not report["split_matches_training"]:
        say(f"warning: {model.value} was trained on another split than the one it is tested on now")
    wrong = [i for i in np.argsort(-np.abs(p - y)) if (p[i] > 0.5) != (y[i] == 1)][:MISTAKES]
    with staged_dir(vol.staging, f"evaluate-{model.value}") as tmp:
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
    """Score the asked-for model (an error if untrained) or every trained one; write the summary."""
    vol = Volume(config.data_dir)
    if config.model == ALL:
        wanted = list(ModelName)
    else:
        wanted = [ModelName(config.model)]
        if not trained(vol, wanted[0]):
            raise PermanentError(f"{config.model} is not trained (no {vol.model_dir(config.model)}/{COMPLETE}): "
                                 f"run `make train-{config.model}` first")
    load_manifest(vol)
    for model in wanted:
        if trained(vol, model):
            evaluate_model(vol=vol, model=model, batch_size=config.batch_size, force=config.force)
    rows = [_row(vol, m) for m in ModelName]  # the summary always covers every model
    write_summary(vol=vol, rows=rows)
    return [r for r in rows if r["model"] in {m.value for m in wanted}]


def _row(vol: Volume, model: ModelName) -> dict:
    path = vol.report_dir(model.value) / "metrics.json"
    if trained(vol, model) and path.exists():
        return read_json(path)
    return {"model": model.value, "missing": True, "seed_accuracy_text": SEED_TEXT[model]}


def sources(rows: list[dict]) -> str:
    found = sorted({r["data_source"] for r in rows if not r.get("missing") and r.get("data_source")})
    return "; ".join(found) or "no trained model"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def table_rows(rows: list[dict]) -> list[list[str]]:
    out = []
    for r in rows:
        if r.get("missing"):
            out.append([r["model"], "not trained", r["seed_accuracy_text"], "", "", "", "", "", ""])
            continue
        m = r["metrics"]
        out.append([r["model"] + (" [SYNTHETIC]" if r.get("synthetic") else ""), _pct(m["accuracy"]),
                    r["seed_accuracy_text"], _num(m["loss"]), _num(m["precision"]), _num(m["recall"]),
                    _num(m["f1"]), _num(m["roc_auc"]), r.get("weights") or ""])
    return out


HEADER = ["model", "test accuracy", "seed (book)", "loss", "precision", "recall", "F1", "ROC AUC", "weights"]


def write_summary(*, vol: Volume, rows: list[dict]) -> Path:
    synthetic = any(r.get("synthetic") for r in rows)
    lines = [f"# Dogs vs. Cats: test results on {sources(rows)}", ""]
    if synthetic:
        lines += [f"> **{synthetic_note('synthetic')}.** These numbers show the pipeline works; the seed's "
                  "column is what the book reports on Kaggle's photos.", ""]
    lines += ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(rows)]
    lines += ["", "Positive class: dog. Per-model metrics, confusion matrices, ROC curves and the most "
              "confident mistakes are in `reports/<model>/`.", ""]
    path = vol.reports / "summary.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".summary.md.tmp")
    tmp.write_text("\n".join(lines))
    tmp.replace(path)
    return path


def print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    synthetic = any(r.get("synthetic") for r in rows)
    title = f"Test results on {sources(rows)}" + (" [SYNTHETIC stand-in: not the book's data]" if synthetic else "")
    table = Table(title=title)
    for name in HEADER:
        table.add_column(name, justify="left" if name in ("model", "weights", "seed (book)") else "right")
    for cells in table_rows(rows):
        table.add_row(*cells)
    Console(width=160).print(table)
