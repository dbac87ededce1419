"""One test per finding of the hostile-user pass (issue 13); the table of bad inputs is test_bad_inputs.py."""

import contextlib
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jobs.__main__ import app
from shared.core.errors import PermanentError
from shared.data.fetch import FetchConfig, fetch
from shared.data.split import SplitConfig, split
from shared.training.catalog import ModelName
from shared.training.train import TrainConfig, train
from shared.volume.fsutil import read_json, write_json
from shared.volume.layout import COMPLETE, Volume
from tests.helpers import kill_after_first_epoch
from tests.test_bad_inputs import tree_hash

runner = CliRunner()
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _jobs(root: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobs", *args, "--data-dir", str(root)], capture_output=True,
                          text=True, env=ENV, timeout=timeout, stdin=subprocess.DEVNULL)


@contextlib.contextmanager
def tmpfs(path: Path, size: str, *options: str):
    """A small filesystem of its own (full disks, read-only volumes); skipped where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    opts = ",".join((f"size={size}", *options))
    if subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root and mount rights)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


# 1. A failed fetch --force leaves the good data as it was.
def test_a_failed_forced_fetch_keeps_the_good_data(fetched, tmp_path):
    before = tree_hash(fetched)
    (tmp_path / "bad.zip").write_text("not a zip")
    with zipfile.ZipFile(tmp_path / "truncated-inner.zip", "w") as zf:
        zf.writestr("train.zip", b"PK\x03\x04" + b"\0" * 100)
    result = _jobs(fetched, "fetch", "--force", "--source", str(tmp_path / "bad.zip"))
    assert result.returncode == 3 and tree_hash(fetched) == before
    result = _jobs(fetched, "fetch", "--force", "--source", str(tmp_path / "truncated-inner.zip"))
    assert result.returncode == 3 and tree_hash(fetched) == before
    last = result.stderr.strip().splitlines()[-1]
    assert f"the train.zip inside {tmp_path / 'truncated-inner.zip'}" in last and ".staging" not in last


def test_a_fetch_that_would_fill_the_disk_is_refused_before_it_starts(tmp_path):
    with tmpfs(tmp_path / "small", "4m") as root:
        fetch(config=FetchConfig(data_dir=root, source="synthetic", per_class=20))
        before = tree_hash(root)
        result = _jobs(root, "fetch", "--force", "--source", "synthetic", "--per-class", "2000")
        assert result.returncode == 3 and tree_hash(root) == before
        assert "needs about 240.00 MB" in result.stderr
        assert re.search(r"which has [1-9][0-9.]* (MB|kB) free", result.stderr)  # never "0.00 GB"


# 2. A non-finite loss stops training (exit 3, nothing finished); JSON is strict.
@pytest.mark.slow
def test_a_diverging_run_stops_at_once_and_finishes_nothing(fetched, monkeypatch):
    from shared.data import pipeline as data

    split(config=SplitConfig(data_dir=fetched, train=6, validation=4, test=4))
    real = data.list_files

    def nan_labels(**kwargs):  # a NaN target makes the loss NaN, as a diverging run's does
        paths, labels = real(**kwargs)
        return paths, labels * float("nan")

    monkeypatch.setattr(data, "list_files", nan_labels)
    result = runner.invoke(app, ["train", "--data-dir", str(fetched), "--model", "scratch", "--epochs", "3",
                                 "--image-size", "80", "--batch-size", "4"])
    assert result.exit_code == 3, result.output
    assert result.stderr.startswith("error: training diverged at epoch 1 (") and "nan" in result.stderr
    vol = Volume(fetched)
    assert not vol.model_dir("scratch").exists()
    assert not (vol.staging / "train-scratch-seed-1337" / "state.json").exists()  # the diverged epoch was never saved


def test_json_files_are_strict(tmp_path):
    with pytest.raises(ValueError):
        write_json(tmp_path / "x.json", {"loss": float("nan")})
    assert not (tmp_path / "x.json").exists()


# 3. A folder source never follows a link out of itself.
def test_a_folder_source_skips_links_and_special_files(fetched, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in [f"{c}.{i}.jpg" for c in ("cat", "dog") for i in range(4)]:
        (folder / name).write_bytes((Volume(fetched).raw_images / name).read_bytes())
    (tmp_path / "secret").write_text("root:x:0:0")
    (folder / "cat.4.jpg").symlink_to(tmp_path / "secret")
    os.mkfifo(folder / "dog.4.jpg")
    root = tmp_path / "fresh"
    result = _jobs(root, "fetch", "--source", str(folder), timeout=120)
    assert result.returncode == 0, result.stderr
    assert "skipped 2 entries" in result.stdout and "cat.4.jpg" in result.stdout and "dog.4.jpg" in result.stdout
    assert sorted(p.name for p in Volume(root).raw_images.iterdir()) == sorted(
        f"{c}.{i}.jpg" for c in ("cat", "dog") for i in range(4))


# 4. --force resumes an interrupted run of the same settings.
@pytest.mark.slow
def test_force_resumes_an_interrupted_run(fetched):
    split(config=SplitConfig(data_dir=fetched, train=10, validation=5, test=5))
    args = ["train", "--model", "scratch", "--epochs", "6", "--image-size", "80", "--batch-size", "4", "--force"]
    state = Volume(fetched).staging / "train-scratch-seed-1337" / "state.json"
    proc = subprocess.Popen([sys.executable, "-m", "jobs", *args, "--data-dir", str(fetched)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = kill_after_first_epoch(proc, state)
    assert 1 <= done < 6
    rerun = _jobs(fetched, *args)
    assert rerun.returncode == 0, rerun.stderr[-1000:]
    assert f"resuming scratch after epoch {done} of 6" in rerun.stdout
    assert len(read_json(Volume(fetched).model_dir("scratch") / "history.json")["loss"]) == 6


# 5. Bounds: found at once, in one line (more in test_bad_inputs.py).
def test_absurd_sizes_are_refused_at_once(fetched):
    for args in (["fetch", "--source", "synthetic", "--per-class", "1000000000"],
                 ["split", "--force", "--train", "1000000000000"],
                 ["train", "--model", "scratch", "--image-size", "100000"]):
        started = time.monotonic()
        result = _jobs(fetched, *args, timeout=60)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, (args, result.stderr)
        assert time.monotonic() - started < 30, args  # refused, not attempted


# 6. Corrupt metadata: named (exit 3), or discarded where that is safe.
@pytest.mark.slow
def test_corrupt_state_and_manifests(fetched):
    split(config=SplitConfig(data_dir=fetched, train=6, validation=4, test=4))
    vol = Volume(fetched)
    work = vol.staging / "train-scratch-seed-1337"
    work.mkdir(parents=True)
    (work / "state.json").write_text('{"epoch": 1, "weights": "epo')  # cut by a kill
    folder = train(config=TrainConfig(data_dir=fetched, model=ModelName.scratch, epochs=1, image_size=80,
                                      batch_size=4))
    assert (folder / COMPLETE).exists()

    manifest = vol.split_manifest.read_text()
    vol.split_manifest.write_text(manifest[:50])
    result = _jobs(fetched, "evaluate")
    assert result.returncode == 3 and str(vol.split_manifest) in result.stderr and "corrupt" in result.stderr
    vol.split_manifest.write_text(manifest)
    vol.raw_manifest.write_text(vol.raw_manifest.read_text()[:20])
    result = _jobs(fetched, "split", "--force", "--train", "5", "--validation", "2", "--test", "2")
    assert result.returncode == 3 and str(vol.raw_manifest) in result.stderr


@pytest.mark.slow
def test_a_truncated_epoch_file_is_discarded_and_the_run_starts_over(fetched, capsys):
    from shared.training.callbacks import resumable_state

    work = Volume(fetched).staging / "train-scratch-seed-1337"
    work.mkdir(parents=True)
    (work / "epoch-1.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 10)
    write_json(work / "state.json", {"epoch": 1, "weights": "epoch-1.weights.h5", "config": {"a": 1},
                                     "history": {}})
    assert resumable_state(work, {"a": 1}, fresh=False) is None
    assert "epoch-1.weights.h5 is unreadable" in capsys.readouterr().out
    assert work.is_dir() and not list(work.iterdir())


@pytest.mark.slow
def test_a_corrupt_model_is_named_and_evaluate_all_scores_the_others(fetched):
    split(config=SplitConfig(data_dir=fetched, train=6, validation=4, test=4))
    for model, size in ((ModelName.scratch, 80), (ModelName.feature_extraction, 32)):
        train(config=TrainConfig(data_dir=fetched, model=model, epochs=1, image_size=size, batch_size=4,
                                 weights="none"))
    model_file = Volume(fetched).model_dir("scratch") / "model.keras"
    model_file.write_bytes(model_file.read_bytes()[:1000])
    result = _jobs(fetched, "evaluate", "--model", "scratch")
    assert result.returncode == 3 and "cannot load the model at" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: cannot load")
    result = _jobs(fetched, "evaluate")
    assert result.returncode == 0, result.stderr[-800:]
    summary = (Volume(fetched).reports / "summary.md").read_text()
    assert "| feature-extraction [SYNTHETIC] |" in summary
    row = next(line for line in summary.splitlines() if line.startswith("| scratch |"))
    assert "not scored: cannot load" in row


# 7. predict never blocks on a file.
@pytest.mark.slow
def test_predict_does_not_block_on_a_fifo(fetched, tmp_path):
    split(config=SplitConfig(data_dir=fetched, train=4, validation=2, test=2))
    train(config=TrainConfig(data_dir=fetched, model=ModelName.scratch, epochs=1, image_size=80, batch_size=4))
    folder = tmp_path / "photos"
    folder.mkdir()
    os.mkfifo(folder / "pipe.jpg")
    (folder / "cat.jpg").write_bytes((Volume(fetched).raw_images / "cat.1.jpg").read_bytes())
    os.mkfifo(tmp_path / "given.jpg")
    result = _jobs(fetched, "predict", "--model", "scratch", str(tmp_path / "given.jpg"), str(folder), timeout=120)
    assert result.returncode == 3
    assert f"cannot classify {tmp_path / 'given.jpg'}: not a regular file" in result.stderr
    assert f"cannot classify {folder / 'pipe.jpg'}: not a regular file" in result.stderr
    assert result.stdout.startswith(f"{folder / 'cat.jpg'}\t")


def test_a_file_swapped_after_it_was_listed_is_refused_on_its_descriptor(tmp_path, monkeypatch):
    """Files are checked on the descriptor they are read through, so a FIFO or a link put in a listed
    file's place is refused, not waited on or followed."""
    import socket
    import threading

    from shared.reports import predict

    regular = tmp_path / "cat.jpg"
    regular.write_bytes(b"\xff\xd8 not much of a jpeg")
    assert predict.expand((tmp_path,)) == [regular]
    regular.unlink()
    os.mkfifo(regular)  # the swap
    got = {}
    reader = threading.Thread(target=lambda: got.update(r=predict.read_regular(regular)), daemon=True)
    reader.start()
    reader.join(timeout=30)
    assert got.get("r") == (None, "not a regular file"), "reading a FIFO blocked or was not refused"
    regular.unlink()
    regular.symlink_to(tmp_path / "elsewhere.jpg")
    (tmp_path / "elsewhere.jpg").write_bytes(b"secret")
    assert predict.read_regular(regular) == (None, "a symbolic link (not followed)")
    big = tmp_path / "big.jpg"
    big.write_bytes(b"x" * 2048)
    monkeypatch.setattr(predict, "MAX_IMAGE_BYTES", 1024)
    assert predict.read_regular(big)[1].startswith("larger than")
    assert predict.read_regular(tmp_path / "elsewhere.jpg") == (b"secret", None)
    assert predict.read_regular(tmp_path / "gone.jpg") == (None, "no such file")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "s.jpg"))
        assert predict.read_regular(tmp_path / "s.jpg") == (None, "not a regular file")


# 8. The output contract: one line, the right code.
def test_usage_errors_are_one_line_not_a_box(tmp_path):
    result = _jobs(tmp_path, "train", "--model", "resnet", timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: Invalid value for '--model'")


@pytest.mark.slow
def test_weights_of_another_architecture_are_one_line(fetched, tmp_path):
    from shared.training.models import build_scratch

    split(config=SplitConfig(data_dir=fetched, train=4, validation=2, test=2))
    build_scratch(image_size=80).save_weights(tmp_path / "scratch.weights.h5")
    result = _jobs(fetched, "train", "--model", "feature-extraction", "--image-size", "32", "--weights",
                   str(tmp_path / "scratch.weights.h5"))
    assert result.returncode == 3
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0] == result.stderr.strip().splitlines()[-1]
    assert "cannot load VGG16 weights" in errors[0] and len(errors[0]) < 450


def test_a_read_only_volume_is_permanent(tmp_path):
    with tmpfs(tmp_path / "ro", "1m", "ro") as root:
        result = _jobs(root, "split", timeout=60)
        assert result.returncode == 3 and "not writable" in result.stderr


def test_split_after_refetching_says_the_data_was_fetched_again(fetched):
    split(config=SplitConfig(data_dir=fetched, train=10, validation=5, test=5))
    fetch(config=FetchConfig(data_dir=fetched, source="synthetic", per_class=40, force=True))
    with pytest.raises(PermanentError, match="it was fetched again at"):
        split(config=SplitConfig(data_dir=fetched, train=10, validation=5, test=5))
