"""Wiring only: options, help, exit codes and the one stderr line. Logic is tested directly elsewhere."""

import pytest
from typer.testing import CliRunner

from jobs import fetch as fetch_job
from jobs import split as split_job
from jobs import train as train_job
from jobs.__main__ import app as main_app

runner = CliRunner()
STAGES = {"fetch": fetch_job.app, "split": split_job.app, "train": train_job.app}


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_help(name):
    result = runner.invoke(STAGES[name], ["--help"])
    assert result.exit_code == 0, result.output
    assert "--data-dir" in result.output


@pytest.mark.parametrize("name", sorted(STAGES))
def test_composed_help(name):
    result = runner.invoke(main_app, [name, "--help"])
    assert result.exit_code == 0 and "--data-dir" in result.output


@pytest.mark.parametrize("name, args", [
    ("fetch", ["--bogus"]),
    ("fetch", ["--per-class", "0"]),
    ("split", ["--train", "zero"]),
    ("split", ["--test", "0"]),
    ("train", ["--model", "resnet"]),
    ("train", []),
    ("train", ["--model", "scratch", "--epochs", "0"]),
])
def test_usage_errors_exit_2(name, args, tmp_path):
    result = runner.invoke(STAGES[name], ["--data-dir", str(tmp_path), *args])
    assert result.exit_code == 2
    assert result.stderr.strip()


def test_permanent_error_is_one_line_exit_3(tmp_path):
    result = runner.invoke(main_app, ["fetch", "--data-dir", str(tmp_path), "--source", str(tmp_path / "x.zip")])
    assert result.exit_code == 3
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("error: --source ") and "Traceback" not in result.output


def test_data_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CATSDOGS_DATA_DIR", str(tmp_path / "envvol"))
    result = runner.invoke(split_job.app, [])
    assert result.exit_code == 3
    assert str(tmp_path / "envvol") in result.stderr


def test_fetch_and_split_through_the_cli(tmp_path):
    args = ["--data-dir", str(tmp_path)]
    assert runner.invoke(main_app, ["fetch", *args, "--source", "synthetic", "--per-class", "8"]).exit_code == 0
    result = runner.invoke(main_app, ["split", *args, "--train", "4", "--validation", "2", "--test", "2"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "subsets" / "test" / "dog").iterdir()) == ["dog.6.jpg", "dog.7.jpg"]


def test_train_missing_base_for_fine_tune_exits_3(fetched):
    assert runner.invoke(split_job.app, ["--data-dir", str(fetched), "--train", "2", "--validation", "1",
                                         "--test", "1"]).exit_code == 0
    result = runner.invoke(main_app, ["train", "--data-dir", str(fetched), "--model", "fine-tune"])
    assert result.exit_code == 3
    # Hints name the command where the user is: the stage's own line, or the make target under make.
    assert "`catsdogs train --model fine-tune --with-prerequisite`" in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert not (fetched / "models" / "fine-tune").exists()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MAKELEVEL", "1")
        result = runner.invoke(main_app, ["train", "--data-dir", str(fetched), "--model", "fine-tune"])
    assert result.exit_code == 3 and "`make train-fine-tune`" in result.stderr and "catsdogs" not in result.stderr
