"""The seed's model.summary(): `catsdogs describe` without training, and the counts it reports."""

import pytest
from typer.testing import CliRunner

from jobs.__main__ import app
from shared.training.catalog import ModelName
from shared.training.describe import describe

runner = CliRunner()


@pytest.mark.slow
@pytest.mark.parametrize(("model", "total", "trainable"), [
    # the seed's counts at 180x180 (README, "The models"): freezing VGG16 leaves the head trainable,
    # fine-tuning unfreezes block 5
    (ModelName.scratch, 991_041, 991_041),
    (ModelName.feature_extraction, 3_277_313, 3_277_313),
    (ModelName.feature_extraction_augmented, 17_992_001, 3_277_313),
    (ModelName.fine_tune, 17_992_001, 10_356_737),
])
def test_describe_counts_what_train_would_build(model, total, trainable):
    text, counts = describe(model=model, image_size=180)
    assert (counts["total"], counts["trainable"]) == (total, trainable)
    assert counts["non_trainable"] == total - trainable
    assert f"parameters: {total:,} total, {trainable:,} trainable" in text
    if counts["non_trainable"]:
        assert "block5_conv3" in text  # nested VGG16 expanded, layer by layer


def test_describe_command_prints_the_summary_and_refuses_an_unknown_model():
    result = runner.invoke(app, ["describe", "--model", "scratch", "--image-size", "80"])
    assert result.exit_code == 0 and result.output.count("(Conv2D)") == 5 and "parameters:" in result.output
    assert runner.invoke(app, ["describe", "--model", "scratch_small"]).exit_code == 2


@pytest.mark.slow
def test_train_says_what_it_built_and_its_first_batch_when_asked(fetched):
    """--summary prints the summary.txt it writes; --verbose the first batch's shapes, as the seed prints them."""
    from shared.data.split import SplitConfig, split
    from shared.volume.layout import Volume
    from tests.helpers import jobs

    split(config=SplitConfig(data_dir=fetched, train=10, validation=5, test=5))
    vol = Volume(fetched)
    args = ("train", "--model", "scratch", "--epochs", "1", "--image-size", "80", "--batch-size", "8")
    quiet = jobs(vol, *args)
    assert quiet.returncode == 0 and "data batch shape" not in quiet.stdout and "Conv2D" not in quiet.stdout
    loud = jobs(vol, *args, "--summary", "--verbose", "--force")
    assert loud.returncode == 0, loud.stderr[-1500:]
    assert "data batch shape: (8, 80, 80, 3)" in loud.stdout and "labels batch shape: (8, 1)" in loud.stdout
    summary = (vol.model_dir("scratch") / "summary.txt").read_text()
    assert summary.strip() in loud.stdout  # what it wrote beside the model, word for word
