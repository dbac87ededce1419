"""Issue 25: a run's result depends on its settings and seed, not on what was on the volume before it."""

import shutil

import pytest

from shared.data.split import SplitConfig, split
from shared.training.catalog import ModelName, spec
from shared.training.train import TrainConfig, train, train_with_prerequisite
from shared.volume.fsutil import read_json
from shared.volume.layout import Volume

pytestmark = pytest.mark.slow
SEED = 5


@pytest.fixture
def tiny_split(fetched):
    split(config=SplitConfig(data_dir=fetched, train=10, validation=5, test=5))
    return fetched


def _config(root, model, **options) -> TrainConfig:
    return TrainConfig(**{"data_dir": root, "model": model, "epochs": 2, "image_size": 32, "batch_size": 8,
                          "weights": "none", "seed": SEED, **options})


def _history(root, model) -> dict:
    history = read_json(Volume(root).model_dir(model.value, SEED) / "history.json")
    return {k: history[k] for k in ("loss", "accuracy", "val_loss", "val_accuracy")}


def test_feature_extraction_is_the_same_whether_its_feature_store_was_computed_or_reused(tiny_split):
    vol, model = Volume(tiny_split), ModelName.feature_extraction
    assert spec(model).on_features
    train(config=_config(tiny_split, model))
    computed = _history(tiny_split, model)
    assert any(vol.features.iterdir())  # the store it computed is there for the next run
    train(config=_config(tiny_split, model, force=True))
    assert _history(tiny_split, model) == computed
    shutil.rmtree(vol.features)  # and computed once more: the same again
    train(config=_config(tiny_split, model, force=True))
    assert _history(tiny_split, model) == computed


def test_fine_tune_is_the_same_whether_its_base_was_trained_in_the_same_command_or_before(tiny_split):
    model = next(s.name for s in (spec(m) for m in ModelName) if s.starts_from is not None)
    base = spec(model).starts_from
    train_with_prerequisite(config=_config(tiny_split, model, epochs=1), prerequisite_epochs=1)  # base, then it
    together = _history(tiny_split, model)
    before = _history(tiny_split, base)
    train(config=_config(tiny_split, model, epochs=1, force=True))  # the base is on the volume already
    assert _history(tiny_split, model) == together
    assert _history(tiny_split, base) == before  # untouched
