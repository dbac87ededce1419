"""What a node and a volume look like to the jobs: TensorFlow's build, GPUs, data, credentials' presence."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from shared.core.console import say
from shared.core.errors import PermanentError
from shared.training.cuda import cudnn_mismatch
from shared.training.precision import resolve_precision
from shared.volume.fsutil import free_bytes, no_follow
from shared.volume.layout import COMPLETE, Volume

VGG16_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
BAKED_WEIGHTS_ENV = "CATSDOGS_VGG16_WEIGHTS"


def visible_gpus() -> list[str]:
    import tensorflow as tf

    return [gpu.name for gpu in tf.config.list_physical_devices("GPU")]


def require_gpu() -> None:
    """Fail at once rather than train on the CPU for days."""
    if not visible_gpus():
        raise PermanentError("no GPU is visible to TensorFlow (--require-gpu / CATSDOGS_REQUIRE_GPU=1): "
                             "run `catsdogs doctor` on this node to see its CUDA/cuDNN build and devices")


def warn_if_gpus_unused() -> bool:
    """Say once, in our words, when the driver sees GPUs that TensorFlow cannot use (TensorFlow's own lines
    about it are in the native log): the run goes on, on the CPU. True when it warned."""
    from shared.training.cuda import driver_gpus

    seen = driver_gpus()
    if not seen or visible_gpus():
        return False
    say(f"warning: the driver sees {len(seen)} GPU(s) but TensorFlow none: training on the CPU (slow); "
        "`catsdogs doctor` says why, --require-gpu refuses instead")
    return True


def kaggle_credentials() -> dict[str, bool]:
    """Which kinds of Kaggle credentials are present; never their values."""
    config_dir = Path(os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle")
    return {
        "KAGGLE_USERNAME and KAGGLE_KEY": bool(os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY")),
        "KAGGLE_API_TOKEN": bool(os.environ.get("KAGGLE_API_TOKEN")),
        f"{config_dir / 'kaggle.json'}": (config_dir / "kaggle.json").is_file(),
        f"{Path.home() / '.kaggle' / 'access_token'}": (Path.home() / ".kaggle" / "access_token").is_file(),
    }


def vgg16_weights(vol: Volume) -> str | None:
    """Where ImageNet weights for VGG16 would be read from without a download, if anywhere."""
    baked = os.environ.get(BAKED_WEIGHTS_ENV)
    if baked and Path(baked).is_file():
        return baked
    keras_home = Path(os.environ.get("KERAS_HOME") or vol.keras_home)
    cached = keras_home / "models" / VGG16_FILE
    return str(cached) if cached.is_file() else None


def not_writable(vol: Volume) -> list[str]:
    """The volume's folders this process cannot write, KERAS_HOME's included: a volume another user made
    (Docker creates a missing bind-mount folder as root) or a folder copied from an image as root's."""
    home = Path(os.environ.get("KERAS_HOME") or vol.keras_home)
    while not home.exists() and home != home.parent:
        home = home.parent
    folders = [vol.root, vol.raw, vol.subsets, vol.features, vol.models, vol.reports, vol.mnist, vol.keras_home,
               vol.staging, vol.locks, home]
    return [str(p) for p in dict.fromkeys(folders)
            if p.is_dir() and not os.access(p, os.W_OK | os.X_OK, effective_ids=True)]


def volume_problem(report: dict) -> str | None:
    """What the running user cannot write, and the two ways to fix it, in one line."""
    denied = report["volume"]["not_writable"]
    if not denied:
        return None
    return (f"not writable by uid {os.getuid()}: {', '.join(denied)}. The image runs as uid 10001: give it the "
            "volume (`sudo chown -R 10001:10001 <the folder on the host>`), or run the container as the folder's "
            "owner (`docker run --user \"$(id -u):$(id -g)\" ...`)")


def volume_state(vol: Volume) -> dict:
    writable = False
    if vol.root.is_dir():
        probe = vol.root / f".doctor-{uuid.uuid4().hex}"
        try:
            with open(probe, "x", opener=no_follow) as f:  # a new name: exclusive, never through a link
                f.write("ok")
            probe.unlink()
            writable = True
        except OSError:
            pass
    models = sorted(f"{p.parent.name} ({p.name})" for p in vol.models.glob("*/seed-*") if (p / COMPLETE).exists())
    return {
        "path": str(vol.root.resolve()),
        "exists": vol.root.is_dir(),
        "writable": writable,
        "not_writable": not_writable(vol) if vol.root.is_dir() else [],
        "free_gib": round(free_bytes(vol.root) / (1 << 30), 1),
        "fetched": vol.raw_manifest.exists(),
        "split": vol.split_manifest.exists(),
        "trained_models": models,
        "report": (vol.reports / "summary.md").exists(),
    }


def gpu_problem(report: dict) -> str | None:
    """Why TensorFlow cannot use the GPUs the driver sees, in one line; None when it can, or there are none."""
    if not report["driver_gpus"] or report["gpus"]:
        return None
    why = cudnn_mismatch(built=report["cudnn_version"], installed=report["cuda_libraries"]) if \
        report["cuda_build"] else f"TensorFlow {report['tensorflow']} is not a CUDA build"
    return (f"the driver sees {len(report['driver_gpus'])} GPU(s) but TensorFlow none: "
            f"{why or 'TensorFlow could not initialise CUDA (its log: catsdogs doctor --verbose)'}; use the "
            "catsdogs image, or "
            f"pip install 'tensorflow[and-cuda]=={report['tensorflow']}'")


def diagnose(*, data_dir: Path) -> dict:
    import tensorflow as tf

    from shared.training.cuda import build_info, driver_gpus, installed_cudnn, tensorflow_gpus

    vol = Volume(data_dir)
    build = build_info()
    return {
        "tensorflow": build["tensorflow"],
        "keras": tf.keras.__version__ if hasattr(tf.keras, "__version__") else None,
        "cuda_build": build["cuda_build"],
        "cuda_version": build["cuda_version"],
        "cudnn_version": build["cudnn_version"],
        "cuda_libraries": installed_cudnn(),
        "driver_gpus": driver_gpus(),
        "gpus": tensorflow_gpus(),
        "precision_auto": resolve_precision("auto"),
        "volume": volume_state(vol),
        "keras_home": os.environ.get("KERAS_HOME") or str(vol.keras_home),
        "vgg16_imagenet_weights": vgg16_weights(vol),
        "kaggle_credentials": kaggle_credentials(),
    }
