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
    assert not (fetched / "models" / "fine-tune").exists()  # no run of any seed
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MAKELEVEL", "1")
        result = runner.invoke(main_app, ["train", "--data-dir", str(fetched), "--model", "fine-tune"])
    assert result.exit_code == 3 and "`make train-fine-tune`" in result.stderr and "catsdogs" not in result.stderr


@pytest.mark.parametrize("environ, message", [
    ({"CATSDOGS_LOCK_WAIT": "soon"}, "CATSDOGS_LOCK_WAIT='soon': expected a number"),
    ({"CATSDOGS_LOCK_WAIT": "-1"}, "expected 0 to 604800"),
    ({"CATSDOGS_LOGICAL_CPUS": "2.5"}, "expected a whole number"),
    ({"CATSDOGS_LOGICAL_CPUS": "65"}, "expected 0 to 64"),
    ({"CATSDOGS_EPOCHS_FINE_TUNE": "10001"}, "CATSDOGS_EPOCHS_FINE_TUNE=10001: expected 1 to 10000"),
    ({"CATSDOGS_EPOCHS_SCRATCH": "0"}, "expected 1 to 10000"),
])
def test_variables_below_click_are_bounded(environ, message):
    from jobs._options import check_environment
    from shared.core.errors import UsageError

    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        check_environment(environ)
    check_environment({k: "1" for k in environ})  # the same variables in range pass


def test_a_bad_variable_stops_a_stage_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setenv("CATSDOGS_LOCK_WAIT", "abc")
    result = runner.invoke(split_job.app, ["--data-dir", str(tmp_path / "v")])
    assert result.exit_code == 2 and not (tmp_path / "v").exists()


def test_every_numeric_bound_is_in_the_one_table():
    """Bounds live in jobs/_options.BOUNDS: no job writes its own min= or max=."""
    import re
    from pathlib import Path

    import jobs

    stray = [f"{path.name}: {m.group(0)}" for path in Path(jobs.__file__).parent.glob("*.py")
             if path.name != "_options.py" for m in re.finditer(r"\b(min|max)=[^,)]+", path.read_text())]
    assert not stray, stray
