"""The train job: every model end to end at tiny sizes, resume after SIGKILL, the feature store, errors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from shared.core.errors import PermanentError, UsageError
from shared.data.fetch import FetchConfig, fetch
from shared.data.split import SplitConfig, split
from shared.training.catalog import ModelName, spec
from shared.training.train import TrainConfig, train
from shared.volume.fsutil import read_json
from shared.volume.layout import COMPLETE, Volume
from tests.helpers import kill_after_first_epoch

TINY = {"train": 10, "validation": 5, "test": 5}
VGG_SIZE = 32
SCRATCH_SIZE = 80


@pytest.fixture
def tiny_split(fetched) -> Path:
    split(config=SplitConfig(data_dir=fetched, **TINY))
    return fetched


def _train(root, model, **kw):
    size = VGG_SIZE if spec(model).uses_vgg16 else SCRATCH_SIZE
    return train(config=TrainConfig(data_dir=root, model=ModelName(model), epochs=kw.pop("epochs", 2),
                                    image_size=kw.pop("image_size", size), batch_size=8, weights="none", **kw))


def _reloaded_val_loss(folder: Path, root: Path, size: int, *, features: bool = False) -> float:
    from tensorflow import keras

    from shared.data.pipeline import subset_dataset

    model = keras.models.load_model(folder / ("head.keras" if features else "model.keras"))
    if features:
        from shared.training.features import load_features

        store = next(p for p in Volume(root).features.iterdir() if (p / "meta.json").exists())
        x, y = load_features(store, "validation")
        return model.evaluate(np.asarray(x), y, verbose=0)[0]
    data = subset_dataset(volume=Volume(root), subset="validation", image_size=size, batch_size=8)
    return model.evaluate(data, verbose=0)[0]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["scratch", "scratch-augmented", "feature-extraction"])
def test_model_trains_and_leaves_its_artifacts(tiny_split, model):
    folder = _train(tiny_split, model)
    assert folder == Volume(tiny_split).model_dir(model)
    for name in ("model.keras", "history.json", "config.json", "accuracy.png", "loss.png", "summary.txt", COMPLETE):
        assert (folder / name).stat().st_size > 0, name
    assert list((folder / "logs").rglob("events.out.tfevents*"))
    history = read_json(folder / "history.json")
    assert set(history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 2 for v in history.values())
    config = read_json(folder / "config.json")
    assert config["data_source_kind"] == "synthetic" and "generated stand-in" in config["data_source"]
    assert config["run"]["model"] == model and config["run"]["epochs"] == 2
    counts = config["parameters"]  # of what trained, as summary.txt's last line says
    assert counts["total"] == counts["trainable"] + counts["non_trainable"] > 0
    assert f"parameters: {counts['total']:,} total" in (folder / "summary.txt").read_text()
    # The checkpoint is the best epoch's model, and reloads to the same numbers.
    best = read_json(folder / "best.json")
    assert best["val_loss"] == pytest.approx(min(history["val_loss"]), rel=1e-6)
    size = config["run"]["image_size"]
    assert _reloaded_val_loss(folder, tiny_split, size, features=model == "feature-extraction") == \
        pytest.approx(best["val_loss"], rel=1e-4, abs=1e-5)
    assert not list(Volume(tiny_split).staging.glob("train-*"))


@pytest.mark.slow
def test_feature_extraction_augmented_then_fine_tune(tiny_split):
    from tensorflow import keras

    from shared.training.models import find_base

    with pytest.raises(PermanentError, match="catsdogs train --model fine-tune --with-prerequisite"):
        _train(tiny_split, "fine-tune")
    assert not Volume(tiny_split).model_dir("fine-tune").exists()
    _train(tiny_split, "feature-extraction-augmented", epochs=1)
    folder = _train(tiny_split, "fine-tune", epochs=1)
    assert read_json(folder / "config.json")["run"]["image_size"] == VGG_SIZE  # taken from the base model
    assert _reloaded_val_loss(folder, tiny_split, VGG_SIZE) == \
        pytest.approx(read_json(folder / "best.json")["val_loss"], rel=1e-4, abs=1e-5)
    base = find_base(keras.models.load_model(folder / "model.keras"))
    # After a reload, only block5's three convolutions carry trainable weights in the base.
    assert [layer.name for layer in base.layers if layer.trainable and layer.weights] == \
        ["block5_conv1", "block5_conv2", "block5_conv3"]


@pytest.mark.slow
def test_finished_model_is_not_retrained(tiny_split, capsys):
    folder = _train(tiny_split, "feature-extraction")
    stamp = (folder / COMPLETE).stat().st_mtime_ns
    _train(tiny_split, "feature-extraction")
    assert (folder / COMPLETE).stat().st_mtime_ns == stamp
    assert "nothing to do" in capsys.readouterr().out
    with pytest.raises(PermanentError, match="--force"):
        _train(tiny_split, "feature-extraction", epochs=3)
    _train(tiny_split, "feature-extraction", epochs=3, force=True)
    assert len(read_json(folder / "history.json")["loss"]) == 3


@pytest.mark.slow
def test_feature_store_is_reused_and_keyed_by_the_split(tiny_split, monkeypatch):
    from shared.training import features

    _train(tiny_split, "feature-extraction", epochs=1)
    stores = sorted(Volume(tiny_split).features.iterdir())
    assert len(stores) == 1
    meta = (stores[0] / "meta.json").stat().st_mtime_ns

    def no_images(**_):
        raise AssertionError("the feature store should have been reused, not recomputed")

    monkeypatch.setattr(features, "subset_dataset", no_images)
    _train(tiny_split, "feature-extraction", epochs=1, force=True)
    assert (stores[0] / "meta.json").stat().st_mtime_ns == meta
    monkeypatch.undo()

    split(config=SplitConfig(data_dir=tiny_split, train=12, validation=5, test=5, force=True))
    _train(tiny_split, "feature-extraction", epochs=1, force=True)
    stores = sorted(Volume(tiny_split).features.iterdir())
    assert len(stores) == 2
    shapes = [read_json(s / "meta.json")["shapes"]["train"][0] for s in stores]
    assert sorted(shapes) == [20, 24]


@pytest.mark.slow
def test_scratch_learns_the_synthetic_data(tmp_path):
    """On the stand-in, scratch must do clearly better than chance (measured: 0.75 at epoch 10)."""
    fetch(config=FetchConfig(data_dir=tmp_path, source="synthetic", per_class=400))
    split(config=SplitConfig(data_dir=tmp_path, train=250, validation=75, test=75))
    folder = train(config=TrainConfig(data_dir=tmp_path, model=ModelName.scratch, epochs=10, image_size=96))
    assert max(read_json(folder / "history.json")["val_accuracy"]) >= 0.65


def _job(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "jobs.train", "--data-dir", str(root), *args]


@pytest.mark.slow
def test_sigkill_then_rerun_resumes_with_every_epoch_once(tiny_split):
    epochs = 8
    cmd = _job(tiny_split, "--model", "scratch", "--epochs", str(epochs), "--image-size", str(SCRATCH_SIZE),
               "--batch-size", "4")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    state = Volume(tiny_split).staging / "train-scratch-seed-1337" / "state.json"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if state.exists() and json.loads(state.read_text())["epoch"] >= 1:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_after = read_json(state)["epoch"]
    assert 1 <= killed_after < epochs, "the run finished before it could be killed"
    best_before = read_json(state.parent / "best.json")["val_loss"]
    assert not Volume(tiny_split).model_dir("scratch").exists()

    rerun = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"resuming scratch after epoch {killed_after} of {epochs}" in rerun.stdout
    assert f"Epoch {killed_after + 1}/{epochs}" in rerun.stdout and f"Epoch {killed_after}/{epochs}" not in rerun.stdout
    folder = Volume(tiny_split).model_dir("scratch")
    history = read_json(folder / "history.json")
    assert all(len(values) == epochs for values in history.values())
    best = read_json(folder / "best.json")
    assert best["val_loss"] <= best_before
    assert best["val_loss"] == pytest.approx(min(history["val_loss"]), rel=1e-6)


def _numbers(history: dict) -> dict:
    """Every number of a history but the clock's."""
    return {k: v for k, v in history.items() if not k.endswith("_seconds")}


@pytest.mark.slow
@pytest.mark.parametrize("model, size", [("scratch-augmented", SCRATCH_SIZE), ("feature-extraction", VGG_SIZE)])
def test_a_killed_and_resumed_run_is_the_uninterrupted_run(tiny_split, tmp_path, model, size):
    """The shuffle of every epoch, the augmentations and the dropout masks are functions of (seed, epoch):
    a run killed after epoch 2 and resumed ends with the very numbers of a run never killed."""
    import shutil

    epochs = 6
    other = tmp_path / "uninterrupted"
    shutil.copytree(tiny_split, other)
    args = ["--model", model, "--epochs", str(epochs), "--image-size", str(size), "--batch-size", "4",
            "--weights", "none", "--seed", "5"]
    whole = subprocess.run(_job(other, *args), capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-2000:]

    state = Volume(tiny_split).staging / f"train-{model}-seed-5" / "state.json"  # not the default seed
    proc = subprocess.Popen(_job(tiny_split, *args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed_after = kill_after_first_epoch(proc, state, epochs=2)
    assert 2 <= killed_after < epochs, "the run finished before it could be killed"
    resumed = subprocess.run(_job(tiny_split, *args), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0 and f"resuming {model} after epoch {killed_after}" in resumed.stdout, \
        resumed.stderr[-2000:]

    expected = _numbers(read_json(Volume(other).model_dir(model, 5) / "history.json"))
    got = _numbers(read_json(Volume(tiny_split).model_dir(model, 5) / "history.json"))
    assert got == expected  # every loss and accuracy of every epoch, to the last bit
    assert len(set(expected["loss"])) == epochs  # the epochs did train


def test_no_split_is_permanent_and_leaves_nothing(fetched):
    with pytest.raises(PermanentError, match="no split"):
        _train(fetched, "scratch")
    assert not Volume(fetched).models.exists()


def test_too_small_image_is_a_usage_error(tiny_split):
    with pytest.raises(UsageError, match="at least 78"):
        _train(tiny_split, "scratch", image_size=64)


def test_unreadable_weights_file(tiny_split, tmp_path):
    bad = tmp_path / "weights.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(PermanentError, match="cannot load VGG16 weights"):
        train(config=TrainConfig(data_dir=tiny_split, model=ModelName.feature_extraction, epochs=1,
                                 image_size=VGG_SIZE, weights=str(bad)))
    with pytest.raises(UsageError, match="no such file"):
        train(config=TrainConfig(data_dir=tiny_split, model=ModelName.feature_extraction, epochs=1,
                                 image_size=VGG_SIZE, weights=str(tmp_path / "missing.h5")))
    assert not Volume(tiny_split).model_dir("feature-extraction").exists()


def test_imagenet_weights_unreachable_says_how_to_preseed(tiny_split, monkeypatch):
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens: fails at once, offline
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(PermanentError, match="KERAS_HOME"):
        train(config=TrainConfig(data_dir=tiny_split, model=ModelName.feature_extraction, epochs=1,
                                 image_size=VGG_SIZE, weights="imagenet"))
    assert not Volume(tiny_split).model_dir("feature-extraction").exists()


@pytest.mark.slow
def test_killed_while_moving_into_place_finishes_the_move(tiny_split, monkeypatch):
    import os

    from shared.training import train as training

    folder = _train(tiny_split, "feature-extraction", epochs=1)
    work = Volume(tiny_split).staging / "train-feature-extraction-seed-1337"
    os.replace(folder, work)  # as if killed between the two renames of replace_dir

    def no_training(**_):
        raise AssertionError("a finished run must not be trained again")

    monkeypatch.setattr(training, "_fit", no_training)
    assert _train(tiny_split, "feature-extraction", epochs=1) == folder
    assert (folder / COMPLETE).exists() and not work.exists()
