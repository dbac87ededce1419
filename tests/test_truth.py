"""A number in a report describes exactly the data it names; bugs show their traceback and exit 70."""

import pytest
from typer.testing import CliRunner

from jobs.__main__ import app
from shared.core.errors import EXIT_BUG, PermanentError
from shared.data.fetch import FetchConfig, fetch
from shared.data.split import SplitConfig, split
from shared.orchestration.reporting import EvaluateConfig, evaluate
from shared.reports import evaluation
from shared.reports.evaluation import TrainedOnAnotherSplit
from shared.training.catalog import ModelName
from shared.training.train import TrainConfig, train
from shared.volume.fsutil import read_json
from shared.volume.layout import Volume

runner = CliRunner()


def _train_scratch(root, **kw):
    return train(config=TrainConfig(data_dir=root, model=ModelName.scratch, epochs=1, image_size=80, batch_size=8,
                                    **kw))


def _rows(root) -> dict[str, str]:
    text = (Volume(root).reports / "summary.md").read_text()
    return {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}


@pytest.mark.slow
def test_a_new_split_is_never_scored_with_the_old_model(tmp_path):
    fetch(config=FetchConfig(data_dir=tmp_path, source="synthetic", per_class=30))
    old = split(config=SplitConfig(data_dir=tmp_path, train=10, validation=5, test=8))
    _train_scratch(tmp_path)
    evaluate(config=EvaluateConfig(data_dir=tmp_path))
    report = read_json(Volume(tmp_path).report_dir("scratch") / "metrics.json")
    assert report["metrics"]["count"] == report["test_images"] == 16 and report["split"] == old["fingerprint"]

    new = split(config=SplitConfig(data_dir=tmp_path, train=12, validation=5, test=6, force=True))
    with pytest.raises(TrainedOnAnotherSplit) as refused:
        evaluate(config=EvaluateConfig(data_dir=tmp_path, model="scratch"))
    assert old["fingerprint"] in str(refused.value) and new["fingerprint"] in str(refused.value)
    assert "catsdogs train --model scratch --force" in str(refused.value)
    result = runner.invoke(app, ["evaluate", "--data-dir", str(tmp_path)])  # all: listed, not scored, exit 0
    assert result.exit_code == 0, result.output
    row = _rows(tmp_path)["scratch"]
    assert "trained on another split" in row and "%" not in row.split("|")[2]
    result = runner.invoke(app, ["evaluate", "--data-dir", str(tmp_path), "--model", "scratch"])
    assert result.exit_code == 3 and result.stderr.count("\n") == 1 and new["fingerprint"] in result.stderr

    _train_scratch(tmp_path, force=True)
    evaluate(config=EvaluateConfig(data_dir=tmp_path))
    report = read_json(Volume(tmp_path).report_dir("scratch") / "metrics.json")
    assert report["metrics"]["count"] == 12 and report["split"] == new["fingerprint"]
    row = _rows(tmp_path)["scratch [SYNTHETIC]"]
    for expected in ("| 12 |", new["fingerprint"], "float32", "1 epochs, 80px", "| 1337 |"):
        assert expected in row, expected
    assert "generated stand-in" in (Volume(tmp_path).reports / "summary.md").read_text().splitlines()[0]
    assert report["evaluated_at"] and report["trained_at"] and report["seed"] == 1337


@pytest.mark.slow
def test_a_report_is_redone_when_the_model_or_the_metrics_change(tmp_path, monkeypatch):
    fetch(config=FetchConfig(data_dir=tmp_path, source="synthetic", per_class=20))
    split(config=SplitConfig(data_dir=tmp_path, train=6, validation=4, test=5))
    _train_scratch(tmp_path)
    path = Volume(tmp_path).report_dir("scratch") / "metrics.json"
    evaluate(config=EvaluateConfig(data_dir=tmp_path))
    first = read_json(path)
    evaluate(config=EvaluateConfig(data_dir=tmp_path))
    assert read_json(path)["evaluated_at"] == first["evaluated_at"]  # nothing changed: reused

    monkeypatch.setattr(evaluation, "METRICS_VERSION", evaluation.METRICS_VERSION + 1)
    evaluate(config=EvaluateConfig(data_dir=tmp_path))
    assert read_json(path)["identity"]["metrics_version"] == evaluation.METRICS_VERSION
    monkeypatch.undo()

    # Another model file behind an unchanged config.json (same finished_at): its content decides.
    from tensorflow import keras

    model_file = Volume(tmp_path).model_dir("scratch") / "model.keras"
    model = keras.models.load_model(model_file)
    model.layers[-1].set_weights([w + 0.01 for w in model.layers[-1].get_weights()])
    model.save(model_file)
    before = read_json(path)["evaluated_at"], read_json(path)["identity"]
    evaluate(config=EvaluateConfig(data_dir=tmp_path))
    assert read_json(path)["identity"]["model_sha256"] == evaluation.sha256_file(model_file) != \
        before[1]["model_sha256"]


def test_a_bug_prints_its_traceback_and_exits_70(tmp_path, monkeypatch):
    from shared.data import split as split_module

    def bug(*, config):
        return 1 / 0

    monkeypatch.setattr(split_module, "split", bug)
    monkeypatch.setattr("jobs.split.split", bug)
    result = runner.invoke(app, ["split", "--data-dir", str(tmp_path)])
    assert result.exit_code == EXIT_BUG == 70
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "Traceback (most recent call last):" and "ZeroDivisionError" in result.stderr
    assert lines[-1].startswith("error: unexpected ZeroDivisionError: division by zero")


def test_an_expected_error_is_one_line_without_traceback(tmp_path, monkeypatch):
    def refuse(*, config):
        raise PermanentError("the volume is not what it should be")

    monkeypatch.setattr("jobs.split.split", refuse)
    result = runner.invoke(app, ["split", "--data-dir", str(tmp_path)])
    assert result.exit_code == 3
    assert result.stderr == "error: the volume is not what it should be\n"


def test_missing_weights_file_is_a_usage_error(tmp_path):
    fetch(config=FetchConfig(data_dir=tmp_path, source="synthetic", per_class=4))
    split(config=SplitConfig(data_dir=tmp_path, train=2, validation=1, test=1))
    result = runner.invoke(app, ["train", "--data-dir", str(tmp_path), "--model", "feature-extraction",
                                 "--weights", str(tmp_path / "nowhere.h5")])
    assert result.exit_code == 2 and "no such file" in result.stderr
    result = runner.invoke(app, ["train", "--data-dir", str(tmp_path), "--model", "scratch", "--image-size", "40"])
    assert result.exit_code == 2 and "at least 78" in result.stderr
