"""Issue 27, export: every model of the catalog as a SavedModel that TF Serving and KServe load."""

import errno
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shared.core.errors import RetryableError
from shared.data.pipeline import decode_resize
from shared.serving import export as export_module
from shared.serving import rest
from shared.serving.export import RECORD, base_path, export_run, versions
from shared.training.catalog import ModelName
from shared.training.models import load_trained
from shared.training.runs import trained_run
from shared.volume.layout import MODEL_FILE, Volume
from tests.helpers import jobs, one_error

# Loads the export with TensorFlow alone (no Keras, no project code) and answers with both signatures.
SERVER_SIDE = """
import json, sys
import numpy as np
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
images = [open(p, "rb").read() for p in sys.argv[3:]]
by_bytes = loaded.signatures["serving_default"](images=tf.constant(images))
by_pixels = loaded.signatures["pixels"](pixels=tf.constant(np.load(sys.argv[2])))
print(json.dumps({name: {k: v.numpy().tolist() for k, v in out.items()}
                  for name, out in (("bytes", by_bytes), ("pixels", by_pixels))}))
"""


def _test_images(vol: Volume) -> list[Path]:
    return sorted((vol.subsets / "test").rglob("*.jpg"))


def served(version: Path, pixels: np.ndarray, images: list[Path], tmp_path: Path) -> dict:
    np.save(tmp_path / "pixels.npy", pixels)
    script = tmp_path / "server_side.py"
    script.write_text(SERVER_SIDE)
    result = subprocess.run([sys.executable, str(script), str(version), str(tmp_path / "pixels.npy"),
                             *map(str, images)], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                            env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3", "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("model", list(ModelName))
def test_every_model_exports_both_signatures_and_they_agree_with_model_keras(every_model, model, tmp_path):
    """Reloaded by TensorFlow alone: encoded bytes (decoded and resized as training did) and float pixels
    give model.keras's p_dog within 1e-5, and label = p_dog > 0.5."""
    exported = export_run(vol=every_model, model=model.value, seed=1337)
    run = trained_run(every_model, model.value)
    images = _test_images(every_model)
    pixels = np.stack([decode_resize(str(p), run.image_size).numpy() for p in images])
    expected = np.asarray(load_trained(every_model.model_dir(model.value) / MODEL_FILE).predict(pixels, verbose=0))
    answers = served(exported.path, pixels, images, tmp_path)
    for how in ("bytes", "pixels"):
        p_dog = np.asarray(answers[how]["p_dog"])
        assert p_dog.shape == (len(images),) and np.allclose(p_dog, expected.ravel(), atol=1e-5), how
        assert answers[how]["label"] == [int(p > 0.5) for p in p_dog]
    record = json.loads((exported.path / RECORD).read_text())
    assert (record["model"], record["seed"], record["precision"], record["image_size"]) == \
        (model.value, 1337, "float32", run.image_size)
    assert record["split"] == run.split and record["weights"] and record["data_source"]


@pytest.mark.slow
def test_saved_model_cli_lists_both_signatures_and_a_rest_body_gets_the_same_answer(every_model, tmp_path):
    import base64

    exported = export_run(vol=every_model, model="scratch", seed=1337)
    cli = Path(sys.executable).parent / "saved_model_cli"
    shown = subprocess.run([str(cli), "show", "--dir", str(exported.path), "--all"], capture_output=True, text=True,
                           timeout=300, check=True).stdout
    size = trained_run(every_model, "scratch").image_size
    default = shown[shown.index("signature_def['serving_default']"):]
    assert "inputs['images'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)" in default
    pixels = shown[shown.index("signature_def['pixels']"):shown.index("signature_def['serving_default']")]
    assert f"inputs['pixels'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1, {size}, {size}, 3)" in pixels
    for block in (default, pixels):
        assert "outputs['p_dog'] tensor_info:\n        dtype: DT_FLOAT" in block
        assert "outputs['label'] tensor_info:\n        dtype: DT_INT64" in block
    import tensorflow as tf

    images = _test_images(every_model)[:3]
    request = rest.body([p.read_bytes() for p in images])
    assert json.loads(request)["instances"][0] == {"b64": base64.b64encode(images[0].read_bytes()).decode()}
    decoded = rest.images(request)
    assert decoded == [p.read_bytes() for p in images]
    signature = tf.saved_model.load(str(exported.path)).signatures["serving_default"]
    by_rest = signature(images=tf.constant(decoded))["p_dog"].numpy()
    direct = signature(images=tf.constant([p.read_bytes() for p in images]))["p_dog"].numpy()
    assert np.array_equal(by_rest, direct)
    assert rest.images({"inputs": {"images": [{"b64": base64.b64encode(b"x").decode()}]}}) == [b"x"]
    for bad in ('{"instances": []}', '{"instances": ["plain text"]}', "not json", '{"instances": [{"b64": "!!"}]}',
                '{"instances": [{"b64": "eA=="}], "inputs": []}'):
        with pytest.raises(Exception, match="request|image|b64|JSON"):
            rest.images(bad)


@pytest.fixture
def own(every_model, tmp_path) -> Volume:
    """A copy to retrain and break."""
    shutil.copytree(every_model.root, tmp_path / "volume", symlinks=True,
                    ignore=shutil.ignore_patterns("fine-tune", "feature-extraction*", "explained", "export"))
    return Volume(tmp_path / "volume")


@pytest.mark.slow
def test_a_version_is_written_once_and_a_retrained_model_gets_the_next(own):
    from shared.training.runs import TrainConfig
    from shared.training.train import train

    first = export_run(vol=own, model="scratch", seed=1337)
    again = export_run(vol=own, model="scratch", seed=1337)
    assert (again.version, again.new, again.path) == (first.version, False, first.path)  # unchanged: a no-op
    train(config=TrainConfig(data_dir=own.root, model=ModelName.scratch, epochs=1, image_size=80, batch_size=8,
                             force=True, learning_rate=1e-4))
    base = base_path(own, "scratch", 1337)
    assert versions(base) == [first.version]  # the retrained run kept its exports
    second = export_run(vol=own, model="scratch", seed=1337)
    assert second.new and second.version == first.version + 1 and versions(base) == [first.version, second.version]
    digest = json.loads((second.path / RECORD).read_text())["model_sha256"]
    assert digest != json.loads((first.path / RECORD).read_text())["model_sha256"]


@pytest.mark.slow
def test_a_full_disk_leaves_no_half_written_version(own, monkeypatch):
    real = export_module.archive

    def full(model, *, image_size):
        class Half:
            def write_out(self, path, verbose=False):
                real(model, image_size=image_size).write_out(path, verbose=verbose)
                (Path(path) / "variables" / "variables.data-00000-of-00001").write_bytes(b"half")
                raise OSError(errno.ENOSPC, "No space left on device")
        return Half()

    monkeypatch.setattr(export_module, "archive", full)
    with pytest.raises(RetryableError, match="full"):
        export_run(vol=own, model="scratch", seed=1337)
    assert versions(base_path(own, "scratch", 1337)) == []
    assert not [p for p in own.staging.iterdir() if p.name.startswith("export-")]


@pytest.mark.slow
def test_export_bad_input_gets_one_line_and_the_contract_code(own):
    assert "version" in jobs(own, "export", "--model", "scratch").stdout
    one_error(jobs(own, "export", "--model", "scratch", "--seed", "7"), 3)  # not trained
    one_error(jobs(own, "export", "--model", "fine-tune"), 3)  # not trained on this copy
    unknown = jobs(own, "export", "--model", "scratch_small")
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr


@pytest.mark.slow
def test_a_mixed_precision_run_is_exported_in_float32(own, tmp_path):
    from shared.training.runs import TrainConfig
    from shared.training.train import train

    train(config=TrainConfig(data_dir=own.root, model=ModelName.scratch, epochs=1, image_size=80, batch_size=8,
                             seed=5, precision="mixed_bfloat16"))
    exported = export_run(vol=own, model="scratch", seed=5)
    record = json.loads((exported.path / RECORD).read_text())
    assert (record["trained_precision"], record["precision"]) == ("mixed_bfloat16", "float32")
    images = _test_images(own)[:4]
    pixels = np.stack([decode_resize(str(p), 80).numpy() for p in images])
    answers = served(exported.path, pixels, images, tmp_path)
    trained = np.asarray(load_trained(own.model_dir("scratch", 5) / MODEL_FILE).predict(pixels, verbose=0)).ravel()
    assert np.allclose(answers["pixels"]["p_dog"], trained, atol=2e-2)  # bfloat16 there, float32 here
    mixed = load_trained(own.model_dir("scratch", 5) / MODEL_FILE)
    rebuilt = export_module.float32_model(mixed)
    assert rebuilt is not mixed and {layer.dtype_policy.name for layer in export_module._layers(mixed)} >= \
        {"mixed_bfloat16"} and {layer.dtype_policy.name for layer in export_module._layers(rebuilt)} == {"float32"}
    assert all(np.array_equal(a, b) for a, b in zip(mixed.get_weights(), rebuilt.get_weights(), strict=True))


@pytest.mark.slow
def test_onnx_where_the_converter_can_and_one_line_where_it_cannot(every_model, tmp_path):
    """scratch converts and onnxruntime agrees with model.keras within 1e-4 on the test images; a model with
    augmentation layers is refused in one line naming the upstream issue, and no file is kept."""
    import onnxruntime

    exported = export_run(vol=every_model, model="scratch", seed=1337, fmt="onnx")
    assert exported.path.parent == base_path(every_model, "scratch", 1337, "onnx")
    size = trained_run(every_model, "scratch").image_size
    images = _test_images(every_model)
    pixels = np.stack([decode_resize(str(p), size).numpy() for p in images]).astype("float32")
    session = onnxruntime.InferenceSession(str(exported.path / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: pixels})[0].ravel()
    expected = load_trained(every_model.model_dir("scratch") / MODEL_FILE).predict(pixels, verbose=0).ravel()
    assert np.allclose(got, expected, atol=1e-4)
    assert json.loads((exported.path / RECORD).read_text())["format"] == "onnx"
    refused = jobs(every_model, "export", "--model", "scratch-augmented", "--format", "onnx")
    error = one_error(refused, 3)
    assert "tensorflow-onnx#2395" in error and "nothing was kept" in error
    assert versions(base_path(every_model, "scratch-augmented", 1337, "onnx")) == []
    assert jobs(every_model, "export", "--model", "scratch", "--format", "tflite").returncode == 2
