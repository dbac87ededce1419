"""GPUs for real, tested without one: precision choice, CUDA checks, doctor, and MirroredStrategy on two
logical CPU devices (the code path of a node with two GPUs)."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from jobs.__main__ import app
from shared.data.split import SplitConfig, split
from shared.training import cuda
from shared.training.catalog import spec
from shared.training.precision import choose, cpu_flags, native, resolve_precision
from shared.volume.fsutil import read_json
from shared.volume.layout import Volume
from tests.helpers import kill_after_first_epoch

runner = CliRunner()


@pytest.mark.parametrize("gpus, flags, expected", [
    ([(9, 0)], set(), "mixed_bfloat16"),  # H100/H200
    ([(8, 0), (8, 6)], set(), "mixed_bfloat16"),  # A100, A10
    ([(7, 5)], {"avx512_bf16"}, "mixed_float16"),  # T4: the GPU decides, not the host's CPU
    ([(8, 0), (7, 0)], set(), "mixed_float16"),  # the oldest GPU of the node
    ([], {"avx512f", "avx512_bf16"}, "mixed_bfloat16"),  # AMD EPYC (Zen 4), Intel Cooper Lake
    ([], {"amx_bf16", "amx_tile"}, "mixed_bfloat16"),  # Intel Sapphire Rapids
    ([], {"avx2", "avx512f"}, "float32"),
    ([], set(), "float32"),
])
def test_auto_picks_what_the_hardware_runs_natively(gpus, flags, expected):
    assert choose(gpus=gpus, flags=flags) == expected
    assert resolve_precision("auto", gpus=gpus, flags=flags) == expected
    assert native(expected, gpus=gpus, flags=flags)


def test_a_mixed_policy_without_native_support_warns(capsys):
    assert resolve_precision("mixed_bfloat16", gpus=[], flags={"avx2"}) == "mixed_bfloat16"
    assert "not native on this CPU" in capsys.readouterr().out
    assert resolve_precision("mixed_float16", gpus=[(7, 5)], flags=set()) == "mixed_float16"
    assert capsys.readouterr().out == ""
    resolve_precision("mixed_bfloat16", gpus=[(7, 5)], flags=set())
    assert "compute capability 7.5" in capsys.readouterr().out


def test_cpu_flags_from_cpuinfo(tmp_path):
    (tmp_path / "cpuinfo").write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\n")
    assert cpu_flags(tmp_path / "cpuinfo") == {"fpu", "avx2", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") == set()


@pytest.mark.parametrize("built, installed, problem", [
    ("9", {"cudnn": "9.3.0.75"}, None),
    ("9", {"cudnn": "9"}, None),
    ("9", {"cudnn": "8.9.6"}, "built with cuDNN 9, but cuDNN 8.9.6 is installed"),
    ("9", {"cuda runtime": "12.5"}, "no cuDNN is installed"),
    ("8", {"cudnn": "9.1"}, "but cuDNN 9.1 is installed"),
    (None, {}, None),  # not a CUDA build: nothing to compare
])
def test_the_image_build_check_compares_cudnn_major_versions(built, installed, problem):
    found = cuda.cudnn_mismatch(built=built, installed=installed)
    assert (found is None) if problem is None else (problem in found)


def test_system_libraries_from_ldconfig():
    listing = ("\tlibcudnn.so.8 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcudnn.so.8\n"
               "\tlibcudnn.so.9 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcudnn.so.9\n"
               "\tlibcudart.so.12 (libc6,x86-64) => /usr/local/cuda/lib64/libcudart.so.12\n")
    assert cuda.system_libraries(listing) == {"cudnn": "9", "cuda runtime": "12"}
    assert cuda.system_libraries("") == {}


def test_the_build_check_fails_on_the_wrong_cudnn(monkeypatch, capsys):
    monkeypatch.setattr(cuda, "build_info", lambda: {"tensorflow": "2.21.0", "cuda_build": True,
                                                     "cuda_version": "12.5.1", "cudnn_version": "9"})
    monkeypatch.setattr(cuda, "installed_cudnn", lambda: {"cudnn": "8.9.6"})
    assert cuda.check() == 1
    assert "cuDNN 8.9.6 is installed" in capsys.readouterr().err
    monkeypatch.setattr(cuda, "installed_cudnn", lambda: {"cudnn": "9.3.0.75"})
    assert cuda.check() == 0


def test_doctor_exits_3_when_the_driver_sees_a_gpu_tensorflow_cannot_use(tmp_path, monkeypatch):
    monkeypatch.setattr(cuda, "driver_gpus", lambda: ["GPU 0: NVIDIA H200 (UUID: GPU-1)"])
    monkeypatch.setattr(cuda, "installed_cudnn", lambda: {"cudnn": "8.9.6"})
    result = runner.invoke(app, ["doctor", "--data-dir", str(tmp_path), "--json"])
    assert result.exit_code == 3
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: the driver sees 1 GPU(s) but TensorFlow none: TensorFlow was built with "
                                    "cuDNN 9, but cuDNN 8.9.6 is installed")
    report = json.loads(result.stdout)
    assert report["driver_gpus"] and report["gpus"] == [] and report["cudnn_version"] == "9"
    monkeypatch.setattr(cuda, "driver_gpus", lambda: [])
    assert runner.invoke(app, ["doctor", "--data-dir", str(tmp_path)]).exit_code == 0  # no GPU: nothing wrong


@pytest.mark.slow
def test_features_in_bfloat16_are_stored_float32_and_keyed_apart(fetched):
    from shared.training.features import ensure_features, load_features

    split(config=SplitConfig(data_dir=fetched, train=4, validation=2, test=2))
    vol = Volume(fetched)
    manifest = read_json(vol.split_manifest)
    common = {"volume": vol, "split_manifest": manifest, "weights": "none", "seed": 3, "image_size": 32,
              "batch_size": 4}
    f32 = ensure_features(**common)
    bf16 = ensure_features(**common, precision="mixed_bfloat16")
    assert f32 != bf16 and read_json(bf16 / "meta.json")["precision"] == "mixed_bfloat16"
    (x32, y32), (x16, y16) = load_features(f32, "train"), load_features(bf16, "train")
    assert x32.dtype == x16.dtype == np.float32 and x16.shape == x32.shape
    np.testing.assert_array_equal(y32, y16)
    scale = float(np.abs(x32).max())
    np.testing.assert_allclose(x16, x32, atol=0.05 * scale)  # bfloat16 keeps 8 bits of mantissa
    assert not np.array_equal(x16, x32)  # computed in bfloat16 indeed


def _logical_env() -> dict:
    return {**os.environ, "CATSDOGS_LOGICAL_CPUS": "2", "PYTHONUNBUFFERED": "1"}


def _strategy_run(root, strategy: str) -> dict:
    result = subprocess.run([sys.executable, "-m", "tests.strategy_run", str(root), strategy], capture_output=True,
                            text=True, env=_logical_env(), timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))[7:])


@pytest.mark.slow
def test_every_model_trains_mirrored_on_two_devices_like_on_one(fetched, tmp_path):
    split(config=SplitConfig(data_dir=fetched, train=8, validation=4, test=4))
    other = tmp_path / "single"
    shutil.copytree(fetched, other)
    mirrored, single = _strategy_run(fetched, "mirrored"), _strategy_run(other, "single")
    # Same seed, same global batch, same batches in the same order: the replicas' gradients are summed
    # and Keras divides each replica's loss by the replica count, so the arithmetic is the single
    # device's but for the order of float additions (measured: 1e-7 relative).
    exact = mirrored.pop("same-order")
    assert exact["mirrored"] == pytest.approx(exact["single"], rel=1e-5)
    single.pop("same-order")
    for model, run in mirrored.items():
        assert run["config"] == {"name": "mirrored", "replicas": 2}, model
        assert run["history"]["replicas"] == [2] and run["history"]["strategy"] == ["mirrored"]
        assert single[model]["config"] == {"name": "single", "replicas": 1}
        # The frozen-prefix validation cache works under the strategy too (shared/training/frozen.py).
        frozen = spec(model).uses_vgg16 and not spec(model).on_features  # VGG16 inside the model, frozen
        assert (run["validation"]["cache"] == "memory") == frozen, model
        if run["full_val_loss"] is not None:  # feature-extraction validates its head on stored features
            assert run["history"]["val_loss"][0] == pytest.approx(run["full_val_loss"], rel=1e-5, abs=1e-6), model
        a, b = run["history"]["loss"][0], single[model]["history"]["loss"][0]
        # Through the training pipeline the distributed iterator starts the reshuffled epoch elsewhere, and
        # dropout and augmentation draw other numbers per replica: on 16 images one epoch's mean loss then
        # moves by sampling noise (measured 11% for scratch); 25% still catches a wrong gradient scale
        # (a loss not divided by the replica count doubles the steps).
        assert a == pytest.approx(b, rel=0.25), (model, a, b)


@pytest.mark.slow
def test_kill_and_resume_under_the_strategy(fetched):
    split(config=SplitConfig(data_dir=fetched, train=10, validation=5, test=5))
    args = [sys.executable, "-m", "jobs", "train", "--data-dir", str(fetched), "--model", "scratch", "--epochs",
            "6", "--image-size", "80", "--batch-size", "4", "--strategy", "mirrored"]
    state = Volume(fetched).staging / "train-scratch-seed-1337" / "state.json"
    proc = subprocess.Popen(args, env=_logical_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = kill_after_first_epoch(proc, state)
    assert 1 <= done < 6
    rerun = subprocess.run(args, capture_output=True, text=True, env=_logical_env(), timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-1500:]
    assert f"resuming scratch after epoch {done} of 6" in rerun.stdout and "on 2 replicas" in rerun.stdout
    history = read_json(Volume(fetched).model_dir("scratch") / "history.json")
    assert history["replicas"] == [2] * 6 and len(history["loss"]) == 6
