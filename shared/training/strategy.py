"""Where a model trains: one device, or every visible GPU of the node with tf.distribute.MirroredStrategy.

The batch size stays the global one (the seed's 32, split across replicas), so the arithmetic is the
book's whatever the number of GPUs. Several hosts are out of scope: Keras 3 does not support
MultiWorkerMirroredStrategy (keras-team/keras#20585); its route is the JAX backend and keras.distribution.
"""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass

from shared.core.errors import UsageError
from shared.core.numbers import parse_number

STRATEGIES = ("auto", "single", "mirrored")
# Splits the CPU into N logical devices, where there is no GPU: mirrored training on a laptop or in a
# test, the same code path as on a node with N GPUs (only the speed differs).
LOGICAL_CPUS_ENV = "CATSDOGS_LOGICAL_CPUS"


@dataclass(frozen=True)
class Placement:
    strategy: object  # a tf.distribute.Strategy
    name: str  # single | mirrored
    replicas: int


def logical_cpus() -> None:
    """Apply CATSDOGS_LOGICAL_CPUS (before TensorFlow initialises its devices)."""
    import tensorflow as tf

    text = os.environ.get(LOGICAL_CPUS_ENV, "").strip()  # checked by the stage before it starts
    count = int(parse_number(text, name=LOGICAL_CPUS_ENV, low=0)) if text else 0
    cpus = tf.config.list_physical_devices("CPU")
    if count > 1 and not tf.config.list_physical_devices("GPU"):
        with contextlib.suppress(RuntimeError):  # devices already initialised in this process: keep them
            tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * count)


def place(name: str) -> Placement:
    """The strategy for --strategy `name`: auto is mirrored over all GPUs when there are several."""
    import tensorflow as tf

    if name not in STRATEGIES:
        raise UsageError(f"--strategy {name}: expected one of {', '.join(STRATEGIES)}")
    logical_cpus()
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if name == "single" or (name == "auto" and len(gpus) < 2):
        return Placement(tf.distribute.get_strategy(), "single", 1)
    strategy = _mirrored(tuple(gpus or [d.name for d in tf.config.list_logical_devices("CPU")]))
    return Placement(strategy, "mirrored", strategy.num_replicas_in_sync)


@functools.cache
def _mirrored(devices: tuple[str, ...]):
    """One MirroredStrategy per process and device set: a second one over the same devices reuses the
    collective ops' instance keys, and the next model's all-reduce then meets the last one's shapes."""
    import tensorflow as tf

    return tf.distribute.MirroredStrategy(devices=list(devices))


def device_name(placement: Placement) -> str:
    """Where a run computes, for its cost: "NVIDIA H100 80GB HBM3 x 2", or the CPU's model and cores."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = [tf.config.experimental.get_device_details(g).get("device_name", "GPU") for g in gpus]
        used = names[:placement.replicas] if placement.replicas > 1 else names[:1]
        return f"{used[0]} x {len(used)}"
    cpu = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    return f"{cpu} ({len(os.sched_getaffinity(0))} cores)"
