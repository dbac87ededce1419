"""Test isolation: no real home, no real Kaggle credentials, the kaggle client pointed at localhost."""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Before anything imports kaggle: it fixes its endpoint and config folder at import time.
_HOME = Path(tempfile.mkdtemp(prefix="catsdogs-test-home-"))
os.environ["HOME"] = str(_HOME)
os.environ["KAGGLE_CONFIG_DIR"] = str(_HOME / ".kaggle")
os.environ["KAGGLE_API_ENVIRONMENT"] = "LOCALHOST"
# MAKELEVEL: `make test` sets it, and hints then name make targets (shared.core.errors.run_hint).
for _name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "CATSDOGS_DATA_DIR", "CATSDOGS_REQUIRE_GPU",
              "MAKELEVEL", "MAKEFLAGS", "MFLAGS"):
    os.environ.pop(_name, None)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_HOME"] = str(_HOME / ".keras")

from shared.data.fetch import FetchConfig, fetch  # noqa: E402
from shared.data.split import SplitConfig, split  # noqa: E402
from shared.volume.layout import Volume  # noqa: E402

TINY_PER_CLASS = 40


def pytest_unconfigure(config):
    """The fake home goes with the session (credentials written into it by tests included)."""
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def fetched_template(tmp_path_factory) -> Path:
    """A volume with the synthetic stand-in fetched once for the whole session; copy before changing it."""
    root = tmp_path_factory.mktemp("fetched")
    fetch(config=FetchConfig(data_dir=root, source="synthetic", per_class=TINY_PER_CLASS))
    return root


@pytest.fixture
def fetched(fetched_template, tmp_path) -> Path:
    root = tmp_path / "volume"
    shutil.copytree(fetched_template, root)
    return root


@pytest.fixture(scope="session")
def trained_template(tmp_path_factory) -> Path:
    """A volume with scratch and feature-extraction trained (1 epoch, tiny) and evaluated, once a session."""
    root = tmp_path_factory.mktemp("state") / "volume"
    fetch(config=FetchConfig(data_dir=root, source="synthetic", per_class=40))
    split(config=SplitConfig(data_dir=root, train=10, validation=5, test=5))
    from shared.orchestration.reporting import EvaluateConfig, evaluate
    from shared.training.catalog import ModelName
    from shared.training.train import TrainConfig, train

    train(config=TrainConfig(data_dir=root, model=ModelName.scratch, epochs=1, image_size=80, batch_size=8))
    train(config=TrainConfig(data_dir=root, model=ModelName.feature_extraction, epochs=1, image_size=32,
                             batch_size=8, weights="none"))
    evaluate(config=EvaluateConfig(data_dir=root))
    return root


@pytest.fixture
def vol(trained_template, tmp_path) -> Volume:
    """A copy of trained_template to damage."""
    shutil.copytree(trained_template, tmp_path / "volume", symlinks=True)
    return Volume(tmp_path / "volume")


VGG_SIZE = 32  # VGG16's smallest side: the models that nest it train fast enough for tests


@pytest.fixture(scope="session")
def every_model(trained_template, tmp_path_factory) -> Volume:
    """trained_template (scratch, feature-extraction) with the catalog's other models trained beside them."""
    from shared.training.catalog import SPECS
    from shared.training.train import TrainConfig, train
    from shared.volume.layout import MODEL_FILE

    root = tmp_path_factory.mktemp("every") / "volume"
    shutil.copytree(trained_template, root, symlinks=True)
    vol = Volume(root)
    for s in SPECS.values():  # in the catalog's order: a model's base is listed above it
        if not (vol.model_dir(s.name.value) / MODEL_FILE).exists():
            size = 80 if not s.uses_vgg16 else VGG_SIZE
            train(config=TrainConfig(data_dir=root, model=s.name, epochs=1, image_size=size, batch_size=8,
                                     weights="none"))
    return vol
