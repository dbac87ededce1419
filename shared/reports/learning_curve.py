"""The learning curve: test accuracy against the number of training images, one line per model.

The chapter's lesson as a figure: with 2,000 training images a convnet from scratch overfits, augmentation
helps, and pretrained features change everything. Each point is a run on a learning-curve volume
(shared/data/subsample.py), scored on the split's own test subset. As keras-io's `sample_size_estimate`
example does, a power law `accuracy = a * n ** b` is fitted through each model's mean accuracies and
extrapolated to the number of images at which it would reach the book's accuracy.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from shared.core.figures import figure as _figure
from shared.core.figures import png_bytes
from shared.reports.evaluation import read_report
from shared.reports.stats import spread
from shared.training.catalog import SPECS
from shared.training.runs import finished_seeds
from shared.volume.fsutil import read_cached, write_bytes, write_json
from shared.volume.layout import Volume

BOOK_TRAIN_IMAGES = 2000  # the book's training subset: 1,000 per class
FAR = 10_000_000  # a prediction beyond this says more about the fit than about the data


def collect(vol: Volume) -> list[dict]:
    """Every scored run of every learning-curve volume: its size, model, seed, accuracy and 95% interval."""
    points = []
    for size in vol.learning_sizes:
        sub = vol.learning(size)
        split = (read_cached(sub.split_manifest) or {}).get("fingerprint")
        for s in SPECS.values():
            for seed in finished_seeds(sub, s.name.value):
                report = read_report(sub.report_dir(s.name.value, seed) / "metrics.json")
                if not report or report.get("split") != split or "metrics" not in report:
                    continue  # not scored yet, or scored on a subset made before the split was redone
                points.append({"train_images": size, "model": s.name.value, "seed": seed,
                               "accuracy": report["metrics"]["accuracy"], "ci95": report.get("accuracy_ci95"),
                               "test_images": report.get("test_images"), "synthetic": bool(report.get("synthetic")),
                               "data_source": report.get("data_source"), "weights": report.get("weights"),
                               "precision": report.get("precision")})
    return points


def by_model(points: list[dict]) -> dict[str, dict[int, list[dict]]]:
    out: dict[str, dict[int, list[dict]]] = {}
    for p in points:
        out.setdefault(p["model"], {}).setdefault(p["train_images"], []).append(p)
    return {m: dict(sorted(sizes.items())) for m, sizes in out.items()}


def fit(sizes: list[int], accuracies: list[float]) -> tuple[float, float] | None:
    """(a, b) of accuracy = a * n ** b, least squares in log-log space; None with fewer than two sizes."""
    if len(set(sizes)) < 2 or min(accuracies) <= 0:
        return None
    b, log_a = np.polyfit(np.log(sizes), np.log(accuracies), 1)
    return float(math.exp(log_a)), float(b)


def images_for(target: float, a: float, b: float) -> float | None:
    """Training images at which the fitted curve reaches `target`; None if it never does (flat or falling)."""
    if b <= 0 or target <= 0:
        return None
    log_n = (math.log(target) - math.log(a)) / b
    return math.inf if log_n > math.log(FAR) else math.exp(log_n)  # a nearly flat fit: beyond any data


def curves(points: list[dict]) -> dict[str, dict]:
    """Per model: each size's mean, range and runs; the fit; where it reaches the book's accuracy."""
    out = {}
    for model, sizes in by_model(points).items():
        rows = []
        for size, runs in sizes.items():
            s = spread([r["accuracy"] for r in runs])
            low, high = (s.low, s.high) if s.n > 1 else tuple(runs[0]["ci95"] or (s.low, s.high))
            rows.append({"train_images": size, "n": s.n, "mean": s.mean, "low": low, "high": high,
                         "interval": "min-max across seeds" if s.n > 1 else "95% Wilson interval of one run",
                         "seeds": sorted(r["seed"] for r in runs)})
        book = SPECS[model].book_accuracy if model in SPECS else None
        fitted = fit([r["train_images"] for r in rows], [r["mean"] for r in rows])
        reach = images_for(book, *fitted) if fitted and book else None
        out[model] = {"points": rows, "book_accuracy": book,
                      "fit": None if fitted is None else {"a": fitted[0], "b": fitted[1]},
                      "book_reached_at": None if reach is None or reach > FAR else round(reach)}
    return out


def prediction_text(model: str, curve: dict) -> str:
    if curve["fit"] is None:
        return f"{model}: one size only, no curve to fit"
    if curve["book_accuracy"] is None:
        return f"{model}: the book reports no test accuracy to reach"
    where = curve["book_reached_at"]
    if where is None:
        return f"{model}: the fitted curve does not reach the book's {100 * curve['book_accuracy']:.1f}% within " \
               f"{FAR:,} images"
    return f"{model}: the fitted curve reaches the book's {100 * curve['book_accuracy']:.1f}% at about " \
           f"{where:,} training images"


def figure_png(fitted: dict[str, dict], *, title: str) -> bytes:
    plt, fig = _figure()
    fig.set_size_inches(9, 5.5)
    ax = fig.gca()
    top = max([r["train_images"] for c in fitted.values() for r in c["points"]] + [BOOK_TRAIN_IMAGES])
    for model, c in fitted.items():
        xs = np.array([r["train_images"] for r in c["points"]], dtype=float)
        mean = np.array([r["mean"] for r in c["points"]])
        err = np.array([[m - r["low"] for m, r in zip(mean, c["points"], strict=True)],
                        [r["high"] - m for m, r in zip(mean, c["points"], strict=True)]])
        line = ax.errorbar(xs, mean, yerr=np.clip(err, 0, None), marker="o", capsize=3, label=model)
        colour = line[0].get_color()
        if c["fit"]:
            end = max(top, c["book_reached_at"] or 0) if (c["book_reached_at"] or 0) <= 20 * top else top
            grid = np.geomspace(xs.min(), end, 100)
            ax.plot(grid, c["fit"]["a"] * grid ** c["fit"]["b"], linestyle="--", color=colour, alpha=0.7)
            if c["book_reached_at"] and c["book_reached_at"] <= end:
                ax.plot([c["book_reached_at"]], [c["book_accuracy"]], marker="x", markersize=10, color=colour)
        if c["book_accuracy"] is not None:
            ax.plot([BOOK_TRAIN_IMAGES], [c["book_accuracy"]], marker="*", markersize=13, color=colour,
                    linestyle="none")
    ax.set_xscale("log")
    ax.set_xlabel("training images (log scale)")
    ax.set_ylabel("test accuracy")
    ax.set_title("Test accuracy by training images (bars: min-max across seeds, or one run's 95% Wilson "
                 "interval;\nstar: the book at 2,000; dashed: fitted a*n^b; x: where it reaches the book)\n" + title,
                 fontsize=9)
    ax.legend(fontsize="small")
    return png_bytes(fig, plt)


def write_learning_curve(*, vol: Volume) -> dict | None:
    """reports/learning-curve.json and .png from every scored learning-curve run; None when there is none.
    Callers hold the summary lock: whichever writes last has seen every run scored before it."""
    points = collect(vol)
    if not points:
        return None
    fitted = curves(points)
    sources = sorted({p["data_source"] or "?" for p in points})
    synthetic = any(p["synthetic"] for p in points)
    whole = (read_cached(vol.split_manifest) or {}).get("source") or "; ".join(sources)  # the sizes' common source
    title = whole + (" [SYNTHETIC: not the book's data]" if synthetic else "")
    result = {"points": points, "curves": fitted, "data_source": sources, "synthetic": synthetic,
              "weights": sorted({p["weights"] or "none" for p in points}),
              "precision": sorted({p["precision"] or "?" for p in points}),
              "predictions": [prediction_text(m, c) for m, c in fitted.items()]}
    write_bytes(vol.reports / "learning-curve.png", figure_png(fitted, title=title))
    write_json(vol.reports / "learning-curve.json", result)
    return result


def read_learning_curve(vol: Volume) -> tuple[dict, Path] | None:
    data = read_cached(vol.reports / "learning-curve.json")
    png = vol.reports / "learning-curve.png"
    return (data, png) if isinstance(data, dict) and png.is_file() else None
