"""The chapter's opening convnet on MNIST, and the same net without max-pooling: build and train.

Scoring and the report are in shared/reports/mnist_report.py; shared/orchestration/mnist.py runs both.

Layer for layer as the seed: RMSprop, sparse categorical cross-entropy, 5 epochs, batches of 64, no
validation set (so the best checkpoint is the epoch with the lowest training loss).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path

import numpy as np

from shared.core.console import is_terminal, say
from shared.core.seeds import DEFAULT_SEED
from shared.data.mnist_data import MnistData
from shared.volume.fsutil import read_cached, replace_dir, write_json, write_marker
from shared.volume.layout import COMPLETE, MODEL_FILE, Volume


class MnistNet(str, Enum):
    convnet = "convnet"
    no_max_pool = "no-max-pool"


# What the book reports: the pooled net's test accuracy; for the other, only its size.
BOOK = {MnistNet.convnet: {"accuracy": 0.989, "params": 104_202},
        MnistNet.no_max_pool: {"accuracy": None, "params": 712_202}}


@dataclass(frozen=True)
class MnistConfig:
    data_dir: Path
    model: MnistNet = MnistNet.convnet
    source: str = "keras"  # keras | synthetic | PATH of an mnist.npz
    samples: int = 6000  # training images of --source synthetic (a sixth as many test images)
    epochs: int = 5
    batch_size: int = 64
    seed: int = DEFAULT_SEED
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


def trained(vol: Volume, run: MnistRun) -> bool:
    """Whether the net's folder holds a finished run of exactly these settings."""
    folder = vol.mnist_model_dir(run.model)
    return (folder / COMPLETE).exists() and (read_cached(folder / "config.json") or {}).get("run") == asdict(run)


def train_net(*, vol: Volume, run: MnistRun, data: MnistData) -> None:
    """Train (or resume a killed run of the same settings) in staging, then move it into place."""
    from tensorflow import keras

    from shared.training.callbacks import (
        AtomicBestCheckpoint,
        EpochState,
        StopOnNonFinite,
        history_lists,
        resumable_state,
        resume,
    )
    from shared.training.curves import training_curves

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
    write_marker(work / COMPLETE, datetime.now(UTC).isoformat() + "\n")  # last
    replace_dir(work, vol.mnist_model_dir(run.model))
