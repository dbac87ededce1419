"""The Indexed Job's chains, per-model epochs from the environment, and waiting for the split."""

import pytest

from shared.core.errors import RetryableError, UsageError
from shared.orchestration.chain import chains, epochs_from_env, wait_for_split
from shared.training.catalog import ModelName, spec
from shared.volume.layout import Volume


def test_chains_come_from_the_catalog():
    found = chains()
    assert sorted(m for chain in found for m in chain) == sorted(ModelName)  # each model in exactly one chain
    for chain in found:  # a chain opens with a model that starts from nothing; each next one from the one before
        assert spec(chain[0]).starts_from is None
        assert all(spec(b).starts_from == a for a, b in zip(chain, chain[1:], strict=False))
    # the seed's: fine-tune starts from feature-extraction-augmented, so both share one pod
    assert [ModelName.feature_extraction_augmented, ModelName.fine_tune] in found


def test_epochs_per_model_from_the_environment():
    env = {"CATSDOGS_EPOCHS_SCRATCH": "3", "CATSDOGS_EPOCHS_FINE_TUNE": " 7 ", "CATSDOGS_EPOCHS_X": "1",
           "CATSDOGS_EPOCHS_SCRATCH_AUGMENTED": ""}
    assert epochs_from_env(env) == {ModelName.scratch: 3, ModelName.fine_tune: 7}
    with pytest.raises(UsageError, match="CATSDOGS_EPOCHS_SCRATCH='many'"):
        epochs_from_env({"CATSDOGS_EPOCHS_SCRATCH": "many"})
    with pytest.raises(UsageError, match="CATSDOGS_EPOCHS_FEATURE_EXTRACTION=0: expected 1 to 10000"):
        epochs_from_env({"CATSDOGS_EPOCHS_FEATURE_EXTRACTION": "0"})
    with pytest.raises(UsageError, match="CATSDOGS_EPOCHS_SCRATCH=20000: expected 1 to 10000"):  # --epochs' bound
        epochs_from_env({"CATSDOGS_EPOCHS_SCRATCH": "20000"})


def test_waiting_for_the_split_gives_up_retryably(tmp_path):
    with pytest.raises(RetryableError, match="prepare Job"):
        wait_for_split(Volume(tmp_path), 0.3)
    Volume(tmp_path).split_manifest.parent.mkdir(parents=True)
    Volume(tmp_path).split_manifest.write_text("{}")
    wait_for_split(Volume(tmp_path), 0)  # there: returns at once
