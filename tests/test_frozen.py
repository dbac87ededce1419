"""Validation through a frozen prefix computed once (shared/training/frozen.py), and evaluate on stored features.

Tolerances: the cached path runs the same layers on the same batches in the same order as Keras's own
validation, so the numbers were bit-identical in float32 and in mixed_bfloat16 when measured; what may
still differ is the order of float additions inside a kernel, about 1e-7 relative in float32.
"""

import os
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from shared.data.split import SplitConfig, split
from shared.training.runs import TrainConfig
from shared.training.train import train, train_with_prerequisite
from shared.volume.fsutil import read_json
from shared.volume.layout import Volume
from tests.helpers import kill_after_first_epoch

SIZE = 32


@pytest.fixture
def tiny_split(fetched):
    split(config=SplitConfig(data_dir=fetched, train=10, validation=6, test=5))
    return fetched


def _chain(root, *, frozen_cache=True, epochs=2, precision="float32", force=False):
    from shared.training.catalog import ModelName

    config = TrainConfig(data_dir=root, model=ModelName.fine_tune, epochs=epochs, image_size=SIZE, batch_size=4,
                         weights="none", frozen_cache=frozen_cache, precision=precision, force=force)
    return train_with_prerequisite(config=config, prerequisite_epochs=epochs)


def _full_val_loss(root, model: str) -> float:
    """The saved model.keras, the whole network, on the validation images."""
    from tensorflow import keras

    from shared.data.pipeline import subset_dataset

    saved = keras.models.load_model(Volume(root).model_dir(model) / "model.keras")
    return saved.evaluate(subset_dataset(volume=Volume(root), subset="validation", image_size=SIZE, batch_size=4),
                          verbose=0)[0]


def _through(cut, x):
    for part in cut.prefix:
        x = part(x, training=False)
    return cut.suffix(x, training=False)


def _equal(a, b):
    return np.allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_the_cut_is_found_from_the_graph_not_the_name(tmp_path):
    from tensorflow import keras
    from tensorflow.keras import layers

    from shared.training.frozen import split_frozen_prefix
    from shared.training.models import build_feature_extraction_augmented, build_scratch, prepare_fine_tune

    x = np.random.default_rng(0).uniform(0, 255, (3, SIZE, SIZE, 3)).astype("float32")
    model = build_feature_extraction_augmented(image_size=SIZE, weights=None, seed=1)
    cut = split_frozen_prefix(model)
    assert cut.cut.startswith("flatten") and len(cut.frozen) == 26  # VGG16's 13 kernels and 13 biases
    assert _equal(_through(cut, x), model(x, training=False))

    prepare_fine_tune(model)
    cut = split_frozen_prefix(model)
    assert cut.cut == "vgg16/block4_pool" and len(cut.frozen) == 20  # blocks 1-4: 10 convolutions
    assert _equal(_through(cut, x), model(x, training=False))
    model.save(model_path := tmp_path / "after-split.keras")  # cutting leaves the model as it was
    assert _equal(keras.models.load_model(model_path)(x, training=False), model(x, training=False))

    assert split_frozen_prefix(build_scratch(image_size=80)) is None  # Rescaling alone: no weights to spare

    inputs = keras.Input((4,))
    frozen = layers.Dense(8, name="anything")
    model = keras.Model(inputs, layers.Dense(1)(layers.Dropout(0.5, name="drop")(frozen(inputs))))
    model.compile(loss="mse")
    assert split_frozen_prefix(model) is None  # every layer trainable
    frozen.trainable = False
    cut = split_frozen_prefix(model)
    assert cut.cut == "drop" and cut.frozen == frozen.weights
    v = np.ones((2, 4), "float32")
    assert _equal(_through(cut, v), model(v, training=False))


@pytest.mark.slow
def test_cached_validation_gives_the_full_networks_numbers(tiny_split, tmp_path):
    other = tmp_path / "uncached"
    shutil.copytree(tiny_split, other)
    _chain(tiny_split)
    _chain(other, frozen_cache=False)
    # Keras numbers unnamed layers per process: flatten, flatten_1, ...
    for model, cut in (("feature-extraction-augmented", "flatten"), ("fine-tune", "vgg16/block4_pool")):
        cached, full = (read_json(Volume(r).model_dir(model) / "history.json") for r in (tiny_split, other))
        config = read_json(Volume(tiny_split).model_dir(model) / "config.json")
        assert config["validation"]["frozen_prefix"].startswith(cut) and config["validation"]["cache"] == "memory"
        assert read_json(Volume(other).model_dir(model) / "config.json")["validation"]["frozen_prefix"] is None
        assert cached["loss"] == full["loss"]  # training itself is untouched
        for key in ("val_loss", "val_accuracy"):
            assert cached[key] == pytest.approx(full[key], rel=1e-5, abs=1e-6), (model, key)
        assert all(s > 0 for s in cached["validation_seconds"] + full["validation_seconds"])
        best, best_full = (read_json(Volume(r).model_dir(model) / "best.json") for r in (tiny_split, other))
        assert best["epoch"] == best_full["epoch"]  # the same checkpoint chosen
        # The checkpoint kept is the network Keras would have scored: its full evaluation is the cached number.
        assert _full_val_loss(tiny_split, model) == pytest.approx(best["val_loss"], rel=1e-5, abs=1e-6)


@pytest.mark.slow
def test_one_pass_over_vgg16_serves_both_models_of_the_chain(tiny_split, monkeypatch, capsys):
    """feature-extraction-augmented runs VGG16 whole on the validation images; fine-tune's cut (block 4) lies
    inside it. One pass computes both: up to block 4, handed on, then from there on. Never twice."""
    from shared.training import frozen

    calls = []
    real = frozen.validation_activations
    monkeypatch.setattr(frozen, "validation_activations", lambda **kw: calls.append(kw["split"].cut) or real(**kw))
    _chain(tiny_split)
    assert calls == ["vgg16/block4_pool"]  # the only pass over the images: VGG16 up to block 4
    out = capsys.readouterr().out
    assert "vgg16/block4_pool is frozen; its output on the 12 validation images computed once by the model it " \
           "starts from" in out
    assert not frozen._HANDED_ON  # taken by the model it was computed for


@pytest.mark.slow
def test_cache_on_the_volume_when_memory_is_short(tiny_split, monkeypatch, tmp_path):
    from shared.training import frozen

    other = tmp_path / "in-memory"
    shutil.copytree(tiny_split, other)
    monkeypatch.setattr(frozen, "memory_allows", lambda nbytes: False)
    _chain(tiny_split, epochs=1)
    stores = sorted(Volume(tiny_split).features.glob("frozen-*"))
    assert len(stores) == 2  # one per cut: after VGG16, after block 4
    for store in stores:
        meta = read_json(store / "meta.json")
        assert np.load(store / "validation.npy", mmap_mode="r").shape == tuple(meta["shapes"]["validation"])
        assert meta["shapes"]["validation"][0] == 12
    monkeypatch.undo()
    _chain(other, epochs=1)
    for model in ("feature-extraction-augmented", "fine-tune"):
        on_disk, in_memory = (read_json(Volume(r).model_dir(model) / "history.json") for r in (tiny_split, other))
        assert on_disk["val_loss"] == pytest.approx(in_memory["val_loss"], rel=1e-5, abs=1e-6)
        assert read_json(Volume(tiny_split).model_dir(model) / "config.json")["validation"]["cache"] in \
            {str(s) for s in stores}
    # Retraining reads the stored activations instead of running the prefix again.
    monkeypatch.setattr(frozen, "memory_allows", lambda nbytes: False)
    monkeypatch.setattr(frozen, "write_batches", lambda *a, **k: pytest.fail("recomputed a stored cache"))
    _chain(tiny_split, epochs=1, force=True)


@pytest.mark.slow
def test_killed_run_resumes_with_the_cache(tiny_split):
    args = ["train", "--model", "feature-extraction-augmented", "--epochs", "4", "--image-size", str(SIZE),
            "--batch-size", "4", "--weights", "none", "--data-dir", str(tiny_split)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    state = Volume(tiny_split).staging / "train-feature-extraction-augmented-seed-1337" / "state.json"
    proc = subprocess.Popen([sys.executable, "-m", "jobs", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    done = kill_after_first_epoch(proc, state)
    assert 1 <= done < 4
    rerun = subprocess.run([sys.executable, "-m", "jobs", *args], env=env, capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"resuming feature-extraction-augmented after epoch {done} of 4" in rerun.stdout
    assert "computed once" in rerun.stdout  # the resumed process caches again (in memory, not kept)
    folder = Volume(tiny_split).model_dir("feature-extraction-augmented")
    assert len(read_json(folder / "history.json")["val_loss"]) == 4
    assert _full_val_loss(tiny_split, "feature-extraction-augmented") == pytest.approx(
        read_json(folder / "best.json")["val_loss"], rel=1e-5, abs=1e-6)


@pytest.mark.slow
def test_bfloat16_cached_validation_is_the_full_networks(tiny_split):
    _chain(tiny_split, epochs=1, precision="mixed_bfloat16")
    for model in ("feature-extraction-augmented", "fine-tune"):
        config = read_json(Volume(tiny_split).model_dir(model) / "config.json")
        assert config["run"]["precision"] == "mixed_bfloat16" and config["validation"]["cache"] == "memory"
        # bfloat16 keeps 8 bits of mantissa: the same ops in another order may differ by a few 1e-3.
        assert _full_val_loss(tiny_split, model) == pytest.approx(
            read_json(Volume(tiny_split).model_dir(model) / "best.json")["val_loss"], rel=5e-3)


@pytest.mark.slow
def test_evaluate_scores_feature_extraction_on_its_stored_features(tiny_split):
    from shared.reports.evaluation import predictions, stored_test_features
    from shared.training.catalog import ModelName
    from shared.training.models import load_trained
    from shared.training.runs import trained_run
    from shared.volume.layout import MODEL_FILE

    train(config=TrainConfig(data_dir=tiny_split, model=ModelName.feature_extraction, epochs=1, image_size=SIZE,
                             batch_size=4, weights="none"))
    vol = Volume(tiny_split)
    run, config = trained_run(vol, "feature-extraction"), read_json(vol.model_dir("feature-extraction") / "config.json")
    assert (vol.features / config["validation"]["features"] / "test.npy").exists()
    model = load_trained(vol.model_dir("feature-extraction") / MODEL_FILE)
    y, p, paths = predictions(vol=vol, run=run, batch_size=4, config=config, model=model)
    y_img, p_img, paths_img = predictions(vol=vol, run=run, batch_size=4, config={}, model=model)  # the image path
    assert paths == paths_img and np.array_equal(y, y_img)
    assert np.allclose(p, p_img, rtol=1e-4, atol=1e-6)  # VGG16 over the same images, batched the same way
    # Features computed in another precision, on another split, or gone are not used.
    for other_run in (replace(run, precision="mixed_bfloat16"), replace(run, split="0123456789abcdef")):
        assert stored_test_features(vol=vol, run=other_run, config=config, labels=y) is None
    shutil.rmtree(vol.features)
    assert stored_test_features(vol=vol, run=run, config=config, labels=y) is None
    assert np.allclose(predictions(vol=vol, run=run, batch_size=4, config=config, model=model)[1], p_img, rtol=1e-6)
