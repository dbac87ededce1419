"""Keras's global dtype policy, set in one place and always restored: the process may go on after a run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


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
