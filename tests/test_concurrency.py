"""Several processes on one volume, as parallel pods are: real processes, real locks, nothing lost."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.core.errors import EXIT_RETRYABLE
from shared.data.split import SplitConfig, split
from shared.training.train import TrainConfig, train
from shared.volume.fsutil import read_json
from shared.volume.layout import Volume
from shared.volume.locks import exclusive

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def _start(root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "jobs", *args, "--data-dir", str(root)], env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out, err


def test_a_held_lock_makes_the_second_run_exit_retryable_at_once(fetched):
    with exclusive(Volume(fetched).locks, "split", what="a split"):
        code, _, err = _finish(_start(fetched, "split", "--train", "4", "--validation", "2", "--test", "2"))
    assert code == EXIT_RETRYABLE
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: a split is already running on this volume (pid ") and str(os.getpid()) in last
    assert not Volume(fetched).subsets.exists()
    code, _, err = _finish(_start(fetched, "split", "--train", "4", "--validation", "2", "--test", "2"))
    assert code == 0, err  # released with its holder


def test_two_splits_of_other_sizes_never_silently_replace_each_other(fetched):
    a = _start(fetched, "split", "--train", "10", "--validation", "5", "--test", "5")
    b = _start(fetched, "split", "--train", "12", "--validation", "5", "--test", "5")
    (code_a, _, err_a), (code_b, _, err_b) = _finish(a), _finish(b)
    codes = sorted([code_a, code_b])
    assert codes in ([0, 3], [0, EXIT_RETRYABLE]), (err_a, err_b)
    winner = 10 if code_a == 0 else 12
    manifest = read_json(Volume(fetched).split_manifest)
    assert manifest["params"]["train"] == winner and manifest["counts"]["train"]["cat"] == winner
    assert len(list((Volume(fetched).subset("train") / "dog").iterdir())) == winner
    assert not list(Volume(fetched).staging.glob("split-*"))


@pytest.mark.slow
def test_two_identical_trainings_do_not_share_a_staging_folder(fetched):
    split(config=SplitConfig(data_dir=fetched, train=10, validation=5, test=5))
    args = ["train", "--model", "scratch", "--epochs", "2", "--image-size", "80", "--batch-size", "8"]
    first, second = _start(fetched, *args), _start(fetched, *args)
    results = [_finish(first), _finish(second)]
    codes = sorted(code for code, _, _ in results)
    # The second finds the first training (75, at once) or, started late, its finished model (0, a no-op).
    assert codes in ([0, 0], [0, EXIT_RETRYABLE]), [err[-500:] for _, _, err in results]
    assert sum("nothing to do" in out for _, out, _ in results) == (1 if codes == [0, 0] else 0)
    folder = Volume(fetched).model_dir("scratch")
    assert len(read_json(folder / "history.json")["loss"]) == 2 and (folder / "COMPLETE").exists()
    assert not list(Volume(fetched).staging.iterdir())


@pytest.mark.slow
def test_evaluations_of_two_models_at_once_never_lose_a_row(fetched):
    split(config=SplitConfig(data_dir=fetched, train=8, validation=4, test=4))
    for model, size in (("scratch", 80), ("feature-extraction", 32)):
        train(config=TrainConfig(data_dir=fetched, model=model, epochs=1, image_size=size, batch_size=8,
                                 weights="none"))
    summary = Volume(fetched).reports / "summary.md"
    for _ in range(3):
        summary.unlink(missing_ok=True)
        procs = [_start(fetched, "evaluate", "--model", m, "--force") for m in ("scratch", "feature-extraction")]
        for code, _, err in map(_finish, procs):
            assert code == 0, err[-800:]
        text = summary.read_text()
        assert "| scratch [SYNTHETIC] |" in text and "| feature-extraction [SYNTHETIC] |" in text
    assert not list(Volume(fetched).staging.iterdir())


@pytest.mark.slow
def test_a_slow_summary_writer_cannot_drop_a_row_written_meanwhile(fetched, monkeypatch):
    """Deterministic form of the race: A reads the rows, B adds a report and writes, then A writes."""
    import threading
    import time

    from shared.orchestration import reporting
    from shared.reports import evaluation

    split(config=SplitConfig(data_dir=fetched, train=8, validation=4, test=4))
    for model, size in (("scratch", 80), ("feature-extraction", 32)):
        train(config=TrainConfig(data_dir=fetched, model=model, epochs=1, image_size=size, batch_size=8,
                                 weights="none"))
    vol = Volume(fetched)
    manifest = read_json(vol.split_manifest)
    evaluation.evaluate_model(vol=vol, model="scratch", split=manifest, batch_size=8, force=False)
    real_write, rows_read = reporting.write_summary, threading.Event()

    def slow_write(*, vol, rows):
        if threading.current_thread().name == "A":
            rows_read.set()
            time.sleep(1.5)  # A has read its rows; B's report lands now
        return real_write(vol=vol, rows=rows)

    monkeypatch.setattr(reporting, "write_summary", slow_write)
    a = threading.Thread(target=reporting.update_summary, kwargs={"vol": vol, "split": manifest}, name="A")
    a.start()
    rows_read.wait(30)
    evaluation.evaluate_model(vol=vol, model="feature-extraction", split=manifest, batch_size=8, force=False)
    reporting.update_summary(vol=vol, split=manifest)
    a.join(30)
    text = (vol.reports / "summary.md").read_text()
    assert "| scratch [SYNTHETIC] | 1 |" in text and "| feature-extraction [SYNTHETIC] | 1 |" in text


def test_clearing_one_runs_leftovers_never_touches_another_runs_staging(tmp_path):
    """Found with two seeds on a cluster: "evaluate-scratch" cleared "evaluate-scratch-augmented-..." (and
    a seed's "evaluate-scratch-seed-7-...") while another pod was writing into it."""
    import textwrap

    from shared.volume.fsutil import clear_stale

    staging = tmp_path / ".staging"
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from shared.volume.fsutil import staged_dir
        with staged_dir(Path({str(staging)!r}), "evaluate-scratch-augmented") as a, \\
                staged_dir(Path({str(staging)!r}), "evaluate-scratch-seed-7") as b:
            print("ready", flush=True)
            time.sleep(2)
            for folder in (a, b):
                (folder / "mistakes.png").write_bytes(b"png")  # FileNotFoundError if cleared meanwhile
        """)], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    assert writer.stdout.readline().strip() == "ready"
    leftover = staging / "evaluate-scratch-k1ll3d_0"  # what a killed evaluation of scratch left, as mkdtemp names
    leftover.mkdir()
    clear_stale(staging, "evaluate-scratch")
    assert writer.wait(timeout=60) == 0  # the other runs' folders survived
    assert not leftover.exists()  # and the stale one of this run is gone
