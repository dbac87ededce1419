"""Which dtype policy a run uses, and Keras's global policy set in one place and always restored.

`auto` picks what the hardware runs natively: mixed_bfloat16 on a CPU with AVX512_BF16 or AMX and on
GPUs of compute capability 8.0 or more, mixed_float16 on older GPUs, float32 elsewhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from shared.core.console import say

AUTO = "auto"
PRECISIONS = (AUTO, "float32", "mixed_float16", "mixed_bfloat16")
BF16_CPU_FLAGS = {"avx512_bf16", "amx_bf16"}
FP16_CPU_FLAGS = {"avx512_fp16", "amx_fp16"}


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags as Linux lists them (empty where there is no /proc/cpuinfo)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def gpu_capabilities() -> list[tuple[int, int]]:
    """The compute capability of each GPU TensorFlow sees."""
    import tensorflow as tf

    out = []
    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        out.append(tuple(capability) if capability else (0, 0))
    return out


def native(precision: str, *, gpus: list[tuple[int, int]], flags: set[str]) -> bool:
    """Whether the hardware computes in this precision natively (else a mixed policy only emulates it)."""
    if precision == "float32":
        return True
    if gpus:
        return min(gpus) >= ((8, 0) if precision == "mixed_bfloat16" else (7, 0))
    return bool(flags & (BF16_CPU_FLAGS if precision == "mixed_bfloat16" else FP16_CPU_FLAGS))


def choose(*, gpus: list[tuple[int, int]], flags: set[str]) -> str:
    if gpus:
        return "mixed_bfloat16" if min(gpus) >= (8, 0) else "mixed_float16"
    return "mixed_bfloat16" if flags & BF16_CPU_FLAGS else "float32"


def resolve_precision(asked: str, *, gpus: list[tuple[int, int]] | None = None,
                      flags: set[str] | None = None) -> str:
    """The policy a run will use: `auto` resolved for this hardware; a warning for an emulated one."""
    gpus = gpu_capabilities() if gpus is None else gpus
    flags = cpu_flags() if flags is None else flags
    if asked == AUTO:
        return choose(gpus=gpus, flags=flags)
    if not native(asked, gpus=gpus, flags=flags):
        where = f"GPUs of compute capability {', '.join(f'{a}.{b}' for a, b in gpus)}" if gpus else "this CPU"
        say(f"warning: {asked} is not native on {where}: it will run, slower than float32 ("
            f"--precision auto picks {choose(gpus=gpus, flags=flags)} here)")
    return asked


@contextlib.contextmanager
def precision_policy(name: str) -> Iterator[None]:
    """Layers built inside take policy `name` (the builders pin the output layer to float32)."""
    from tensorflow import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
