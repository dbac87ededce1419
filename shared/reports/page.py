"""reports/index.html: the chapter on one page, self-contained (every figure inline), opened from the volume.

The story in order: the comparison table (what every model shares in one line above it), every model's
validation accuracy by epoch beside the book's number, then per model: its parameters (trainable or not),
its augmentation preview, its training against validation curves (overfitting), its confusion matrix and
its most confident mistakes with their Grad-CAM heat maps; what each run cost, and the MNIST convnet.

Plain f-strings, every piece of user text through html.escape: the page is one template of a few dozen
lines, which a template engine would not make shorter.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from shared.reports import plots
from shared.reports.learning_curve import read_learning_curve
from shared.reports.mnist_report import read_report
from shared.reports.stats import pct
from shared.reports.summary import HEADER, notes, sources, table_rows, warnings
from shared.training.catalog import spec
from shared.training.mnist import MnistNet
from shared.volume.fsutil import read_cached, write_text
from shared.volume.layout import Volume

STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:70em;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.3em .6em;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.warning{background:#fff3cd;border:1px solid #e0c36c;padding:.6em 1em}img{max-width:100%;border:1px solid #eee}
.figures{display:flex;flex-wrap:wrap;gap:1em}.figures figure{margin:0;flex:1 1 30em}"""


def _img(data: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def _file_img(path: Path, alt: str) -> str:
    return _img(path.read_bytes(), alt) if path.is_file() else ""


def _table(headers: list[str], rows: list[list[str]], *, table_id: str, attrs: list[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(f"<tr{(' ' + attrs[i]) if attrs else ''}>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells)
                   + "</tr>" for i, cells in enumerate(rows))
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _histories(vol: Volume, row: dict) -> list[dict]:
    found = [read_cached(vol.model_dir(row["model"], seed) / "history.json") for seed in row.get("seeds", [])]
    return [h for h in found if isinstance(h, dict) and h.get("val_accuracy") and h.get("accuracy")]


def _seconds(value) -> str:
    return "n/a" if not isinstance(value, int | float) else f"{value:,.1f}"


def cost_rows(rows: list[dict]) -> list[list[str]]:
    """One row per run, a total per model of several runs, and the whole chapter's."""
    out, total = [], 0.0
    for row in rows:
        model_total = sum((run.get("cost") or {}).get("wall_seconds") or 0.0 for run in row["runs"])
        total += model_total
        for run in row["runs"]:
            c = run.get("cost") or {}
            rate = c.get("images_per_second")
            out.append([row["model"], str(run["seed"]), pct(run["metrics"]["accuracy"]),
                        "–".join(pct(v) for v in run.get("accuracy_ci95") or []) or "n/a",
                        _seconds(c.get("wall_seconds")), _seconds(c.get("epoch_seconds")),
                        "n/a" if rate is None else f"{rate:,.0f}", str(c.get("device") or "n/a"),
                        str(c.get("precision") or "n/a"), str(c.get("replicas") or "n/a")])
        if len(row["runs"]) > 1:
            out.append([f"{row['model']}, all {len(row['runs'])} runs", "", "", "", _seconds(model_total), "", "",
                        "", "", ""])
    if out:
        out.append(["the whole chapter", "", "", "", _seconds(total), "", "", "", "", ""])
    return out


COST_HEADER = ["model", "seed", "test accuracy", "95% interval (Wilson)", "training wall time (s)", "s / epoch",
               "images / s", "device", "precision", "replicas"]


def _mnist(vol: Volume) -> str:
    reports = [r for net in MnistNet
               if isinstance(r := read_report(vol.mnist_report_dir(net.value) / "metrics.json"), dict)]
    if not reports:
        return "<p>Not run yet: <code>make train-mnist</code>.</p>"
    cells = [[r.get("model", "?") + (" [SYNTHETIC]" if r.get("synthetic") else ""), f"{r.get('params', 0):,}",
              pct(r["metrics"]["accuracy"]), str(r["metrics"]["count"]), str(r.get("data_source", ""))]
             for r in reports if "metrics" in r]
    return _table(["net", "parameters", "test accuracy", "test images", "data"], cells, table_id="mnist")


# Columns that are often the same for every model: shown once above the table when they are.
SHARED = ("test images", "weights", "compute", "settings", "split", "seeds")


def split_columns(rows: list[dict]) -> tuple[list[str], list[tuple[str, str]]]:
    """(the table's columns, [(column, value)] of those with one value across every model with runs)."""
    cells = [dict(zip(HEADER, c, strict=True)) for r, c in zip(rows, table_rows(rows), strict=True) if r["runs"]]
    same = [(h, cells[0][h]) for h in SHARED if cells and len({c[h] for c in cells}) == 1]
    shared = {h for h, _ in same}
    return [h for h in HEADER if h not in shared], same


def title(rows: list[dict]) -> str:
    kinds = {r.get("data_source_kind") for row in rows for r in row["runs"]}
    data = ("a generated stand-in (synthetic images, not Kaggle's photos)" if "synthetic" in kinds
            else "Kaggle's photos" if kinds else "no data yet")
    return f"Dogs vs. Cats, chapter 8: {len(rows)} convnets on {data}"


def _parameters(row: dict) -> str:
    counts = (row["runs"][0].get("model_config") or {}).get("parameters") or {}
    if not counts:
        return ""
    what = " (its head, trained on stored VGG16 features)" if spec(row["model"]).on_features else ""
    return (f"<p class=\"parameters\">Parameters{what}: {counts.get('total', 0):,} in all, "
            f"{counts.get('trainable', 0):,} trainable, {counts.get('non_trainable', 0):,} frozen "
            f"(<code>summary.txt</code> beside the model lists every layer).</p>")


def _model_section(vol: Volume, row: dict) -> list[str]:
    histories = _histories(vol, row)
    seed = row["runs"][0]["seed"]
    first = vol.report_dir(row["model"], seed)
    parts = [f'<h2 id="{html.escape(row["model"])}">{html.escape(row["model"])}</h2>', _parameters(row),
             '<div class="figures">']
    augmentation = _file_img(vol.reports / row["model"] / "augmentation.png", row["model"] + ": augmentation")
    if augmentation:
        parts.append(f"<figure>{augmentation}<figcaption>nine augmentations of one training image, by the "
                     "model's own layers</figcaption></figure>")
    if histories:
        parts.append("<figure>" + _img(plots.train_vs_validation(runs=histories, title=row["model"]),
                                       f"{row['model']}: training and validation accuracy") + "</figure>")
    for name, what in (("confusion_matrix.png", "confusion matrix"),
                       ("mistakes.png", "most confident mistakes, with their Grad-CAM heat maps")):
        image = _file_img(first / name, row["model"] + ": " + what)
        parts.append(f"<figure>{image}<figcaption>{what}, seed {seed}</figcaption></figure>")
    return [*parts, "</div>"]


def _learning_curve(vol: Volume) -> list[str]:
    found = read_learning_curve(vol)
    if found is None:
        return []
    data, png = found
    said = "; ".join(f"{k} {', '.join(map(str, data.get(k) or []))}" for k in ("data_source", "weights", "precision"))
    items = "".join(f"<li>{html.escape(line)}</li>" for line in data.get("predictions", []))
    return ['<h2 id="learning-curve">How much data each model needs</h2>',
            f"<p>Each model trained on the first images of the training subset, scored on the same test subset "
            f"({html.escape(said)}).</p>",
            _file_img(png, "test accuracy by training images, every model"), f"<ul>{items}</ul>"]


def render(*, vol: Volume, rows: list[dict]) -> str:
    heading = title(rows)
    parts = [f"<h1>{html.escape(heading)}</h1>", f"<p>Data: {html.escape(sources(rows))}.</p>"]
    parts += [f'<p class="warning"><strong>{html.escape(w)}</strong></p>' for w in warnings(rows)]
    columns, same = split_columns(rows)
    parts.append(f"<h2>The chapter's {len(rows)} models</h2>")
    if same:
        parts.append('<p id="shared">Every model here: ' + "; ".join(
            f"{html.escape(h)} <strong>{html.escape(v)}</strong>" for h, v in same) + ".</p>")
    parts.append(_table(columns, table_rows(rows, columns), table_id="comparison",
                        attrs=[f'data-model="{html.escape(r["model"])}" data-n="{len(r["runs"])}"' for r in rows]))
    parts += [f"<p>Not in the table: {html.escape(line)}</p>" for line in notes(rows)]
    curves = {r["model"]: [h["val_accuracy"] for h in hs] for r in rows if (hs := _histories(vol, r))}
    if curves:
        book = {r["model"]: r.get("book_accuracy") for r in rows}
        parts += ["<h2>Validation accuracy by epoch</h2>",
                  _img(plots.validation_by_epoch(curves=curves, book=book, title=sources(rows)),
                       "validation accuracy by epoch, every model")]
    for row in rows:
        if row["runs"]:
            parts += _model_section(vol, row)
    parts += _learning_curve(vol)
    parts += ["<h2>Cost</h2>", _table(COST_HEADER, cost_rows(rows), table_id="cost"),
              "<h2>MNIST: the chapter's opening convnet</h2>", _mnist(vol)]
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(heading)}</title>'
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n")


def write_page(*, vol: Volume, rows: list[dict]) -> Path:
    return write_text(vol.reports / "index.html", render(vol=vol, rows=rows))
