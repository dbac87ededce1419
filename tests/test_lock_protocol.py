"""Issue 20, defects 1 and 2: stages that share a volume read data that cannot change under them.

Real processes on one side; the other side is either a real process too or a lock held here, which is a
reader or a writer slowed down at will (what makes the interleaving deterministic).
"""

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared.core.errors import EXIT_RETRYABLE
from shared.data.split import SplitConfig, split
from shared.volume.fsutil import read_json
from shared.volume.layout import Volume

ENV = {**{k: v for k, v in os.environ.items() if not k.startswith("CATSDOGS_")}, "PYTHONUNBUFFERED": "1",
       "CATSDOGS_LOCK_WAIT": "2"}
SPLIT = ["split", "--train", "10", "--validation", "5", "--test", "5", "--force"]


def _run(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobs", *args, "--data-dir", str(root)], capture_output=True,
                          text=True, env=ENV, timeout=600, stdin=subprocess.DEVNULL)


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_a_fetch_never_replaces_raw_data_a_split_is_reading(fetched):
    vol = Volume(fetched)
    before, manifest = _digest(vol.raw_images), vol.raw_manifest.read_bytes()
    with vol.reading("raw", what="a split"):  # a split in the middle of copying
        result = _run(fetched, "fetch", "--force", "--source", "synthetic", "--per-class", "40", "--seed", "11")
    assert result.returncode == EXIT_RETRYABLE, result.stderr[-1500:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: a fetch from generated stand-in") and "raw is in use (pid " in last
    assert "a split" in last and "Traceback" not in result.stderr
    assert _digest(vol.raw_images) == before and vol.raw_manifest.read_bytes() == manifest
    assert not list(vol.staging.glob("fetch-*"))  # its work is removed, nothing half-replaced
    assert _run(fetched, "fetch", "--force", "--source", "synthetic", "--per-class", "40", "--seed", "11"
                ).returncode == 0


def test_a_split_waits_for_a_fetch_replacing_raw_and_gives_up_retryably(fetched):
    vol = Volume(fetched)
    with vol.replacing("raw", what="a fetch"):
        result = _run(fetched, *SPLIT)
    assert result.returncode == EXIT_RETRYABLE and "raw is being replaced" in result.stderr.splitlines()[-1]
    assert not vol.subsets.exists()


def test_racing_fetch_and_split_leave_a_split_that_says_what_it_holds(fetched, tmp_path):
    """The issue's race for real: whichever goes first, the split's manifest names the data it holds."""
    vol = Volume(fetched)
    old, old_identity = _digest(vol.raw_images), read_json(vol.raw_manifest)["identity"]
    fetch_proc = subprocess.Popen([sys.executable, "-m", "jobs", "fetch", "--force", "--source", "synthetic",
                                   "--per-class", "300", "--seed", "11", "--data-dir", str(fetched)], env=ENV,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    split_result = _run(fetched, *SPLIT)
    fetch_proc.wait(timeout=600)
    assert split_result.returncode in (0, EXIT_RETRYABLE), split_result.stderr[-1500:]
    assert fetch_proc.returncode in (0, EXIT_RETRYABLE), fetch_proc.stderr.read()[-1500:]
    if split_result.returncode == 0:  # every image the split holds is one of the data its manifest names
        manifest = read_json(vol.split_manifest)
        images = old if manifest["params"]["source"] == old_identity else _digest(vol.raw_images)
        assert manifest["params"]["source"] in (old_identity, read_json(vol.raw_manifest)["identity"])
        for subset in ("train", "validation", "test"):
            for c in ("cat", "dog"):
                for f in manifest["files"][subset][c]:
                    assert images[f["name"]] == f["sha256"], (subset, f["name"], manifest["params"]["source"])


@pytest.mark.slow
def test_a_split_never_replaces_the_images_a_training_reads(fetched):
    split(config=SplitConfig(data_dir=fetched, train=10, validation=5, test=5))
    vol = Volume(fetched)
    before = _digest(vol.subset("train") / "cat")
    args = [sys.executable, "-m", "jobs", "train", "--model", "scratch", "--epochs", "40", "--image-size", "80",
            "--batch-size", "4", "--no-cache", "--data-dir", str(fetched)]
    proc = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        state = vol.staging / "train-scratch-seed-1337" / "state.json"
        deadline = time.monotonic() + 300
        while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        result = _run(fetched, "split", "--train", "12", "--validation", "5", "--test", "5", "--force")
        assert proc.poll() is None, "the training ended before the split started: make it longer"
        assert result.returncode == EXIT_RETRYABLE, result.stderr[-1500:]
        last = result.stderr.strip().splitlines()[-1]
        assert "a split must wait: subsets is in use" in last and "training scratch" in last
        assert _digest(vol.subset("train") / "cat") == before
    finally:
        proc.wait(timeout=600)
    assert proc.returncode == 0, proc.stderr.read()[-1500:]  # never a NotFoundError (exit 70)
    assert (vol.model_dir("scratch") / "COMPLETE").exists()
    assert _run(fetched, "split", "--train", "12", "--validation", "5", "--test", "5", "--force").returncode == 0


def test_a_split_waits_for_a_reader_of_the_split_and_gives_up_retryably(fetched):
    split(config=SplitConfig(data_dir=fetched, train=10, validation=5, test=5))
    vol = Volume(fetched)
    before = _digest(vol.subset("test") / "dog")
    with vol.reading("subsets", what="training scratch"):  # a training between two epochs
        result = _run(fetched, "split", "--train", "12", "--validation", "5", "--test", "5", "--force")
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == EXIT_RETRYABLE and "subsets is in use" in last and "training scratch" in last
    assert _digest(vol.subset("test") / "dog") == before and not list(vol.staging.glob("split-*"))


@pytest.mark.slow
def test_evaluate_waits_while_a_split_replaces_the_test_images(fetched):
    split(config=SplitConfig(data_dir=fetched, train=10, validation=5, test=5))
    vol = Volume(fetched)
    with vol.replacing("subsets", what="a split"):
        result = _run(fetched, "evaluate")
    assert result.returncode == EXIT_RETRYABLE and "subsets is being replaced" in result.stderr.splitlines()[-1]


@pytest.mark.slow
def test_a_feature_store_is_never_replaced_under_a_reader(fetched):
    """A training that finds the store damaged computes a new one aside, and swaps it in only when no stage
    has the old one open (an evaluate reading its test features); else it gives up retryably."""
    split(config=SplitConfig(data_dir=fetched, train=10, validation=5, test=5))
    vol = Volume(fetched)
    train = ["train", "--model", "feature-extraction", "--epochs", "1", "--image-size", "32", "--batch-size", "8",
             "--weights", "none", "--force"]
    assert _run(fetched, *train).returncode == 0
    key = read_json(vol.model_dir("feature-extraction") / "config.json")["validation"]["features"]
    store = vol.features / key
    (store / "train.npy").write_bytes((store / "train.npy").read_bytes()[:200])  # damaged by a full disk
    before = _digest(store)
    with vol.reading(f"features-{key}", what="evaluating feature-extraction"):
        result = _run(fetched, *train)
    last = result.stderr.strip().splitlines()[-1]
    assert result.returncode == EXIT_RETRYABLE, result.stderr[-1500:]
    assert f"features-{key} is in use" in last and "evaluating feature-extraction" in last
    assert _digest(store) == before and not list(vol.staging.glob(f"features-{key}*"))
    again = _run(fetched, *train)  # nobody reads it now: computed again and swapped in
    assert again.returncode == 0 and "computing them again" in again.stdout, again.stderr[-1500:]
    assert _digest(store) != before and _digest(store)["train.npy"] != before["train.npy"]
