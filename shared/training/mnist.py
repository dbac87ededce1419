"""The chapter's opening convnet on MNIST, and the same net without max-pooling: train, test, report.

Layer for layer as the seed: RMSprop, sparse categorical cross-entropy, 5 epochs, batches of 64, no
validation set (so the best checkpoint is the epoch with the lowest training loss).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path

import numpy as np

from shared.data.mnist_data import MnistData, load
from shared.reports import plots
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
from shared.volume.layout import COMPLETE, MODEL_FILE, Volume
from shared.volume.progress import is_terminal, say

METRICS_VERSION = 1
MISTAKES = 16
EPSILON = 1e-7  # Keras's clipping in cross-entropy


class MnistNet(str, Enum):
    convnet = "convnet"
    no_max_pool = "no-max-pool"


# What the seed reports: the pooled net's test accuracy; for the other, only its size.
SEED = {MnistNet.convnet: {"accuracy": 0.989, "params": 104_202},
        MnistNet.no_max_pool: {"accuracy": None, "params": 712_202}}


@dataclass(frozen=True)
class MnistConfig:
    data_dir: Path
    model: MnistNet = MnistNet.convnet
    source: str = "keras"  # keras | synthetic | PATH of an mnist.npz
    samples: int = 6000  # training images of --source synthetic (a sixth as many test images)
    epochs: int = 5
    batch_size: int = 64
    seed: int = 1337
    force: bool = False


@dataclass(frozen=True)
class MnistRun:
    """What a trained net depends on; a finished or killed run is reused only if equal."""

    model: str
    epochs: int
    batch_size: int
    seed: int
    data: str  # sha256 of the arrays


def build_mnist(*, pooling: bool = True):
    from tensorflow import keras
    from tensorflow.keras import layers

    inputs = keras.Input(shape=(28, 28, 1))
    x = inputs
    for filters in (32, 64):
        x = layers.Conv2D(filters=filters, kernel_size=3, activation="relu")(x)
        if pooling:
            x = layers.MaxPooling2D(pool_size=2)(x)
    x = layers.Conv2D(filters=128, kernel_size=3, activation="relu")(x)
    x = layers.Flatten()(x)
    model = keras.Model(inputs=inputs, outputs=layers.Dense(10, activation="softmax")(x))
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def images(x: np.ndarray) -> np.ndarray:
    return x.reshape((-1, 28, 28, 1)).astype("float32") / 255


def run_mnist(*, config: MnistConfig) -> dict:
    """Train (or resume, or reuse) the net, test it, write its report and reports/mnist.md."""
    vol = Volume(config.data_dir)
    net = MnistNet(config.model)
    data = load(source=config.source, synthetic_path=vol.mnist / f"synthetic-{config.samples}-{config.seed}.npz",
                samples=config.samples, seed=config.seed)
    run = MnistRun(model=net.value, epochs=config.epochs, batch_size=config.batch_size, seed=config.seed,
                   data=data.source["sha256"])
    with vol.lock(f"mnist-{net.value}", what=f"mnist {net.value}"):
        return _run(config, vol, net, data, run)


def _run(config: MnistConfig, vol: Volume, net: MnistNet, data: MnistData, run: MnistRun) -> dict:
    folder = vol.mnist_model_dir(net.value)
    trained = (folder / COMPLETE).exists() and (read_cached(folder / "config.json") or {}).get("run") == asdict(run)
    if not trained or config.force:
        _train(vol=vol, run=run, data=data)
    else:
        say(f"mnist {net.value} is already trained at {folder} (--force retrains it)")
    report = _evaluate(vol=vol, net=net, data=data, force=config.force)
    write_summary(vol)
    return report


def _train(*, vol: Volume, run: MnistRun, data: MnistData) -> None:
    from tensorflow import keras

    from shared.reports.plots import training_curves
    from shared.training.callbacks import (
        AtomicBestCheckpoint,
        EpochState,
        StopOnNonFinite,
        history_lists,
        resumable_state,
        resume,
    )

    work = vol.staging / f"mnist-{run.model}"
    state = resumable_state(work, asdict(run), fresh=False)  # --force redoes a finished net, resumes a killed one
    keras.utils.set_random_seed(run.seed)
    model = build_mnist(pooling=run.model == MnistNet.convnet.value)
    history, initial_epoch, best = resume(model, work, state, monitor="loss")
    if state:
        say(f"resuming mnist {run.model} after epoch {initial_epoch} of {run.epochs}")
    callbacks = [StopOnNonFinite(),
                 AtomicBestCheckpoint(work / MODEL_FILE, record=work / "best.json", best=best, monitor="loss"),
                 EpochState(work, config=asdict(run), history=history)]
    if initial_epoch < run.epochs:
        model.fit(images(data.x_train), data.y_train, epochs=run.epochs, batch_size=run.batch_size,
                  initial_epoch=initial_epoch, callbacks=callbacks, verbose=1 if is_terminal() else 2)
    history = history_lists(callbacks[2].history, run.epochs)
    write_json(work / "history.json", history)
    write_json(work / "config.json", {"run": asdict(run), "data_source": data.source,
                                      "params": model.count_params(),
                                      "finished_at": datetime.now(UTC).isoformat(timespec="seconds")})
    training_curves(history=history, out_dir=work, title=f"mnist {run.model} on {data.source['description']}")
    for leftover in [work / "state.json", *work.glob("epoch-*.weights.h5")]:
        leftover.unlink(missing_ok=True)
    (work / COMPLETE).write_text(datetime.now(UTC).isoformat() + "\n")  # last
    replace_dir(work, vol.mnist_model_dir(run.model))


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


def _evaluate(*, vol: Volume, net: MnistNet, data: MnistData, force: bool) -> dict:
    folder, out = vol.mnist_model_dir(net.value), vol.mnist_report_dir(net.value)
    identity = {"model_sha256": sha256_file(folder / MODEL_FILE), "data": data.source["sha256"],
                "metrics_version": METRICS_VERSION}
    previous = (None if force else read_cached(out / "metrics.json")) or {}  # unreadable: scored again
    if not force and previous.get("identity") == identity:
        say(f"mnist {net.value}: report is current at {out}: nothing to do")
        return previous
    config = read_json(folder / "config.json")
    p = load_trained(folder / MODEL_FILE).predict(images(data.x_test), batch_size=256, verbose=0)
    result = metrics(data.y_test, p)
    note = "SYNTHETIC: generated digits, not MNIST; not comparable with the book" if data.synthetic else ""
    report = {"model": net.value, "metrics": result, "params": config["params"],
              "seed_accuracy": SEED[net]["accuracy"], "seed_params": SEED[net]["params"],
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
        + (" [SYNTHETIC]" if data.synthetic else f" (the book: {SEED[net]['accuracy'] or 'not reported'})"))
    return report


def write_summary(vol: Volume) -> Path:
    """reports/mnist.md: both nets beside the seed's numbers, and what the comparison shows.

    Read and written under one lock: the two nets may finish at once, and neither may drop the other's row.
    """
    with vol.lock("mnist-summary", what="writing the MNIST summary", wait_s=None):
        return _write_summary(vol)


def _write_summary(vol: Volume) -> Path:
    reports = {n: r for n in MnistNet if (r := read_cached(vol.mnist_report_dir(n.value) / "metrics.json"))}
    lines = ["# MNIST: the chapter's opening convnet, with and without max-pooling", "",
             "| model | parameters | seed's parameters | test accuracy | seed (book) | test images | data | "
             "trained | evaluated |", "|---|---|---|---|---|---|---|---|---|"]
    for net in MnistNet:
        r = reports.get(net)
        seed = "n/a" if SEED[net]["accuracy"] is None else f"{100 * SEED[net]['accuracy']:.1f}%"
        if r is None:
            lines.append(f"| {net.value} | | {SEED[net]['params']:,} | not trained | {seed} | | | | |")
            continue
        lines.append(f"| {net.value}{' [SYNTHETIC]' if r['synthetic'] else ''} | {r['params']:,} | "
                     f"{r['seed_params']:,} | {100 * r['metrics']['accuracy']:.1f}% | {seed} | "
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
