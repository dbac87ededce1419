"""The MNIST nets' reports: test metrics, the most confident mistakes, and reports/mnist.md beside the book."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from shared.core.console import say
from shared.data.mnist_data import MnistData
from shared.reports import plots
from shared.training.mnist import BOOK, MnistNet, images
from shared.training.models import load_trained
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
from shared.volume.layout import MODEL_FILE, Volume

# 2: the book's numbers are book_accuracy and book_params (version 1 called them seed_*; read_report maps them)
METRICS_VERSION = 2
MISTAKES = 16
EPSILON = 1e-7  # Keras's clipping in cross-entropy
_OLD_KEYS = {"seed_accuracy": "book_accuracy", "seed_params": "book_params"}


def read_report(path: Path) -> dict | None:
    """A net's metrics.json, any version, with the book's numbers under their current keys; None if unreadable."""
    return read_cached(path, renamed=_OLD_KEYS)


def metrics(y: np.ndarray, p: np.ndarray) -> dict:
    """Accuracy, loss, per-class accuracy and the confusion matrix (rows true, columns predicted)."""
    y = np.asarray(y).astype(int).ravel()
    predicted = p.argmax(axis=1)
    confusion = np.zeros((10, 10), dtype=int)
    np.add.at(confusion, (y, predicted), 1)
    per_class = {str(d): (float(confusion[d, d] / confusion[d].sum()) if confusion[d].sum() else None)
                 for d in range(10)}
    loss = -np.log(np.clip(p[np.arange(len(y)), y], EPSILON, 1 - EPSILON)).mean()
    return {"count": int(len(y)), "accuracy": float((predicted == y).mean()), "loss": float(loss),
            "per_class_accuracy": per_class, "confusion_matrix": confusion.tolist()}


def evaluate_net(*, vol: Volume, net: MnistNet, data: MnistData, force: bool) -> dict:
    folder, out = vol.mnist_model_dir(net.value), vol.mnist_report_dir(net.value)
    identity = {"model_sha256": sha256_file(folder / MODEL_FILE), "data": data.source["sha256"],
                "metrics_version": METRICS_VERSION}
    previous = (None if force else read_report(out / "metrics.json")) or {}  # unreadable: scored again
    if not force and previous.get("identity") == identity:
        say(f"mnist {net.value}: report is current at {out}: nothing to do")
        return previous
    config = read_json(folder / "config.json")
    p = load_trained(folder / MODEL_FILE).predict(images(data.x_test), batch_size=256, verbose=0)
    result = metrics(data.y_test, p)
    note = "SYNTHETIC: generated digits, not MNIST; not comparable with the book" if data.synthetic else ""
    report = {"model": net.value, "metrics": result, "params": config["params"],
              "book_accuracy": BOOK[net]["accuracy"], "book_params": BOOK[net]["params"],
              "data_source": data.source["description"], "data_source_kind": data.source["kind"],
              "synthetic": data.synthetic, "note": note, "model_config": config, "identity": identity,
              "trained_at": config["finished_at"], "evaluated_at": datetime.now(UTC).isoformat(timespec="seconds")}
    predicted = p.argmax(axis=1)
    wrong = [i for i in np.argsort(-p.max(axis=1)) if predicted[i] != data.y_test[i]][:MISTAKES]
    title = f"mnist {net.value} on {data.source['description']}" + (" [SYNTHETIC]" if data.synthetic else "")
    clear_stale(vol.staging, f"mnist-report-{net.value}")  # a killed run's (this one holds the net's lock)
    with staged_dir(vol.staging, f"mnist-report-{net.value}") as tmp:
        write_json(tmp / "metrics.json", report)
        plots.confusion_matrix(matrix=result["confusion_matrix"], path=tmp / "confusion_matrix.png",
                               title=f"Confusion matrix: {title}", labels=tuple(str(d) for d in range(10)))
        plots.image_grid(items=[(data.x_test[i], f"true {data.y_test[i]}, predicted {predicted[i]}\n"
                                 f"p {p[i, predicted[i]]:.2f}") for i in wrong],
                         path=tmp / "mistakes.png", title=f"Most confident mistakes: {title}")
        replace_dir(tmp, out)
    say(f"mnist {net.value}: test accuracy {result['accuracy']:.3f} on {result['count']} images"
        + (" [SYNTHETIC]" if data.synthetic else f" (the book: {BOOK[net]['accuracy'] or 'not reported'})"))
    return report


def write_summary(vol: Volume) -> Path:
    """reports/mnist.md: both nets beside the book's numbers, and what the comparison shows.

    Read and written under one lock: the two nets may finish at once, and neither may drop the other's row.
    """
    with vol.lock("mnist-summary", what="writing the MNIST summary", wait_s=None):
        return _write_summary(vol)


def _write_summary(vol: Volume) -> Path:
    reports = {n: r for n in MnistNet if (r := read_report(vol.mnist_report_dir(n.value) / "metrics.json"))}
    lines = ["# MNIST: the chapter's opening convnet, with and without max-pooling", "",
             "| model | parameters | book's parameters | test accuracy | book | test images | data | "
             "trained | evaluated |", "|---|---|---|---|---|---|---|---|---|"]
    for net in MnistNet:
        r = reports.get(net)
        book = "n/a" if BOOK[net]["accuracy"] is None else f"{100 * BOOK[net]['accuracy']:.1f}%"
        if r is None:
            lines.append(f"| {net.value} | | {BOOK[net]['params']:,} | not trained | {book} | | | | |")
            continue
        lines.append(f"| {net.value}{' [SYNTHETIC]' if r['synthetic'] else ''} | {r['params']:,} | "
                     f"{r['book_params']:,} | {100 * r['metrics']['accuracy']:.1f}% | {book} | "
                     f"{r['metrics']['count']} | {r['data_source']} | {r['trained_at']} | {r['evaluated_at']} |")
    lines += ["", _comparison(reports), ""]
    return write_text(vol.reports / "mnist.md", "\n".join(lines))


def _comparison(reports: dict) -> str:
    text = ("Without max-pooling the net has 6.8 times the parameters (712,202 against 104,202), 87% of them in "
            "the Dense layer on a 22x22x128 map, and its last convolution sees only 7x7 pixels of the digit: "
            "more to overfit with, less of the picture to learn from.")
    pooled, flat = reports.get(MnistNet.convnet), reports.get(MnistNet.no_max_pool)
    if pooled and flat:
        text += (f" Here it scored {100 * flat['metrics']['accuracy']:.1f}% against "
                 f"{100 * pooled['metrics']['accuracy']:.1f}% with pooling.")
    if any(r["synthetic"] for r in reports.values()):
        text += " **SYNTHETIC**: generated digits, not MNIST; the book's column is what it reports on MNIST."
    return text
