"""The chapter's opening convnet: the seed's layers, learning on generated digits, bad data, no-op re-runs."""

import numpy as np
import pytest
from typer.testing import CliRunner

from jobs.__main__ import app
from shared.data.mnist_data import KEYS, synthetic_arrays
from shared.orchestration.mnist import run_mnist
from shared.reports.mnist_report import metrics
from shared.training.mnist import MnistConfig, MnistNet, build_mnist
from shared.volume.fsutil import read_json
from shared.volume.layout import Volume

runner = CliRunner()
SEED_SHAPES = {  # the seed's model.summary(), output shape and parameters per layer
    True: [((26, 26, 32), 320), ((13, 13, 32), 0), ((11, 11, 64), 18_496), ((5, 5, 64), 0),
           ((3, 3, 128), 73_856), ((1152,), 0), ((10,), 11_530)],
    False: [((26, 26, 32), 320), ((24, 24, 64), 18_496), ((22, 22, 128), 73_856), ((61952,), 0),
            ((10,), 619_530)],
}


@pytest.mark.parametrize("pooling, total", [(True, 104_202), (False, 712_202)])
def test_layers_as_the_seed(pooling, total):
    model = build_mnist(pooling=pooling)
    assert model.count_params() == total
    assert [(tuple(layer.output.shape[1:]), layer.count_params()) for layer in model.layers[1:]] == \
        SEED_SHAPES[pooling]
    assert model.layers[-1].activation.__name__ == "softmax"
    assert type(model.optimizer).__name__ == "RMSprop" and model.loss == "sparse_categorical_crossentropy"


def test_metrics_by_hand():
    y = np.array([0, 1, 1, 2])
    p = np.full((4, 10), 0.01)
    p[[0, 1, 2, 3], [0, 1, 2, 2]] = 0.91  # the third is a 1 taken for a 2
    m = metrics(y, p)
    assert m["accuracy"] == 0.75 and m["count"] == 4
    assert m["per_class_accuracy"]["1"] == 0.5 and m["per_class_accuracy"]["0"] == 1.0
    assert m["per_class_accuracy"]["5"] is None
    assert m["confusion_matrix"][1][2] == 1 and sum(map(sum, m["confusion_matrix"])) == 4
    assert m["loss"] == pytest.approx(-(3 * np.log(0.91) + np.log(0.01)) / 4)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("mnist")
    run_mnist(config=MnistConfig(data_dir=root, source="synthetic", samples=2000, epochs=2))
    return root


@pytest.mark.slow
def test_learns_generated_digits_and_reports_honestly(trained):
    from tensorflow import keras

    from shared.data.mnist_data import read_npz
    from shared.training.mnist import images

    vol = Volume(trained)
    report = read_json(vol.mnist_report_dir("convnet") / "metrics.json")
    assert report["metrics"]["accuracy"] >= 0.5  # chance is 0.1; measured 0.80 after 2 epochs
    assert report["synthetic"] and "SYNTHETIC" in report["note"] and report["params"] == 104_202
    data = read_npz(vol.mnist / "synthetic-2000-1337.npz")
    loss, accuracy = keras.models.load_model(vol.mnist_model_dir("convnet") / "model.keras").evaluate(
        images(data["x_test"]), data["y_test"], verbose=0)
    assert report["metrics"]["accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert report["metrics"]["loss"] == pytest.approx(loss, rel=1e-4)
    assert report["metrics"]["count"] == len(data["y_test"]) == 333
    summary = (vol.reports / "mnist.md").read_text()
    assert "convnet [SYNTHETIC]" in summary and "98.9%" in summary and "712,202" in summary
    for name in ("confusion_matrix.png", "mistakes.png"):
        assert (vol.mnist_report_dir("convnet") / name).stat().st_size > 10_000
    assert not list(vol.staging.glob("mnist-*"))


@pytest.mark.slow
def test_rerun_is_a_no_op_unless_forced(trained):
    vol = Volume(trained)
    model, report = vol.mnist_model_dir("convnet") / "model.keras", vol.mnist_report_dir("convnet") / "metrics.json"
    before = model.stat().st_mtime_ns, report.stat().st_mtime_ns
    result = runner.invoke(app, ["mnist", "--data-dir", str(trained), "--source", "synthetic", "--samples", "2000",
                                 "--epochs", "2"])
    assert result.exit_code == 0, result.output
    assert "nothing to do" in result.stdout
    assert (model.stat().st_mtime_ns, report.stat().st_mtime_ns) == before


def _bad(arrays: dict, **changes) -> dict:
    out = {k: v for k, v in arrays.items() if k in changes.get("keep", KEYS)}
    out.update({k: v for k, v in changes.items() if k != "keep"})
    return out


@pytest.mark.parametrize("change, words", [
    ({"keep": ("x_train", "y_train", "x_test")}, "lacks y_test"),
    ({"x_train": np.zeros((20, 28, 27), np.uint8)}, "expected uint8 (N, 28, 28)"),
    ({"x_test": np.zeros((10, 28, 28), np.float32)}, "expected uint8 (N, 28, 28)"),
    ({"y_train": np.zeros((19,), np.uint8)}, "expected integers"),
    ({"y_test": np.full((10,), 12, np.uint8)}, "labels 0-9"),
])
def test_malformed_npz_exits_3_in_one_line(tmp_path, change, words):
    path = tmp_path / "mnist.npz"
    np.savez(path, **_bad(synthetic_arrays(train=20, test=10, seed=0), **change))
    result = runner.invoke(app, ["mnist", "--data-dir", str(tmp_path / "v"), "--source", str(path)])
    assert result.exit_code == 3
    assert result.stderr.count("\n") == 1 and words in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "v" / "mnist" / "models").exists()


@pytest.mark.parametrize("content", [None, b"not a zip at all", b"PK\x03\x04truncated"])
def test_missing_or_unreadable_file_exits_3(tmp_path, content):
    path = tmp_path / "mnist.npz"
    if content is not None:
        path.write_bytes(content)
    result = runner.invoke(app, ["mnist", "--data-dir", str(tmp_path / "v"), "--source", str(path)])
    assert result.exit_code == 3 and result.stderr.count("\n") == 1 and str(path) in result.stderr


def test_keras_download_failure_exits_3(tmp_path, monkeypatch):
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens: fails at once, offline
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    result = runner.invoke(app, ["mnist", "--data-dir", str(tmp_path / "v")])
    assert result.exit_code == 3 and "cannot download MNIST" in result.stderr
    assert result.stderr.count("\n") == 1


def test_no_max_pool_is_a_choice_and_a_typo_is_a_usage_error(tmp_path):
    assert MnistNet("no-max-pool") is MnistNet.no_max_pool
    result = runner.invoke(app, ["mnist", "--data-dir", str(tmp_path), "--model", "no_max_pool"])
    assert result.exit_code == 2


@pytest.mark.slow
def test_both_nets_at_once_keep_both_rows(tmp_path):
    import os
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "jobs", "mnist", "--data-dir", str(tmp_path), "--source", "synthetic",
           "--samples", "300", "--epochs", "1", "--model"]
    procs = [subprocess.Popen([*cmd, net], env=os.environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True) for net in ("convnet", "no-max-pool")]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read()[-800:]
    summary = (Volume(tmp_path).reports / "mnist.md").read_text()
    assert "| convnet [SYNTHETIC] |" in summary and "| no-max-pool [SYNTHETIC] |" in summary
