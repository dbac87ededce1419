"""CUDA and cuDNN: what TensorFlow was built against, what is installed, and what the driver sees.

`python -m shared.training.cuda check` is the image build's check: it fails when the cuDNN major version
installed differs from the one TensorFlow was built with (no GPU needed to tell).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

# pip's CUDA libraries, as tensorflow[and-cuda] installs them
PIP_LIBRARIES = {"cudnn": "nvidia-cudnn-cu12", "cuda runtime": "nvidia-cuda-runtime-cu12",
                 "cublas": "nvidia-cublas-cu12"}
SYSTEM_LIBRARIES = {"cudnn": "libcudnn.so", "cuda runtime": "libcudart.so"}


def build_info() -> dict:
    import tensorflow as tf

    info = dict(tf.sysconfig.get_build_info())
    return {"tensorflow": tf.__version__, "cuda_build": bool(info.get("is_cuda_build")),
            "cuda_version": info.get("cuda_version"), "cudnn_version": info.get("cudnn_version")}


def pip_libraries() -> dict[str, str]:
    out = {}
    for name, package in PIP_LIBRARIES.items():
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(package)
    return out


def system_libraries(ldconfig_output: str | None = None) -> dict[str, str]:
    """The highest soname version of each library the dynamic linker knows, e.g. {"cudnn": "8"}."""
    if ldconfig_output is None:
        ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
        try:
            ldconfig_output = subprocess.run([ldconfig, "-p"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            return {}
    out = {}
    for name, lib in SYSTEM_LIBRARIES.items():
        versions = re.findall(rf"\b{re.escape(lib)}\.(\d+(?:\.\d+)*)\b", ldconfig_output)
        if versions:
            out[name] = max(versions, key=lambda v: tuple(int(x) for x in v.split(".")))
    return out


def major(version: str | None) -> int | None:
    match = re.match(r"\s*(\d+)", str(version or ""))
    return int(match.group(1)) if match else None


def cudnn_mismatch(*, built: str | None, installed: dict[str, str]) -> str | None:
    """Why TensorFlow cannot load the cuDNN found, or None when the major versions agree (or nothing to say)."""
    want = major(built)
    if want is None:
        return None
    found = installed.get("cudnn")
    if found is None:
        return f"TensorFlow was built with cuDNN {built}, and no cuDNN is installed"
    if major(found) != want:
        return f"TensorFlow was built with cuDNN {built}, but cuDNN {found} is installed"
    return None


def installed_cudnn() -> dict[str, str]:
    """pip's cuDNN when there is one (TensorFlow loads it first), else the system's."""
    return {**system_libraries(), **pip_libraries()}


def driver_gpus(proc: Path = Path("/proc/driver/nvidia/gpus")) -> list[str]:
    """The GPUs the NVIDIA driver sees, whatever TensorFlow makes of them."""
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20).stdout
            found = [line.strip() for line in out.splitlines() if line.startswith("GPU ")]
            if found:
                return found
        except (OSError, subprocess.TimeoutExpired):
            pass
    return sorted(p.name for p in proc.iterdir()) if proc.is_dir() else []


def tensorflow_gpus() -> list[dict]:
    """Each GPU TensorFlow can use: its name and compute capability."""
    import tensorflow as tf

    out = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        capability = details.get("compute_capability")
        out.append({"device": gpu.name, "name": details.get("device_name"),
                    "compute_capability": ".".join(map(str, capability)) if capability else None})
    return out


def check() -> int:
    """The image build's check: the installed cuDNN's major version must be the one TensorFlow needs."""
    info = build_info()
    installed = installed_cudnn()
    print(f"tensorflow {info['tensorflow']}: built with CUDA {info['cuda_version']}, cuDNN {info['cudnn_version']}; "
          f"installed: {', '.join(f'{k} {v}' for k, v in sorted(installed.items())) or 'no CUDA libraries'}")
    if not info["cuda_build"]:
        print("not a CUDA build of TensorFlow: nothing to check")
        return 0
    problem = cudnn_mismatch(built=info["cudnn_version"], installed=installed)
    if problem:
        print(f"error: {problem}: TensorFlow would not see the GPU", file=sys.stderr)
        return 1
    print("cuDNN matches: TensorFlow can use the GPU")
    return 0


if __name__ == "__main__":
    sys.exit(check() if sys.argv[1:] == ["check"] else 2)
