"""Callbacks that survive a pod being killed at any moment: nothing at a final name is ever half-written."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
from tensorflow import keras

from shared.core.console import say
from shared.core.errors import CatsDogsError, PermanentError, one_line
from shared.volume.fsutil import free_bytes, read_json, remove, size_text, write_json
from shared.volume.layout import STATE


class StopOnNonFinite(keras.callbacks.Callback):
    """TerminateOnNaN as an error: a non-finite loss or metric ends the run (exit 3) before the epoch is saved.

    Checked once an epoch, not once a batch: a batch hook would make Keras wait for every step's result
    and lose its asynchronous dispatch, to save at most one epoch of a run that diverged.
    List it before the callbacks that save, so a diverged epoch is never written.
    """

    def on_epoch_end(self, epoch, logs=None):
        bad = {k: float(v) for k, v in (logs or {}).items() if not math.isfinite(float(v))}
        if bad:
            values = ", ".join(f"{k} {v}" for k, v in bad.items())
            raise PermanentError(f"training diverged at epoch {epoch + 1} ({values}): nothing of that epoch was "
                                 "kept; lower --learning-rate and run again")


class StillLocked(keras.callbacks.Callback):
    """Stop (exit 75) at an epoch's end, before it is saved, if this run's lock file was deleted while held:
    a second trainer of the same run may have started with a new one. List it before the callbacks that save."""

    def __init__(self, folder: Path, name: str):
        super().__init__()
        self.folder, self.name = folder, name

    def on_epoch_end(self, epoch, logs=None):
        from shared.volume.locks import check_held

        check_held(self.folder, self.name)


class AtomicBestCheckpoint(keras.callbacks.Callback):
    """ModelCheckpoint(save_best_only=True, monitor="val_loss"), written to a temporary name and renamed.

    Keras writes .keras files in place, so a kill mid-save would leave a corrupt best model; and its
    ModelCheckpoint forgets the best value on restart, which `best` (like initial_value_threshold) restores.
    """

    def __init__(self, path: Path, *, record: Path, best: float = math.inf, monitor: str = "val_loss"):
        super().__init__()
        self.path, self.record, self.best, self.monitor = Path(path), Path(record), best, monitor

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not value < self.best:
            return
        tmp = self.path.with_name(f".{self.path.stem}.tmp.keras")
        room_for(self.model, self.path.parent, optimizer=True, what="the best model")
        self.model.save(tmp)
        os.replace(tmp, self.path)
        self.best = float(value)
        write_json(self.record, {"epoch": epoch + 1, self.monitor: self.best})


def room_for(model, folder: Path, *, optimizer: bool, what: str) -> None:
    """Refuse (exit 1, retryable: space may be freed) before h5py meets a full disk mid-write, where it can
    crash the process (SIGSEGV) instead of raising. The estimate: twice the variables' bytes (the file
    being written beside the one it replaces; a .keras file's HDF5 before it is zipped), and a margin."""
    variables = list(model.weights) + (list(model.optimizer.variables) if optimizer and model.optimizer else [])
    itemsize = {"float16": 2, "bfloat16": 2, "float64": 8, "int64": 8}  # else 4 bytes (float32, int32)
    needed = 2 * sum(int(np.prod(v.shape)) * itemsize.get(str(v.dtype), 4) for v in variables) + (1 << 20)
    free = free_bytes(folder)
    if needed > free:
        raise CatsDogsError(f"no room for {what}: it needs about {size_text(needed)} on {folder}, which has "
                            f"{size_text(free)} free; free some space and run the same command again (it resumes)")


class EpochState(keras.callbacks.Callback):
    """BackupAndRestore's job, made atomic: weights per epoch, then one state file that names them.

    The state also carries the history so far, keyed by epoch, so a resumed run ends with every epoch once.
    """

    def __init__(self, work: Path, *, config: dict, history: dict[str, dict], extra: dict | None = None,
                 clock=None):
        super().__init__()
        self.work, self.config, self.history, self.extra = Path(work), config, dict(history), extra or {}
        self.clock = clock  # a shared.training.frozen.ValidationClock: the epoch's validation seconds

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        record = {k: float(v) for k, v in (logs or {}).items()}
        record["epoch_seconds"] = time.perf_counter() - self.started  # throughput, for users and gpu_check
        if self.clock is not None and self.clock.seconds is not None:
            record["validation_seconds"] = self.clock.seconds
        record.update(self.extra)  # where it ran: replicas and strategy
        self.history[str(epoch + 1)] = record
        name = f"epoch-{epoch + 1}.weights.h5"
        tmp = self.work / f".{name}.tmp.weights.h5"
        room_for(self.model, self.work, optimizer=False, what=f"epoch {epoch + 1}'s weights")
        self.model.save_weights(tmp)
        os.replace(tmp, self.work / name)
        write_json(self.work / STATE, {"epoch": epoch + 1, "weights": name, "config": self.config,
                                       "history": self.history, "rng": rng_state(self.model)})
        for old in self.work.glob("epoch-*.weights.h5"):
            if old.name != name:
                old.unlink()


def _rng_variables(model) -> list:
    """The seed generators' states (dropout masks, augmentation draws): save_weights leaves them out, so a
    resumed run would draw the first epoch's masks again instead of the next ones."""
    weights = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def rng_state(model) -> list[list[int]]:
    return [np.asarray(v.numpy()).tolist() for v in _rng_variables(model)]


def resumable_state(work: Path, config: dict, *, fresh: bool) -> dict | None:
    """The state of a killed run with this very config, or None after clearing `work` to start over."""
    state_path = work / STATE
    if work.exists() and not fresh and state_path.exists():
        try:
            state = read_json(state_path)
            if state.get("config") == config and _readable_weights(work / state["weights"]):
                return state
            if isinstance(state.get("config"), dict) and state["config"] != config:
                # Resuming under other settings would mix two runs in one history: start over, and say why.
                old = state["config"]
                changed = ", ".join(f"{k} {old.get(k)!r} -> {config.get(k)!r}" for k in sorted(set(old) | set(config))
                                    if old.get(k) != config.get(k))
                say(f"warning: an interrupted run (after epoch {state.get('epoch', '?')}) had other settings "
                    f"({changed}): starting over with these; run with the old settings to resume it instead")
        except (PermanentError, KeyError, TypeError, AttributeError) as e:  # half-written by a kill, or garbled
            say(f"warning: discarding the unreadable state of an interrupted run ({one_line(str(e))}); "
                "starting over")
    remove(work)  # another config, killed before its first epoch ended, or unreadable: start over
    work.mkdir(parents=True)
    return None


def _readable_weights(path: Path) -> bool:
    """An epoch's weights file that opens as HDF5 (a kill or a full disk can leave it truncated)."""
    import h5py

    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            f.visit(lambda name: None)
        return True
    except (OSError, ValueError) as e:
        say(f"warning: {path.name} is unreadable ({one_line(str(e))})")
        return False


def resume(model, work: Path, state: dict | None, *, monitor: str = "val_loss") -> tuple[dict, int, float]:
    """(history so far, epochs done, best monitored value) after loading a killed run's last weights."""
    if not state:
        return {}, 0, math.inf
    model.optimizer.build(model.trainable_variables)
    model.load_weights(work / state["weights"])
    variables, saved = _rng_variables(model), state.get("rng")
    if isinstance(saved, list) and len(saved) == len(variables):
        for variable, value in zip(variables, saved, strict=True):
            variable.assign(np.asarray(value, dtype=str(variable.dtype)))
    elif variables:
        say("warning: the interrupted run's random state was not saved; the epochs from here draw other "
            "augmentations and dropout masks than an uninterrupted run would")
    history, best_file = state["history"], work / "best.json"
    known = [h[monitor] for h in history.values() if monitor in h]
    try:
        known += [read_json(best_file)[monitor]] if best_file.exists() else []
    except (PermanentError, KeyError, TypeError):  # then the history alone says what was best
        say("warning: best.json of the interrupted run is unreadable; using its history")
    best = min(known, default=math.inf)
    return history, state["epoch"], best


def history_lists(history: dict[str, dict], epochs: int) -> dict[str, list]:
    """EpochState's per-epoch records as Keras's History: one list per metric, epoch 1 first."""
    return {key: [history[str(e)].get(key) for e in range(1, epochs + 1)] for key in history[str(epochs)]}
