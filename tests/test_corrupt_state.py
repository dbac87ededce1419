"""Issue 20's defects that a volume's own files cause, in real processes: valid JSON of the wrong shape, a
`--force` that must repair what it names, stale staging, odd file names, and SIGTERM.

Each asserts the exit code, one `error:` line (the last) where the stage fails, and no traceback.
"""

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from shared.volume.fsutil import read_json
from shared.volume.layout import Volume
from tests.helpers import jobs, kill_after_first_epoch, one_error

pytestmark = pytest.mark.slow
SCRATCH = ["--model", "scratch", "--epochs", "1", "--image-size", "80", "--batch-size", "8"]
FEATURES = ["--model", "feature-extraction", "--epochs", "1", "--image-size", "32", "--batch-size", "8",
            "--weights", "none"]


def test_model_config_of_the_wrong_shape_is_named_and_force_retrains_it(vol):
    (vol.model_dir("scratch") / "config.json").write_text("[]")
    every = jobs(vol, "evaluate")  # scores what it can, lists the rest
    assert every.returncode == 0, every.stderr[-1500:]
    summary = (vol.reports / "summary.md").read_text()
    assert "| scratch | not scored:" in summary and "| feature-extraction [SYNTHETIC] |" in summary
    error = one_error(jobs(vol, "evaluate", "--model", "scratch"), 3)
    assert "models/scratch/seed-1337/config.json" in error and "`catsdogs train --model scratch --force`" in error
    assert jobs(vol, "train", *SCRATCH, "--force").returncode == 0
    assert jobs(vol, "evaluate", "--model", "scratch").returncode == 0


def test_split_manifest_of_the_wrong_shape_is_named_and_force_rewrites_it(vol):
    vol.split_manifest.write_text("{}")
    error = one_error(jobs(vol, "evaluate"), 3)
    assert "subsets/manifest.json is corrupt ('fingerprint' is missing" in error and "split --force" in error
    one_error(jobs(vol, "train", *SCRATCH), 3)
    repaired = jobs(vol, "split", "--train", "10", "--validation", "5", "--test", "5", "--force")
    assert repaired.returncode == 0, repaired.stderr[-1500:]
    assert isinstance(read_json(vol.split_manifest)["fingerprint"], str)


def test_raw_manifest_of_the_wrong_shape_is_named_and_force_refetches(vol):
    vol.raw_manifest.write_text("[]")
    error = one_error(jobs(vol, "split", "--train", "10", "--validation", "5", "--test", "5", "--force"), 3)
    assert "raw/manifest.json is corrupt (not a JSON object)" in error and "`catsdogs fetch --force`" in error
    one_error(jobs(vol, "fetch", "--source", "synthetic", "--per-class", "40"), 3)  # not without --force
    assert jobs(vol, "fetch", "--source", "synthetic", "--per-class", "40", "--force").returncode == 0
    assert jobs(vol, "split", "--train", "10", "--validation", "5", "--test", "5", "--force").returncode == 0


def test_a_failure_record_without_its_fields_does_not_stop_evaluate(vol):
    vol.failure_record("fine-tune").parent.mkdir(parents=True, exist_ok=True)
    vol.failure_record("fine-tune").write_text(json.dumps({"model": "fine-tune"}))
    vol.failure_record("scratch-augmented").write_text("{truncated")
    result = jobs(vol, "evaluate")
    assert result.returncode == 0, result.stderr[-1500:]
    summary = (vol.reports / "summary.md").read_text()
    assert "| fine-tune | failed (exit ?): its failure record is unreadable or of another shape " \
           "(fine-tune-seed-1337.json) |" in summary
    assert "| scratch-augmented | failed (exit ?)" in summary


@pytest.mark.parametrize("damage", ["meta.json", "train.npy"])
def test_force_recomputes_a_damaged_feature_store(vol, damage):
    (store,) = [p for p in vol.features.iterdir() if (p / "meta.json").exists()]
    path = store / damage
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    result = jobs(vol, "train", *FEATURES, "--force")
    assert result.returncode == 0, result.stderr[-1500:]
    assert "are unusable" in result.stdout and "computing them again" in result.stdout
    assert jobs(vol, "evaluate", "--model", "feature-extraction", "--force").returncode == 0


def test_mnist_redoes_what_a_kill_truncated(vol):
    args = ["mnist", "--source", "synthetic", "--samples", "300", "--epochs", "1"]
    assert jobs(vol, *args).returncode == 0
    for path in (vol.mnist_model_dir("convnet") / "config.json", vol.mnist_report_dir("convnet") / "metrics.json"):
        path.write_text(path.read_text()[:40])
        result = jobs(vol, *args)
        assert result.returncode == 0, result.stderr[-1500:]
        assert isinstance(read_json(path), dict)


def test_stale_staging_of_dead_evaluations_is_removed(vol):
    for name in ("evaluate-scratch-seed-1337-abc123", "mnist-report-convnet-def456"):
        (vol.staging / name).mkdir(parents=True)
        (vol.staging / name / "metrics.json").write_text("{}")
    assert jobs(vol, "evaluate", "--model", "scratch", "--force").returncode == 0
    assert jobs(vol, "mnist", "--source", "synthetic", "--samples", "300", "--epochs", "1").returncode == 0
    assert not list(vol.staging.glob("evaluate-*")) and not list(vol.staging.glob("mnist-report-*"))


def test_a_file_name_with_a_newline_stays_on_one_line(vol, tmp_path):
    odd = tmp_path / "two\nlines\t.jpg"
    shutil.copy(vol.raw_images / "cat.30.jpg", odd)
    result = jobs(vol, "predict", "--model", "scratch", str(odd))
    assert result.returncode == 0, result.stderr[-1500:]
    (line,) = result.stdout.strip().splitlines()
    assert line.startswith(str(tmp_path / "two\\nlines\\t.jpg") + "\t")


def test_sigterm_stops_at_a_safe_point_says_how_to_resume_and_resume_works(vol):
    args = [sys.executable, "-m", "jobs", "train", "--model", "scratch", "--epochs", "6", "--image-size", "80",
            "--batch-size", "4", "--force", "--data-dir", str(vol.root)]
    state = vol.staging / "train-scratch-seed-1337" / "state.json"
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    kill_after_first_epoch(proc, state, sig=signal.SIGTERM)
    stderr = proc.stderr.read()
    result = subprocess.CompletedProcess(args, proc.returncode, "", stderr)
    error = one_error(result, 143)
    assert error.startswith("error: terminated (SIGTERM)") and "run the same command again" in error
    done = read_json(state)["epoch"]
    rerun = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0 and f"resuming scratch after epoch {done} of 6" in rerun.stdout, rerun.stderr


def _bomb_png(path: Path, side: int = 14000) -> Path:
    """A PNG whose header claims side x side pixels (a decompression bomb), in a few hundred bytes."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(side)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(row * 8)) + chunk(b"IEND", b""))
    return path


def test_a_decompression_bomb_is_refused_where_it_enters_and_never_crashes_a_plot(vol, tmp_path):
    from shared.reports.explain import explained_pictures
    from shared.training.models import load_trained
    from shared.volume.layout import MODEL_FILE

    _bomb_png(vol.raw_images / "cat.3.jpg")
    error = one_error(jobs(vol, "split", "--train", "10", "--validation", "5", "--test", "5", "--force"), 3)
    assert "cat.3.jpg does not decode as an image" in error
    result = jobs(vol, "predict", "--model", "scratch", str(vol.raw_images / "cat.3.jpg"))
    assert result.returncode == 3 and "more pixels than a photo has" in result.stderr
    model = load_trained(vol.model_dir("scratch") / MODEL_FILE)
    (shown,), _ = explained_pictures(model, [vol.raw_images / "cat.3.jpg"], image_size=80)
    assert shown.getpixel((0, 0)) == (128, 128, 128)  # a grey square where the bomb would be


def test_evaluate_refuses_a_test_subset_that_no_longer_matches_its_split(vol):
    victim = sorted((vol.subset("test") / "dog").iterdir())[0]
    data = victim.read_bytes()
    victim.unlink()
    error = one_error(jobs(vol, "evaluate"), 3)
    assert f"{victim.name} is missing from" in error and "split --force" in error
    victim.write_bytes(data[:-10] + bytes(10))
    error = one_error(jobs(vol, "evaluate", "--model", "scratch"), 3)
    assert f"{victim} has changed since the split" in error
    victim.write_bytes(data)
    assert jobs(vol, "evaluate").returncode == 0


@pytest.mark.parametrize("stage", ["train", "mnist"])
def test_a_disk_too_full_for_an_epochs_weights_is_refused_not_crashed(vol, tmp_path, stage):
    """h5py met ENOSPC mid-write with a SIGSEGV (139); the weights' size is checked before every write."""
    from tests.test_hardening import tmpfs

    with tmpfs(tmp_path / "small", "64m") as small:
        shutil.copytree(vol.root, small / "volume", symlinks=True, ignore=shutil.ignore_patterns(
            "models", "reports", "features", "keras", "raw"))
        small_vol = Volume(small / "volume")
        filler = small / "filler"
        free = shutil.disk_usage(small).free
        left = (2 << 20) if stage == "train" else (1 << 19)  # less than one epoch's weights: 3.9 MB, 0.4 MB
        filler.write_bytes(bytes(max(free - left, 0)))
        args = [*SCRATCH[:-2], "--batch-size", "4"] if stage == "train" else \
            ["--source", "synthetic", "--samples", "300", "--epochs", "1"]
        result = jobs(small_vol, stage, *args, *(["--force"] if stage == "train" else []))
        error = one_error(result, 1)
        assert "no room for" in error and "run the same command again" in error
        filler.unlink()
        assert jobs(small_vol, stage, *args).returncode == 0  # space freed: the same command goes on
