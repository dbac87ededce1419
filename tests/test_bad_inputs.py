"""Bad input, as a hostile user types it, against every stage, in real processes.

Each case: the exit code of the contract, exactly one `error:` line and it is the last one, no
traceback, and the volume byte for byte as it was (every file's path and content; `.locks/`, where a
stage notes who holds a lock, is left out).
"""

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from shared.data.fetch import FetchConfig, fetch
from shared.data.split import SplitConfig, split
from shared.training.catalog import ModelName
from shared.training.train import TrainConfig, train

pytestmark = pytest.mark.slow
U, P = 2, 3  # usage, permanent


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A good volume: fetched, split, scratch trained and evaluated."""
    from shared.orchestration.reporting import EvaluateConfig, evaluate

    root = tmp_path_factory.mktemp("good") / "volume"
    fetch(config=FetchConfig(data_dir=root, source="synthetic", per_class=40))
    split(config=SplitConfig(data_dir=root, train=10, validation=5, test=5))
    train(config=TrainConfig(data_dir=root, model=ModelName.scratch, epochs=1, image_size=80, batch_size=8))
    evaluate(config=EvaluateConfig(data_dir=root))
    return root


@pytest.fixture(scope="module")
def files(tmp_path_factory, template) -> dict[str, Path]:
    """Bad things to point the stages at."""
    d = tmp_path_factory.mktemp("bad")
    (d / "notzip.zip").write_text("this is not a zip archive")
    with zipfile.ZipFile(d / "noimages.zip", "w") as zf:
        zf.writestr("readme.txt", "nothing here")
    with zipfile.ZipFile(d / "escape.zip", "w") as zf:
        zf.writestr("../../cat.0.jpg", b"\xff\xd8")
    (d / "empty").mkdir()
    (d / "garbage.h5").write_bytes(os.urandom(2048))
    (d / "garbage.npz").write_bytes(b"PK\x03\x04" + os.urandom(100))
    (d / "a-file").write_text("a file, not a folder")
    os.mkfifo(d / "fifo.jpg")
    os.symlink("/etc/passwd", d / "link.jpg")
    shutil.copy(template / "raw" / "train" / "cat.1.jpg", d / "cat.jpg")
    # Damaged archives (issue 20, 6): each exits 3 through zipfile's own errors, never 70.
    jpeg = (template / "raw" / "train" / "cat.1.jpg").read_bytes()
    with zipfile.ZipFile(d / "bad-deflate.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("train/cat.0.jpg", jpeg * 4)
    data = bytearray((d / "bad-deflate.zip").read_bytes())
    data[60:90] = bytes(30)  # inside the compressed stream of the first member
    (d / "bad-deflate.zip").write_bytes(bytes(data))
    for name, offset, value in (("unsupported-method.zip", 10, 99), ("encrypted.zip", 8, 1)):
        with zipfile.ZipFile(d / name, "w", zipfile.ZIP_STORED) as zf:
            zf.writestr("train/cat.0.jpg", jpeg)
        data = bytearray((d / name).read_bytes())
        at = data.index(b"PK\x01\x02")  # the central directory entry: method at +10, flags at +8
        data[at + offset:at + offset + 2] = value.to_bytes(2, "little")
        (d / name).write_bytes(bytes(data))
    # npz files (issue 20, 9): a member not in npy format; a header claiming 10^12 elements.
    with zipfile.ZipFile(d / "not-npy.npz", "w") as zf:
        zf.writestr("x_train.npy", b"hello, not an array")
    import io

    import numpy as np

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": (10**12,)})
    with zipfile.ZipFile(d / "huge-header.npz", "w") as zf:
        zf.writestr("x_train.npy", header.getvalue() + bytes(16))
    return d


def cases(f: dict) -> list[tuple[str, list[str], int]]:
    return [
        ("fetch-missing-source", ["fetch", "--source", "/nonexistent/dogs-vs-cats.zip", "--force"], P),
        ("fetch-not-a-zip", ["fetch", "--source", f"{f}/notzip.zip", "--force"], P),
        ("fetch-zip-without-images", ["fetch", "--source", f"{f}/noimages.zip", "--force"], P),
        ("fetch-zip-escaping", ["fetch", "--source", f"{f}/escape.zip", "--force"], P),
        ("fetch-empty-folder", ["fetch", "--source", f"{f}/empty", "--force"], P),
        ("fetch-other-source-no-force", ["fetch", "--source", "synthetic", "--per-class", "5"], P),
        ("fetch-per-class-0", ["fetch", "--source", "synthetic", "--per-class", "0"], U),
        ("fetch-per-class-huge", ["fetch", "--source", "synthetic", "--per-class", "1000000000"], U),
        ("fetch-retries-negative", ["fetch", "--retries", "-1"], U),
        ("fetch-seed-negative", ["fetch", "--source", "synthetic", "--seed", "-5"], U),
        ("fetch-unknown-option", ["fetch", "--bogus"], U),
        ("fetch-source-fifo", ["fetch", "--force", "--source", f"{f}/fifo.jpg"], P),
        ("fetch-source-dev-zero", ["fetch", "--force", "--source", "/dev/zero"], P),
        ("fetch-source-symlink", ["fetch", "--force", "--source", f"{f}/link.jpg"], P),
        ("fetch-corrupt-deflate", ["fetch", "--force", "--source", f"{f}/bad-deflate.zip"], P),
        ("fetch-unsupported-compression", ["fetch", "--force", "--source", f"{f}/unsupported-method.zip"], P),
        ("fetch-encrypted-member", ["fetch", "--force", "--source", f"{f}/encrypted.zip"], P),
        ("split-zero", ["split", "--train", "0"], U),
        ("split-huge", ["split", "--train", "1000000000000"], U),
        ("split-more-than-fetched", ["split", "--train", "30", "--validation", "5", "--test", "10"], U),
        ("split-other-sizes-no-force", ["split", "--train", "5", "--validation", "5", "--test", "5"], P),
        ("split-not-a-number", ["split", "--train", "ten"], U),
        ("train-no-model", ["train"], U),
        ("train-unknown-model", ["train", "--model", "resnet"], U),
        ("train-zero-epochs", ["train", "--model", "scratch", "--epochs", "0"], U),
        ("train-image-size-huge", ["train", "--model", "scratch", "--image-size", "100000"], U),
        ("train-image-size-too-small", ["train", "--model", "scratch", "--image-size", "40"], U),
        ("train-lr-nan", ["train", "--model", "scratch", "--learning-rate", "nan"], U),
        ("train-lr-inf", ["train", "--model", "scratch", "--learning-rate", "inf"], U),
        ("train-lr-negative", ["train", "--model", "scratch", "--learning-rate", "-1"], U),
        ("train-batch-zero", ["train", "--model", "scratch", "--batch-size", "0"], U),
        ("train-precision-unknown", ["train", "--model", "scratch", "--precision", "float64"], U),
        ("train-seed-negative", ["train", "--model", "scratch", "--seed", "-1"], U),
        ("train-weights-missing", ["train", "--model", "feature-extraction", "--weights", "/nonexistent.h5"], U),
        ("train-weights-garbage", ["train", "--model", "feature-extraction", "--image-size", "32", "--weights",
                                   f"{f}/garbage.h5"], P),
        ("train-fine-tune-without-base", ["train", "--model", "fine-tune"], P),
        ("train-other-settings-no-force", ["train", "--model", "scratch", "--image-size", "80", "--batch-size", "8",
                                           "--epochs", "2"], P),
        ("evaluate-untrained", ["evaluate", "--model", "fine-tune"], P),
        ("evaluate-unknown-model", ["evaluate", "--model", "resnet"], U),
        ("evaluate-batch-zero", ["evaluate", "--batch-size", "0"], U),
        ("predict-no-paths", ["predict", "--model", "scratch"], U),
        ("predict-missing-file", ["predict", "--model", "scratch", "/nonexistent/photo.jpg"], P),
        ("predict-untrained", ["predict", "--model", "fine-tune", f"{f}/cat.jpg"], P),
        ("predict-fifo", ["predict", "--model", "scratch", f"{f}/fifo.jpg"], P),
        ("predict-symlink", ["predict", "--model", "scratch", f"{f}/link.jpg"], P),
        ("predict-batch-zero", ["predict", "--model", "scratch", "--batch-size", "0", f"{f}/cat.jpg"], U),
        ("mnist-missing-npz", ["mnist", "--source", "/nonexistent/mnist.npz"], P),
        ("mnist-garbage-npz", ["mnist", "--source", f"{f}/garbage.npz"], P),
        ("mnist-unknown-net", ["mnist", "--model", "lenet"], U),
        ("mnist-zero-epochs", ["mnist", "--epochs", "0"], U),
        ("mnist-npz-member-not-npy", ["mnist", "--source", f"{f}/not-npy.npz"], P),
        ("mnist-npz-huge-header", ["mnist", "--source", f"{f}/huge-header.npz"], P),
        ("mnist-seed-negative", ["mnist", "--source", "synthetic", "--seed", "-1"], U),
        ("mnist-seed-too-large", ["mnist", "--source", "synthetic", "--seed", "4294967296"], U),
        ("data-dir-is-a-file", ["split", "--data-dir", f"{f}/a-file"], P),
        ("data-dir-under-proc", ["split", "--data-dir", "/proc/catsdogs"], P),
        ("data-dir-empty", ["split", "--data-dir", ""], U),  # not the current directory
        ("chain-index-out-of-range", ["chain", "--index", "9"], U),
        ("chain-no-index", ["chain"], U),
        ("chain-unknown-model", ["chain", "--index", "0", "--models", "resnet"], U),
        ("doctor-unknown-option", ["doctor", "--bogus"], U),
    ]


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for dirpath, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not (Path(dirpath) == root and d == ".locks"))
        for name in sorted(names):
            path = Path(dirpath) / name
            h.update(str(path.relative_to(root)).encode())
            h.update(os.readlink(path).encode() if path.is_symlink() else path.read_bytes())
    return h.hexdigest()


def _run(case: tuple[str, list[str], int], volume: Path) -> tuple[str, int, int, str, str]:
    name, args, expected = case
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAGGLE_", "CATSDOGS_", "JOB_"))}
    before = tree_hash(volume)
    cmd = [sys.executable, "-m", "jobs", *args, *([] if "--data-dir" in args else ["--data-dir", str(volume)])]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, stdin=subprocess.DEVNULL,
                            cwd=volume)  # so a path taken for "." lands in the volume, and is seen
    after = tree_hash(volume)
    return name, expected, result.returncode, result.stderr, "unchanged" if before == after else "CHANGED"


def test_at_least_forty_bad_inputs(template, files, tmp_path):
    table = cases(files)
    assert len(table) >= 40 and len({name for name, _, _ in table}) == len(table)
    volumes = []
    for name, _, _ in table:
        shutil.copytree(template, tmp_path / name, symlinks=True)
        volumes.append(tmp_path / name)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(_run, table, volumes))
    problems = []
    for name, expected, code, stderr, volume in results:
        lines = stderr.strip().splitlines()
        errors = [line for line in lines if line.startswith("error:")]
        if code != expected or len(errors) != 1 or not lines or lines[-1] != errors[0] or "Traceback" in stderr \
                or volume != "unchanged":
            problems.append(f"{name}: exit {code} (expected {expected}), volume {volume}, stderr: {stderr[-600:]!r}")
    assert not problems, "\n".join(problems)
