"""Issue 26, hardening round 3: the volume's own files, seeds, stored features, text and numbers, in real
processes with real links, each with the exit code and the line a user sees (README, "What happens when
things go wrong")."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from shared.core.errors import EXIT_PERMANENT, EXIT_RETRYABLE, EXIT_USAGE, PermanentError
from shared.orchestration.reporting import update_summary
from shared.training.catalog import ModelName
from shared.training.features import store_problem
from shared.training.runs import finished_seeds
from shared.training.train import TrainConfig, train
from shared.volume.fsutil import read_json
from shared.volume.layout import Volume
from tests.helpers import jobs, one_error

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _digest(path: Path) -> bytes:
    return path.read_bytes()


# 1. A link planted in .locks is never followed, nor a hard link written through.
@pytest.mark.parametrize("kind", ["symlink", "hardlink", "folder"])
def test_a_link_in_the_lock_folder_is_refused_and_nothing_is_written_through_it(vol, tmp_path, kind):
    outside = tmp_path / "outside.txt"
    outside.write_text("not the volume's")
    manifest = vol.split_manifest.read_bytes()
    lock = vol.locks / "split.lock"
    lock.unlink(missing_ok=True)
    if kind == "symlink":
        lock.symlink_to(outside)
    elif kind == "hardlink":
        os.link(vol.split_manifest, lock)
    else:
        shutil.rmtree(vol.locks)
        (tmp_path / "elsewhere").mkdir()
        vol.locks.symlink_to(tmp_path / "elsewhere")
    error = one_error(jobs(vol, "split", "--train", "10", "--validation", "5", "--test", "5", "--force"),
                      EXIT_PERMANENT)
    assert "rm " in error and ("link" in error or "lock file" in error), error
    assert outside.read_text() == "not the volume's" and vol.split_manifest.read_bytes() == manifest
    assert kind != "folder" or not list((tmp_path / "elsewhere").iterdir())


# 2. Seed 0 is a seed: the images' epochs and the stored features' epochs.
def test_seed_zero_trains(vol):
    for model, size in ((ModelName.scratch, 80), (ModelName.feature_extraction, 32)):
        folder = train(config=TrainConfig(data_dir=vol.root, model=model, epochs=2, image_size=size, batch_size=8,
                                          weights="none", seed=0))
        assert read_json(folder / "config.json")["run"]["seed"] == 0 and folder.name == "seed-0"


# 3. The feature store knows what it holds.
@pytest.mark.parametrize("damage", ["swap", "dtype"])
def test_a_feature_store_with_swapped_or_retyped_files_is_not_used(vol, damage):
    (store,) = [p for p in vol.features.iterdir() if (p / "meta.json").exists()]
    assert store_problem(store) is None
    if damage == "swap":
        for name in ("npy", "labels.npy"):
            a, b = store / f"test.{name}", store / f"validation.{name}"
            a.rename(store / "tmp"), b.rename(a), (store / "tmp").rename(b)
    else:
        x = np.load(store / "train.npy")
        np.save(store / "train.npy", x.astype(np.int32))  # the same shape, another dtype
    assert store_problem(store) is not None
    result = jobs(vol, "evaluate", "--model", "feature-extraction", "--force")
    assert result.returncode == 0, result.stderr[-1500:]
    report = read_json(vol.report_dir("feature-extraction") / "metrics.json")
    assert report["metrics"]["loss"] < 2, report["metrics"]  # scored on the images, not on wrong features
    trained = jobs(vol, "train", "--model", "feature-extraction", "--epochs", "1", "--image-size", "32",
                   "--batch-size", "8", "--weights", "none", "--force")
    assert trained.returncode == 0 and "computing them again" in trained.stdout, trained.stderr[-1500:]
    assert store_problem(store) is None


# 4. Text from the user or the volume is never rich markup.
def test_markup_in_a_failure_message_and_in_a_path_is_printed_as_it_is(vol, tmp_path):
    record = vol.failure_record("scratch-augmented", 1)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"model": "scratch-augmented", "seed": 1, "exit_code": 3,
                                  "error": "bad [/bold] input [red]x"}))
    result = jobs(vol, "evaluate")  # the summary's table on stdout holds the message
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-1500:]
    assert "bad [/bold] input [red]x" in (vol.reports / "summary.md").read_text()
    short = Path(tempfile.mkdtemp(prefix="cd"))  # short enough for the table's column: no wrapping
    try:
        odd = Volume(short / "a[/b]c")
        result = jobs(odd, "doctor")
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-1500:]
        assert str(odd.root) in result.stdout  # the volume's row, as it is
    finally:
        shutil.rmtree(short, ignore_errors=True)


# 5, 9. Numbers are ASCII digits; one folder name per seed.
@pytest.mark.parametrize("args, env", [
    (["chain", "--index", "0"], {"CATSDOGS_SEEDS": "²"}),
    (["chain", "--index", "0"], {"CATSDOGS_SEEDS": "١٣٣٧"}),
    (["train", "--model", "scratch", "--seed", "٣"], {}),
    (["train", "--model", "scratch"], {"CATSDOGS_EPOCHS_SCRATCH": "٣"}),
])
def test_non_ascii_digits_are_a_usage_error(vol, args, env):
    result = subprocess.run([sys.executable, "-m", "jobs", *args, "--data-dir", str(vol.root)], capture_output=True,
                            text=True, env={**os.environ, **env}, timeout=300)
    error = one_error(result, EXIT_USAGE)
    assert "0-9" in error or "not a seed" in error, error


def test_only_a_canonical_seed_folder_with_its_own_record_is_a_run(vol):
    models = vol.models / "scratch"
    shutil.copytree(models / "seed-1337", models / "seed-01337")  # the same run under a second name
    shutil.copytree(models / "seed-1337", models / "seed-²")
    shutil.copytree(models / "seed-1337", models / "seed-7")  # a copy whose record says seed 1337
    assert finished_seeds(vol, "scratch") == [1337]
    result = jobs(vol, "evaluate", "--model", "scratch")
    assert result.returncode == 0, result.stderr[-1500:]
    row = next(line for line in (vol.reports / "summary.md").read_text().splitlines() if line.startswith("| scratch"))
    assert "| 1 |" in row, row
    error = one_error(jobs(vol, "evaluate", "--model", "scratch", "--seed", "7"), EXIT_PERMANENT)
    assert "records scratch with seed 1337" in error


# 6. A reader that may not create its lock exits 3, naming the folder and the fix.
def test_a_reader_that_cannot_write_its_lock_exits_3(vol):
    if os.getuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root to run a stage as another user")
    base = Path(tempfile.mkdtemp(prefix="catsdogs-other-user-"))  # pytest's own folders are root's alone
    try:
        os.chmod(base, 0o777)
        root = base / "volume"
        shutil.copytree(vol.root, root, symlinks=True)
        shutil.rmtree(root / ".locks", ignore_errors=True)
        (root / ".locks").mkdir(mode=0o755)  # root's, as after a first use as root
        for path in (root, *root.rglob("*")):
            if path.name != ".locks" and not path.is_symlink():
                os.chmod(path, 0o777 if path.is_dir() else 0o666)
        image = next((root / "subsets" / "test" / "cat").iterdir())
        env = {**os.environ, "HOME": str(base), "TMPDIR": str(base)}
        result = subprocess.run(["setpriv", "--reuid=10001", "--regid=10001", "--clear-groups", sys.executable,
                                 "-m", "jobs", "predict", "--model", "scratch", "--data-dir", str(root), str(image)],
                                capture_output=True, text=True, env=env, timeout=300)
        error = one_error(result, EXIT_PERMANENT)
        assert str(root / ".locks") in error and "chown -R 10001:10001" in error, error
    finally:
        shutil.rmtree(base, ignore_errors=True)


# 7. A model that starts from another agrees with it.
def test_fine_tune_refuses_a_base_of_other_weights_or_size(vol):
    base = dict(data_dir=vol.root, epochs=1, image_size=32, batch_size=8, seed=3)
    train(config=TrainConfig(model=ModelName.feature_extraction_augmented, weights="none", **base))
    with pytest.raises(PermanentError, match=r"--weights imagenet differs from the feature-extraction-augmented "
                                             r"model's none.*--weights imagenet"):
        train(config=TrainConfig(model=ModelName.fine_tune, weights="imagenet", **base))
    with pytest.raises(PermanentError, match=r"--image-size 48 differs .*--image-size 48"):
        train(config=TrainConfig(model=ModelName.fine_tune, weights="none", **{**base, "image_size": 48}))
    assert not vol.model_dir("fine-tune", 3).exists()


# 8. A failure record of the wrong shape is named, never a crash.
def test_a_failure_record_of_the_wrong_shape_is_shown_as_a_failure(vol):
    record = vol.failure_record("scratch-augmented", 1)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"model": "scratch-augmented", "seed": [1]}))
    rows = {r["model"]: r for r in update_summary(vol=vol, split=read_json(vol.split_manifest))}
    assert "failed (exit ?)" in rows["scratch-augmented"]["status"]
    assert "scratch-augmented-seed-1.json" in rows["scratch-augmented"]["status"]


# The behaviours.
def test_a_lock_file_deleted_while_held_stops_the_holder_at_the_next_epoch(vol):
    args = [sys.executable, "-m", "jobs", "train", "--model", "scratch", "--epochs", "50", "--image-size", "80",
            "--batch-size", "4", "--seed", "9", "--data-dir", str(vol.root)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    state = vol.staging / "train-scratch-seed-9" / "state.json"
    deadline = time.monotonic() + 300
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    (vol.locks / "train-scratch-seed-9.lock").unlink()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == EXIT_RETRYABLE, err[-1500:]
    assert "was deleted while this process held it" in err.strip().splitlines()[-1]
    assert read_json(state)["epoch"] < 50  # stopped early, resumable


def test_evaluate_of_a_seed_never_trained_exits_3(vol):
    error = one_error(jobs(vol, "evaluate", "--seed", "7"), EXIT_PERMANENT)
    assert "no model is trained with seed 7 (trained seeds: 1337)" in error


def test_a_reader_creates_nothing_in_a_directory_that_is_no_volume(tmp_path):
    stranger = tmp_path / "not-a-volume"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    one_error(jobs(Volume(stranger), "evaluate"), EXIT_PERMANENT)
    assert sorted(p.name for p in stranger.iterdir()) == ["notes.txt"]


def test_tensorflows_native_log_is_not_on_stderr_unless_verbose(vol):
    quiet = jobs(vol, "evaluate", "--model", "scratch", "--force")  # scores again: TensorFlow runs
    assert quiet.returncode == 0 and "cuInit" not in quiet.stderr and "oneDNN" not in quiet.stderr, quiet.stderr
    loud = jobs(vol, "evaluate", "--model", "scratch", "--force", "--verbose")
    assert loud.returncode == 0 and ("oneDNN" in loud.stderr or "cuda" in loud.stderr.lower()), loud.stderr[-800:]


def test_sigterm_to_make_chapter_stops_its_trainer(vol, tmp_path):
    """make passes SIGTERM to its children; the chapter's trainings are its children, not a loop's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "CATSDOGS_"))}
    venv = Path(sys.executable).parent.parent
    args = ["make", "-s", "-C", str(ROOT), f"VENV={venv}", "-o", f"{venv}/.installed", "chapter",
            f"DATA_DIR={vol.root}", "SOURCE=synthetic", "PER_CLASS=40", "TRAIN=10", "VALIDATION=5", "TEST=5",
            "EPOCHS=60", "IMAGE_SIZE=80", "BATCH_SIZE=4", "MNIST_SOURCE=synthetic", "MNIST_SAMPLES=300",
            "SEEDS=11"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    state = vol.staging / "train-scratch-seed-11" / "state.json"
    deadline = time.monotonic() + 400
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1][-1500:]
    proc.send_signal(signal.SIGTERM)  # to make alone, as `kill <pid>` would
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    time.sleep(1)
    with pytest.raises(ProcessLookupError):  # nothing of the chapter is left running
        os.killpg(proc.pid, 0)
    assert "terminated (SIGTERM)" in err
    assert read_json(state)["epoch"] < 60  # stopped, and resumable from there


def test_an_interrupted_run_with_other_settings_is_restarted_and_says_so(tmp_path, capsys):
    from shared.training.callbacks import resumable_state
    from shared.volume.fsutil import write_json

    work = tmp_path / "train-scratch-seed-1"
    work.mkdir()
    write_json(work / "state.json", {"epoch": 3, "weights": "epoch-3.weights.h5", "config": {"batch_size": 4}})
    assert resumable_state(work, {"batch_size": 8}, fresh=False) is None
    assert "interrupted run (after epoch 3) had other settings (batch_size 4 -> 8)" in capsys.readouterr().out
    assert not (work / "state.json").exists()


def test_a_marker_or_a_figure_is_never_written_through_a_planted_link(tmp_path):
    from shared.core.figures import figure, save
    from shared.volume.fsutil import write_marker

    target = tmp_path / "elsewhere.txt"
    target.write_text("keep")
    (tmp_path / "COMPLETE").symlink_to(target)
    with pytest.raises(OSError):
        write_marker(tmp_path / "COMPLETE", "done")
    (tmp_path / ".loss.png.tmp.png").symlink_to(target)
    plt, fig = figure()
    with pytest.raises(OSError):
        save(fig, plt, tmp_path / "loss.png")
    assert target.read_text() == "keep"
