"""Issue 27: Kaggle's test set scored, a submission in the competition's format, sharded like a batch job."""

import csv
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from shared.core.errors import PermanentError
from shared.data.pipeline import decode_resize
from shared.serving.infer import InferConfig, infer
from shared.training.catalog import ModelName
from shared.training.models import load_trained
from shared.volume.layout import MODEL_FILE
from tests.helpers import jobs, one_error


def _rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_test1_is_scored_in_id_order_with_a_submission_in_the_competition_s_format(vol):
    result = infer(config=InferConfig(data_dir=vol.root, model=ModelName.scratch))
    count = len(list(vol.test1.iterdir()))
    rows = _rows(result.folder / "predictions.csv")
    assert [r["file"] for r in rows] == [f"{i}.jpg" for i in range(1, count + 1)]  # by id, not by name
    size = int(load_trained(vol.model_dir("scratch") / MODEL_FILE).inputs[0].shape[1])
    pixels = np.stack([decode_resize(str(vol.test1 / r["file"]), size).numpy() for r in rows])
    expected = load_trained(vol.model_dir("scratch") / MODEL_FILE).predict(pixels, verbose=0).ravel()
    assert np.allclose([float(r["p_dog"]) for r in rows], expected, atol=1e-6)
    assert [int(r["label"]) for r in rows] == [int(p > 0.5) for p in (float(r["p_dog"]) for r in rows)]
    submission = _rows(result.folder / "submission.csv")
    sample = _rows(vol.sample_submission)
    assert [s["id"] for s in submission] == [s["id"] for s in sample]  # every id once, the sample's order
    assert {s["id"]: s["label"] for s in submission} == {r["file"].removesuffix(".jpg"): r["label"] for r in rows}
    meta = (result.folder / "meta.json").read_text()
    for word in ("scratch", '"seed": 1337', "split", "weights", "precision", "data_source"):
        assert word in meta


@pytest.mark.slow
def test_shards_merge_to_the_bytes_of_one_process_and_a_dead_shard_is_redone_alone(vol, tmp_path):
    one = infer(config=InferConfig(data_dir=vol.root, model=ModelName.scratch))
    single = (one.folder / "predictions.csv").read_bytes(), (one.folder / "submission.csv").read_bytes()
    shutil.rmtree(one.folder)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAGGLE_", "CATSDOGS_", "JOB_"))}
    procs = [subprocess.Popen([sys.executable, "-m", "jobs", "infer", "--model", "scratch", "--shard", str(i),
                               "--shards", "3", "--batch-size", "4", "--data-dir", str(vol.root)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-1500:]
    assert ((one.folder / "predictions.csv").read_bytes(), (one.folder / "submission.csv").read_bytes()) == single
    parts = one.folder / "parts" / "3"
    names = [line.split(",")[1] for i in range(3) for line in (parts / f"part-{i}.csv").read_text().splitlines()]
    assert sorted(names) == sorted(r["file"] for r in _rows(one.folder / "predictions.csv"))  # each file once
    # Shard 1's pod died: its part is gone. Shard 0 again is a no-op; shard 1 alone redoes its part and merges.
    (parts / "part-1.json").unlink()
    (one.folder / "predictions.csv").unlink()
    again = jobs(vol, "infer", "--model", "scratch", "--shard", "0", "--shards", "3")
    assert again.returncode == 0 and "images scored" not in again.stdout and "waiting for shard(s) 1" in again.stdout
    redo = jobs(vol, "infer", "--model", "scratch", "--shard", "1", "--shards", "3")
    assert redo.returncode == 0 and "shard 1 of 3" in redo.stdout
    assert (one.folder / "predictions.csv").read_bytes() == single[0]


@pytest.mark.slow
def test_unreadable_files_are_named_and_exit_3_unless_skipped(vol, tmp_path):
    photos = tmp_path / "photos"
    shutil.copytree(vol.test1, photos)
    (photos / "notes.jpg").write_text("not an image")
    (photos / "broken.jpg").write_bytes((vol.test1 / "1.jpg").read_bytes()[:200])  # a cut JPEG
    failed = jobs(vol, "infer", "--model", "scratch", str(photos))
    error = one_error(failed, 3)
    assert "2 files could not be scored" in error and "notes.jpg" in failed.stderr and "broken.jpg" in failed.stderr
    skipped = jobs(vol, "infer", "--model", "scratch", str(photos), "--skip-unreadable")
    assert skipped.returncode == 0 and "2 unreadable files got p_dog 0.5" in skipped.stderr
    folder = next((vol.reports / "infer" / "scratch-seed-1337").glob("files-*"))
    rows = {r["file"]: r for r in _rows(folder / "predictions.csv")}
    assert rows[str(photos / "notes.jpg")]["p_dog"] == "0.500000" and len(rows) == len(list(photos.iterdir()))
    assert (folder / "unreadable.txt").read_text().split() == sorted([str(photos / "broken.jpg"),
                                                                      str(photos / "notes.jpg")])


@pytest.mark.slow
def test_jpegs_cut_after_a_readable_header_are_named_and_the_others_scored_as_usual(vol, tmp_path):
    """Files the header check passes but TensorFlow cannot decode stop the fast pipeline: each is found and
    named, and every other file (before, between and after them, across batch borders) is scored as usual."""
    photos = tmp_path / "photos"
    shutil.copytree(vol.test1, photos)
    names = sorted(p.name for p in photos.iterdir())
    cut = [names[0], names[len(names) // 2], names[len(names) // 2 + 1]]
    for name in cut:
        data = (vol.test1 / name).read_bytes()
        (photos / name).write_bytes(data[: len(data) // 2])
    from shared.data.pipeline import image_problem
    assert all(image_problem((photos / n).read_bytes()) is None for n in cut)  # the header check passes them
    result = infer(config=InferConfig(data_dir=vol.root, model=ModelName.scratch, inputs=(photos,), batch_size=4,
                                      skip_unreadable=True))
    assert (result.folder / "unreadable.txt").read_text().split() == sorted(str(photos / n) for n in cut)
    whole = infer(config=InferConfig(data_dir=vol.root, model=ModelName.scratch, batch_size=4))
    usual = {r["file"]: r["p_dog"] for r in _rows(whole.folder / "predictions.csv")}
    rows = {Path(r["file"]).name: r["p_dog"] for r in _rows(result.folder / "predictions.csv")}
    assert len(rows) == len(names) and all(rows[n] == "0.500000" for n in cut)
    assert {n: p for n, p in rows.items() if n not in cut} == {n: usual[n] for n in names if n not in cut}


def test_a_pipeline_failure_no_file_explains_is_retryable_not_a_file_blamed(tmp_path, monkeypatch):
    import tensorflow as tf

    from shared.core.errors import RetryableError
    from shared.serving import infer as stage

    photo = tmp_path / "cat.jpg"
    photo.write_bytes(tf.io.encode_jpeg(tf.zeros((8, 8, 3), tf.uint8)).numpy())

    def failing(*args, **kwargs):
        raise tf.errors.UnavailableError(None, None, "the volume went away\nand more")
        yield

    monkeypatch.setattr(stage, "_batches", failing)
    with pytest.raises(RetryableError, match="decodes alone: the volume went away$"):
        stage._scores(None, [photo], [0], image_size=8, batch_size=4)
    # The search for the file to blame checks each file first, as the pipeline does: a FIFO among those not
    # yet read is refused, not opened by TensorFlow (which would wait for a writer forever).
    fifo = tmp_path / "later.jpg"
    os.mkfifo(fifo)
    outcome = []

    def score():
        try:
            stage._scores(None, [photo, fifo], [0, 1], image_size=8, batch_size=4)
        except RetryableError as e:
            outcome.append(e)

    worker = threading.Thread(target=score, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive() and len(outcome) == 1, "the search waited on a FIFO"


@pytest.mark.slow
def test_a_test1_with_missing_or_repeated_ids_is_named(vol):
    sample = vol.sample_submission.read_text()
    vol.sample_submission.write_text(sample + "2,0\n")
    with pytest.raises(PermanentError, match="more than once: 2"):
        infer(config=InferConfig(data_dir=vol.root, model=ModelName.scratch))
    vol.sample_submission.write_text(sample)
    (vol.test1 / "3.jpg").unlink()
    with pytest.raises(PermanentError, match="no image for ids 3 "):
        infer(config=InferConfig(data_dir=vol.root, model=ModelName.scratch))


@pytest.mark.slow
def test_infer_usage_errors_and_missing_models(vol):
    assert jobs(vol, "infer", "--model", "scratch", "--shard", "3", "--shards", "3").returncode == 2
    unknown = jobs(vol, "infer", "--model", "scratch_small")
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr
    one_error(jobs(vol, "infer", "--model", "fine-tune"), 3)  # not trained
    shutil.rmtree(vol.test1)
    assert "no unlabeled test set" in one_error(jobs(vol, "infer", "--model", "scratch"), 3)


@pytest.mark.slow
def test_infer_computes_in_the_precision_asked_and_says_so(vol):
    """float32 by default (whatever the run trained in); a mixed policy rebuilds the layers around the same
    weights, costs a little in p_dog, and meta.json says which."""
    import json

    def scored(precision: str) -> tuple[list[float], dict]:
        result = infer(config=InferConfig(data_dir=vol.root, model=ModelName.scratch, precision=precision))
        rows = _rows(result.folder / "predictions.csv")
        return [float(r["p_dog"]) for r in rows], json.loads((result.folder / "meta.json").read_text())

    exact, meta = scored("float32")
    assert meta["precision"] == "float32"
    half, meta = scored("mixed_bfloat16")
    assert meta["precision"] == "mixed_bfloat16" and meta["trained_precision"] == "float32"
    assert np.allclose(half, exact, atol=2e-2) and half != exact  # bfloat16 computes, with its rounding
