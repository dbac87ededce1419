"""One row per model over all of its runs (seeds): reports/summary.md, the console table, and the page.

A row holds the runs whose report is current; the mean, the sample standard deviation and the range of
their test accuracies; and where the book's number falls against that range. Trained runs without a
current report, and runs a Kubernetes index gave up on, are listed so nothing is silently left out.
"""

from __future__ import annotations

from pathlib import Path

from shared.core import console
from shared.core.errors import CatsDogsError
from shared.core.hints import run_hint
from shared.reports.evaluation import TrainedOnAnotherSplit, current_run, identity, read_report, synthetic_note
from shared.reports.stats import mark, mean_sd_text, pct, spread
from shared.training.catalog import ModelSpec
from shared.training.runs import finished_seeds, folder_seed
from shared.volume.fsutil import read_cached, write_text
from shared.volume.layout import Volume, run_key

ANOTHER_SPLIT = "trained on another split"


def model_row(vol: Volume, s: ModelSpec, split: dict, scored: dict, failed: dict) -> dict:
    name = s.name.value
    row = {"model": name, "book_text": s.book_text, "book_accuracy": s.book_accuracy, "runs": [],
           "pending": {}}
    for seed in finished_seeds(vol, name):
        report, why = scored.get((name, seed)), failed.get((name, seed))
        if report is None:
            report, why = _current_report(vol, name, seed, split, why)
        if report is not None:
            row["runs"].append(report)
        else:
            row["pending"][seed] = why
    for record in _failures(vol, name):
        if record["seed"] not in row["pending"] and record["seed"] not in [r["seed"] for r in row["runs"]]:
            row["pending"][record["seed"]] = f"failed (exit {record['exit_code']}): {record['error']}"
    if row["runs"]:
        row.update(aggregate(row["runs"], book=s.book_accuracy))
    else:
        statuses = list(row["pending"].values())
        row["status"] = statuses[0] if len(statuses) == 1 else ("; ".join(
            f"seed {seed}: {why}" for seed, why in row["pending"].items()) or "not trained")
    return row


def _current_report(vol: Volume, name: str, seed: int, split: dict, error: CatsDogsError | None):
    """(its report if still current, else None and why)."""
    if error is None:
        try:
            run = current_run(vol, name, split, seed)
            report = read_report(vol.report_dir(name, seed) / "metrics.json") or {}
            if report.get("identity") == identity(vol, run, split):
                return report, None
            return None, f"not evaluated yet ({run_hint('evaluate', 'make evaluate')})"
        except CatsDogsError as e:
            error = e
    return None, ANOTHER_SPLIT if isinstance(error, TrainedOnAnotherSplit) else f"not scored: {error}"


FAILURE_FIELDS = {"model": str, "seed": int, "exit_code": int, "error": str}


def _failures(vol: Volume, name: str) -> list[dict]:
    """The failure records of `name`'s runs. One that is garbled or of another shape still says that a run
    failed (its name, `<model>-seed-<S>.json`, says which), with what it lacks; it never stops the summary."""
    folder = vol.failure_record(name).parent
    out = []
    for path in sorted(folder.glob(f"{name}-seed-*.json")) if folder.is_dir() else []:
        seed = folder_seed("seed-" + path.stem.removeprefix(f"{name}-seed-"))
        if seed is None:
            continue  # another model's whose name starts with this one's, or not ours
        record = read_cached(path, fields=FAILURE_FIELDS)
        if record is None or record["model"] != name or record["seed"] != seed:
            record = {"model": name, "seed": seed, "exit_code": "?",
                      "error": f"its failure record is unreadable or of another shape ({path.name})"}
        out.append(record)
    return out


def aggregate(runs: list[dict], *, book: float | None) -> dict:
    """The runs' spread of each number, and where the book's accuracy falls against it: the runs' range, or
    with a single run its 95% interval from the test set's size (a range of one value says nothing)."""
    runs.sort(key=lambda r: r["seed"])
    accuracy = spread([r["metrics"]["accuracy"] for r in runs])
    roc = [r["metrics"]["roc_auc"] for r in runs if r["metrics"]["roc_auc"] is not None]
    interval = (accuracy.low, accuracy.high)
    if accuracy.n == 1 and len(runs[0].get("accuracy_ci95") or []) == 2:
        interval = tuple(runs[0]["accuracy_ci95"])
    return {"n": accuracy.n, "accuracy": accuracy, "loss": spread([r["metrics"]["loss"] for r in runs]),
            "roc_auc": spread(roc) if roc else None, "interval": interval, "book_mark": mark(book, *interval),
            "seeds": [r["seed"] for r in runs], "synthetic": any(r.get("synthetic") for r in runs)}


def _interval(r: dict) -> str:
    low, high = r["interval"]
    return f"{pct(low)}–{pct(high)}" + (" (95%, Wilson)" if r["n"] == 1 else "")


def sources(rows: list[dict]) -> str:
    found = sorted({r["data_source"] for row in rows for r in row["runs"] if r.get("data_source")})
    return "; ".join(found) or "no scored model"


def _settings(run: dict) -> str:
    lr = "default" if run["learning_rate"] is None else f"{run['learning_rate']:g}"
    return f"{run['epochs']} epochs, {run['image_size']}px, batch {run['batch_size']}, lr {lr}"


def _joined(row: dict, key: str) -> str:
    """The runs' distinct values of `key` (one, when the seeds were run alike)."""
    values = sorted({str(r.get(key) or "") for r in row["runs"]})
    return ", ".join(values)


SPREAD = "min–max (one run: its 95% interval)"
# (header, cell of a row with runs); a row without runs shows its status in the second column.
COLUMNS = [
    ("model", lambda r: r["model"] + (" [SYNTHETIC]" if r.get("synthetic") else "")),
    ("runs", lambda r: str(r["n"])),
    ("test accuracy (mean ± sd)", lambda r: mean_sd_text(r["accuracy"])),
    (SPREAD, _interval),
    ("book", lambda r: r["book_text"] or "n/a"),
    ("book vs runs", lambda r: r["book_mark"] or "n/a"),
    ("loss", lambda r: mean_sd_text(r["loss"], percent=False)),
    ("ROC AUC", lambda r: "n/a" if r["roc_auc"] is None else mean_sd_text(r["roc_auc"], percent=False)),
    ("test images", lambda r: _joined(r, "test_images")),
    ("weights", lambda r: _joined(r, "weights")),
    ("compute", lambda r: _joined(r, "precision")),
    ("settings", lambda r: ", ".join(sorted({_settings(run["model_config"]["run"]) for run in r["runs"]}))),
    ("seeds", lambda r: " ".join(map(str, r["seeds"]))),
    ("split", lambda r: _joined(r, "split")),
]
CONSOLE = ("model", "runs", "test accuracy (mean ± sd)", SPREAD, "book", "book vs runs", "ROC AUC", "compute")
HEADER = [h for h, _ in COLUMNS]


def table_rows(rows: list[dict], headers: list[str] = HEADER) -> list[list[str]]:
    cells = dict(COLUMNS)
    out = []
    for r in rows:
        if r["runs"]:
            out.append([cells[h](r) for h in headers])
        else:
            out.append([r["model"], r["status"], *[""] * (len(headers) - 2)])
            if "book" in headers:
                out[-1][headers.index("book")] = r["book_text"] or "n/a"
    return out


def notes(rows: list[dict]) -> list[str]:
    """Runs left out of a row: trained but not scored (yet), or given up on."""
    return [f"{run_key(r['model'], seed)}: {why}" for r in rows if r["runs"] for seed, why in r["pending"].items()]


def warnings(rows: list[dict]) -> list[str]:
    """What keeps a number from being mistaken for the book's; the page shows the same lines."""
    out = []
    if any(r.get("synthetic") for r in rows):
        out.append(f"{synthetic_note('synthetic')}. These numbers show the pipeline works; the book's column is "
                   "what it reports on Kaggle's photos.")
    weights = sorted({w for r in rows for run in r["runs"] if "not the book" in (w := run.get("weights") or "")})
    return out + [f"Weights: {w}." for w in weights]


def write_summary(*, vol: Volume, rows: list[dict]) -> Path:
    lines = [f"# Dogs vs. Cats: test results on {sources(rows)}", ""]
    for line in warnings(rows):
        lines += [f"> **{line}**", ""]
    lines += ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in cells) + " |" for cells in table_rows(rows)]
    lines += ["", *[f"- not in the table: {line}" for line in notes(rows)]]
    lines += ["", "Positive class: dog. `runs`: the seeds scored (`make chapter SEEDS=...`); `± sd` the sample "
              "standard deviation across them; `book vs runs` where the book's single run falls against their range "
              "(against the 95% Wilson interval of the test accuracy when there is one run). "
              "Each run's 95% interval from its test-set size (Wilson), its cost, confusion matrix, ROC curve and "
              "most confident mistakes are in `reports/<model>/seed-<S>/` and on the page `reports/index.html`.", ""]
    return write_text(vol.reports / "summary.md", "\n".join(lines))


def print_table(rows: list[dict]) -> None:
    synthetic = any(r.get("synthetic") for r in rows)
    title = f"Test results on {sources(rows)}" + (" [SYNTHETIC stand-in: not the book's data]" if synthetic else "")
    console.print_table(title=title, columns=list(CONSOLE), rows=table_rows(rows, list(CONSOLE)), width=160,
                        left=("model", "book", "book vs runs", "compute"))
