"""Issue 28, section 3: how much data each model needs (learning/train-<size>/, the curve, its fit)."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from shared.core.errors import UsageError
from shared.data.split import SplitConfig, load_manifest, split
from shared.data.subsample import check_size, subsample
from shared.orchestration.chain import chains
from shared.orchestration.learning import LearningConfig, learning_curve, parse_sizes, units
from shared.reports.learning_curve import fit, images_for
from shared.training.catalog import ModelName
from shared.training.runs import TrainConfig
from shared.volume.layout import CLASSES, Volume
from tests.helpers import jobs

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def small(fetched) -> Volume:
    split(config=SplitConfig(data_dir=fetched, train=10, validation=5, test=5))
    return Volume(fetched)


def test_a_power_law_is_recovered_and_extrapolated():
    sizes = [250, 500, 1000, 2000]
    a, b = fit(sizes, [0.3 * n ** 0.12 for n in sizes])
    assert a == pytest.approx(0.3) and b == pytest.approx(0.12)
    assert images_for(0.3 * 8000 ** 0.12, a, b) == pytest.approx(8000, rel=1e-6)
    assert fit([500], [0.7]) is None  # one size: no curve
    assert images_for(0.9, 0.8, -0.01) is None  # a falling curve never gets there
    assert images_for(0.9, 0.5, 1e-9) == float("inf")  # a flat one, not an overflow


def test_sizes_and_units_come_from_one_parser_and_the_catalog():
    assert parse_sizes("1000 250,500") == (250, 500, 1000)
    for bad in ("", "250 250", "0", "25O", "٣"):
        with pytest.raises(UsageError):
            parse_sizes(bad)
    config = LearningConfig(template=TrainConfig(data_dir=Path("x"), model=ModelName.scratch), sizes=(4, 10),
                            seeds=(1, 2), models=(ModelName.scratch, ModelName.fine_tune))
    todo = units(config)
    assert len(todo) == 2 * 2 * len(chains())  # sizes x seeds x chains: the Indexed Job's completions
    assert [(size, seed) for size, seed, _ in todo[:len(chains())]] == [(4, 1)] * len(chains())
    assert todo[0][2] == [ModelName.scratch] and sum(bool(w) for _, _, w in todo) == 2 * 2 * 2
    split_manifest = {"counts": {"train": {c: 10 for c in CLASSES}}}
    assert check_size(20, split_manifest) == 10
    for bad in (21, 22, 0):
        with pytest.raises(UsageError):
            check_size(bad, split_manifest)


def test_a_size_is_the_first_images_of_the_split_with_its_own_fingerprint(small):
    parent = load_manifest(small)
    four, ten = subsample(vol=small, train_size=4), subsample(vol=small, train_size=10)
    fours, tens = load_manifest(four), load_manifest(ten)
    assert len({parent["fingerprint"], fours["fingerprint"], tens["fingerprint"]}) == 3
    for c in CLASSES:
        names = sorted(p.name for p in (four.subset("train") / c).iterdir())
        assert names == sorted(f["name"] for f in parent["files"]["train"][c][:2])  # Kaggle's first images
        assert set(names) <= {p.name for p in (ten.subset("train") / c).iterdir()}  # nested
        for s in ("validation", "test"):  # every size is scored on the split's own images
            assert sorted(p.name for p in (four.subset(s) / c).iterdir()) == sorted(
                p.name for p in (small.subset(s) / c).iterdir())
    made = four.split_manifest.stat().st_mtime_ns
    assert subsample(vol=small, train_size=4) == four and four.split_manifest.stat().st_mtime_ns == made  # a no-op
    with pytest.raises(UsageError):
        learning_curve(config=LearningConfig(template=TrainConfig(data_dir=small.root, model=ModelName.scratch),
                                             sizes=(40,), models=(ModelName.scratch,)))
    assert not small.learning(40).root.exists()  # refused before anything is made


@pytest.mark.slow
def test_make_learning_curve_draws_every_run_and_is_a_no_op_when_done(small, tmp_path):
    """The README's command with tiny settings; a second run trains nothing."""
    command = ["make", "-C", str(ROOT), "learning-curve", f"DATA_DIR={small.root}", "SIZES=4 10", "MODELS=scratch",
               "SEEDS=1 2", "EPOCHS=1", "IMAGE_SIZE=80", "BATCH_SIZE=8"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CATSDOGS_", "MAKE"))}
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert first.returncode == 0, first.stderr[-2000:]
    data = json.loads((small.reports / "learning-curve.json").read_text())
    assert sorted((p["train_images"], p["seed"]) for p in data["points"]) == [(4, 1), (4, 2), (10, 1), (10, 2)]
    assert {p["model"] for p in data["points"]} == {"scratch"} and data["synthetic"]
    curve = data["curves"]["scratch"]
    assert [p["train_images"] for p in curve["points"]] == [4, 10] and all(p["n"] == 2 for p in curve["points"])
    for p in curve["points"]:
        runs = [q["accuracy"] for q in data["points"] if q["train_images"] == p["train_images"]]
        assert p["low"] == min(runs) and p["high"] == max(runs) and p["mean"] == pytest.approx(np.mean(runs))
    test_images = {p["test_images"] for p in data["points"]}
    assert test_images == {10}  # the same test subset at every size
    page = (small.reports / "index.html").read_text()
    assert 'id="learning-curve"' in page and 'alt="test accuracy by training images, every model"' in page
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert again.returncode == 0 and "trained scratch" not in again.stdout
    assert again.stdout.count("already trained") == 4


@pytest.mark.slow
def test_indices_of_one_size_run_at_once(small):
    """Two pods of the Indexed Job make the same size's subset at once: one makes it, the other waits for it."""
    chain_count = len(chains())
    args = ["learning-curve", "--sizes", "10", "--models", "scratch", "--seeds", "1 2", "--epochs", "1",
            "--image-size", "80", "--batch-size", "8"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAGGLE_", "CATSDOGS_", "JOB_"))}
    procs = [subprocess.Popen([os.sys.executable, "-m", "jobs", *args, "--index", str(i), "--data-dir",
                               str(small.root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for i in (0, chain_count)]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-1500:] for _, err in outputs]
    data = json.loads((small.reports / "learning-curve.json").read_text())
    assert sorted(p["seed"] for p in data["points"]) == [1, 2]
    out_of_range = jobs(small, *args, "--index", str(2 * chain_count))
    assert out_of_range.returncode == 2 and "Traceback" not in out_of_range.stderr
    shutil.rmtree(small.learning(10).root)


@pytest.mark.slow
def test_a_killed_sweep_resumes_where_it_stopped(small):
    """A pod killed mid-epoch (preempted): the same command again resumes that run after its last epoch."""
    import signal
    import sys

    from tests.helpers import kill_after_first_epoch

    args = ["learning-curve", "--sizes", "10", "--models", "scratch", "--seeds", "1", "--epochs", "3",
            "--image-size", "80", "--batch-size", "4", "--data-dir", str(small.root)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAGGLE_", "CATSDOGS_", "JOB_"))}
    proc = subprocess.Popen([sys.executable, "-m", "jobs", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    state = small.learning(10).staging / "train-scratch-seed-1" / "state.json"
    done = kill_after_first_epoch(proc, state, sig=signal.SIGKILL)
    assert 1 <= done < 3
    again = subprocess.run([sys.executable, "-m", "jobs", *args], env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and f"resuming scratch after epoch {done} of 3" in again.stdout, again.stderr[-1500:]
    history = json.loads((small.learning(10).model_dir("scratch", 1) / "history.json").read_text())
    assert len(history["loss"]) == 3  # every epoch once
