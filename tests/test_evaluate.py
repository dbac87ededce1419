"""evaluate and predict on a tiny trained volume: reports, summary, files a user reads."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from jobs.__main__ import app
from shared.core.errors import PermanentError
from shared.data.fetch import FetchConfig, fetch
from shared.data.split import SplitConfig, split
from shared.orchestration.reporting import EvaluateConfig, evaluate
from shared.training.catalog import ModelName
from shared.training.train import TrainConfig, train
from shared.volume.fsutil import read_json
from shared.volume.layout import Volume

pytestmark = pytest.mark.slow
runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trained")
    fetch(config=FetchConfig(data_dir=root, source="synthetic", per_class=30))
    split(config=SplitConfig(data_dir=root, train=10, validation=5, test=8))
    for model, size in ((ModelName.scratch, 80), (ModelName.feature_extraction, 32)):
        train(config=TrainConfig(data_dir=root, model=model, epochs=1, image_size=size, batch_size=8,
                                 weights="none"))
    evaluate(config=EvaluateConfig(data_dir=root))
    return root


def test_reports_for_every_trained_model(trained):
    from PIL import Image

    for model in ("scratch", "feature-extraction"):
        folder = Volume(trained).report_dir(model)
        report = read_json(folder / "metrics.json")
        assert report["synthetic"] is True and "SYNTHETIC" in report["note"]
        assert report["data_source_kind"] == "synthetic" and report["weights"]
        assert report["metrics"]["count"] == 16
        assert sum(map(sum, report["metrics"]["confusion_matrix"])) == 16
        assert report["model_config"]["run"]["model"] == model
        for name, size in (("confusion_matrix.png", (640, 480)), ("roc.png", (640, 480)), ("mistakes.png", None)):
            with Image.open(folder / name) as im:
                im.load()
                assert im.format == "PNG" and (size is None or im.size == size), name
                assert len(np.unique(np.asarray(im.convert("L")))) > 2  # something is drawn
    assert not Volume(trained).report_dir("fine-tune").exists()


def test_accuracy_agrees_with_keras(trained):
    from tensorflow import keras

    from shared.data.pipeline import subset_dataset

    vol = Volume(trained)
    model = keras.models.load_model(vol.model_dir("scratch") / "model.keras")
    data = subset_dataset(volume=vol, subset="test", image_size=80, batch_size=8)
    loss, accuracy = model.evaluate(data, verbose=0)
    metrics = read_json(vol.report_dir("scratch") / "metrics.json")["metrics"]
    assert metrics["accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert metrics["loss"] == pytest.approx(loss, rel=1e-4)


def test_summary_lists_models_beside_the_seed(trained):
    text = (Volume(trained).reports / "summary.md").read_text()
    assert "generated stand-in" in text and "SYNTHETIC" in text
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    assert "69.5%" in rows["scratch [SYNTHETIC]"]
    assert "~97% (validation)" in rows["feature-extraction [SYNTHETIC]"]
    assert "not trained" in rows["fine-tune"] and "98.5%" in rows["fine-tune"]
    assert "not trained" in rows["scratch-augmented"]


def test_rerun_is_a_no_op_unless_forced(trained):
    path = Volume(trained).report_dir("scratch") / "metrics.json"
    before = path.stat().st_mtime_ns
    evaluate(config=EvaluateConfig(data_dir=trained, model="scratch"))
    assert path.stat().st_mtime_ns == before
    evaluate(config=EvaluateConfig(data_dir=trained, model="scratch", force=True))
    assert path.stat().st_mtime_ns != before


def test_missing_model_is_an_error_when_named(trained):
    with pytest.raises(PermanentError, match="catsdogs train --model fine-tune --with-prerequisite"):
        evaluate(config=EvaluateConfig(data_dir=trained, model="fine-tune"))
    result = runner.invoke(app, ["evaluate", "--data-dir", str(trained), "--model", "fine-tune"])
    assert result.exit_code == 3


def test_evaluate_cli_prints_the_table(trained):
    result = runner.invoke(app, ["evaluate", "--data-dir", str(trained)])
    assert result.exit_code == 0, result.output
    assert "SYNTHETIC" in result.stdout and "69.5%" in result.stdout and "summary.md" in result.stdout


def test_predict_classifies_good_files_and_names_bad_ones(trained, tmp_path):
    raw = Volume(trained).raw_images
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("cat.25.jpg", "dog.26.jpg"):
        shutil.copy(raw / name, folder / name)
    (folder / "broken.jpg").write_bytes((raw / "dog.27.jpg").read_bytes()[:300])
    (folder / "notes.txt").write_text("not an image")
    result = runner.invoke(app, ["predict", "--data-dir", str(trained), "--model", "scratch", str(folder)])
    assert result.exit_code == 3
    lines = result.stdout.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(folder / "cat.25.jpg"), str(folder / "dog.26.jpg")]
    assert all(line.split("\t")[1] in ("cat", "dog") and 0.5 <= float(line.split("\t")[2]) <= 1 for line in lines)
    assert "broken.jpg" in result.stderr and "notes.txt" in result.stderr and "2 of 4" in result.stderr


def test_predict_json_and_feature_extraction_end_to_end(trained):
    """model.keras (VGG16 + head) gives the same p(dog) as the head on the stored features."""
    from shared.training.features import load_features

    vol = Volume(trained)
    test_cat = sorted((vol.subset("test") / "cat").iterdir())[0]
    result = runner.invoke(app, ["predict", "--data-dir", str(trained), "--model", "feature-extraction", "--json",
                                 str(test_cat)])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    from tensorflow import keras

    store = next(p for p in vol.features.iterdir() if (p / "meta.json").exists())
    x, _ = load_features(store, "test")
    head = keras.models.load_model(vol.model_dir("feature-extraction") / "head.keras")
    expected = float(head.predict(np.asarray(x[:1]), verbose=0)[0, 0])  # cats come first, in file order
    assert record["p_dog"] == pytest.approx(expected, rel=1e-4, abs=1e-6)
    assert record["label"] in ("cat", "dog") and record["error"] is None


def test_predict_untrained_model(trained, tmp_path):
    result = runner.invoke(app, ["predict", "--data-dir", str(trained), "--model", "fine-tune", str(tmp_path)])
    assert result.exit_code == 3 and "not trained" in result.stderr
