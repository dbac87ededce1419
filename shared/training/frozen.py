"""Validation through a frozen prefix computed once.

When a model's first layers have no trainable weights (a frozen VGG16, or its blocks 1-4 when fine-tuning)
they compute the same thing on the validation images in every epoch: Keras validates with training=False,
where augmentation and dropout are the identity. Their output is computed once, kept (in memory when it
fits, else on the volume, keyed like the feature store), and each epoch runs only the rest of the network
on it. The cut is found from the model's graph, never from its name: a model whose first weighted layer
is trainable gets no cache, and a new model with a frozen prefix gets one.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from dataclasses import dataclass

import numpy as np
from tensorflow import keras

from shared.core.console import say
from shared.core.errors import PermanentError
from shared.core.hints import run_hint
from shared.data.pipeline import memory_allows, pipeline_options
from shared.training.features import checksums, store_problem, write_batches
from shared.volume.fsutil import clear_stale, ensure_free, remove, replace_dir, staged_dir, write_json
from shared.volume.layout import Volume


@dataclass(frozen=True)
class FrozenSplit:
    """model(x) == suffix(prefix(x)) at inference; suffix shares the model's layers, hence its weights."""

    prefix: list  # models applied in turn: images -> the activations at the cut
    suffix: object  # a compiled keras.Model: those activations -> the model's output
    cut: str  # where the prefix ends, e.g. "vgg16/block4_pool"
    frozen: list  # the prefix's weights, for the cache key
    parts: list  # the suffix as the models it applies in turn
    outer: object  # the cut's tensor in the outer graph, or where the last part starts when it is nested


def _nodes(model) -> list:
    """The graph's nodes, inputs first."""
    by_depth = model._nodes_by_depth
    return [node for depth in sorted(by_depth, reverse=True) for node in by_depth[depth]]


def _nested(op) -> bool:
    """A functional model inside the model (VGG16), whose own graph can be cut."""
    return isinstance(op, keras.Model) and hasattr(op, "_nodes_by_depth")


def _split(model) -> tuple[list, list, list, str, object] | None:
    """(prefix models, suffix models, frozen weights, cut, its outer tensor) of a functional model, or None
    when nothing weighted is frozen before its first trainable layer, or when the graph branches at the cut.
    The outer tensor is the cut's own, or the nested model's output where the cut is inside it."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        return None
    frozen = []
    for node in _nodes(model):
        op = node.operation  # a layer, or an op such as preprocess_input's (no weights at all)
        if getattr(op, "trainable_weights", None):
            break
        frozen += list(getattr(op, "weights", None) or [])
    else:
        return None  # nothing trainable: nothing to train, nothing to cache
    if len(node.input_tensors) != 1:
        return None
    cut, (x, y) = node.input_tensors[0], (model.inputs[0], model.outputs[0])
    head = [] if cut is x else [keras.Model(x, cut)]
    inner = _split(op) if _nested(op) else None
    if inner is not None:
        inner_prefix, inner_suffix, inner_frozen, inner_cut, _ = inner
        tail = keras.Model(node.output_tensors[0], y)
        return [*head, *inner_prefix], [*inner_suffix, tail], frozen + inner_frozen, f"{op.name}/{inner_cut}", \
            node.output_tensors[0]
    if not frozen:
        return None
    return head, [keras.Model(cut, y)], frozen, cut._keras_history.operation.name, cut


def split_frozen_prefix(model) -> FrozenSplit | None:
    """The model cut after its frozen prefix, or None. Build it in the strategy's scope the model was built in."""
    try:
        found = _split(model)
    except ValueError:  # Keras: a graph that does not separate at the cut ("graph disconnected")
        return None
    config = model.get_compile_config() or {}
    if found is None or config.get("loss") is None:  # nothing to cut, or nothing to validate with
        return None
    prefix, suffix_parts, frozen, cut, outer = found
    x = inputs = keras.Input(shape=tuple(prefix[-1].outputs[0].shape[1:]))  # None where VGG16 left it open
    for part in suffix_parts:
        x = part(x)
    suffix = keras.Model(inputs, x, name=f"{model.name}_after_{cut.replace('/', '_')}")
    suffix.compile(loss=config["loss"], metrics=config["metrics"], jit_compile=False)
    return FrozenSplit(prefix=prefix, suffix=suffix, cut=cut, frozen=frozen, parts=suffix_parts, outer=outer)


def successor_splits(model, freezers: list) -> list[FrozenSplit]:
    """The cuts of the models that will start from this one (fine-tune from feature-extraction-augmented),
    found on this model: each freezer sets the trainable flags that model will have; they are put back."""
    layers = list(model._flatten_layers(include_self=True, recursive=True))
    flags = [layer.trainable for layer in layers]
    found = []
    try:
        for freeze in freezers:
            freeze(model)
            found.append(split_frozen_prefix(model))
            for layer, flag in zip(layers, flags, strict=True):  # parents first: a child keeps its own flag
                layer.trainable = flag
    finally:
        for layer, flag in zip(layers, flags, strict=True):
            layer.trainable = flag
    return [s for s in found if s is not None]


def bridge(own: FrozenSplit, inner: FrozenSplit) -> list | None:
    """Models that take `inner`'s cut activations to `own`'s, when `inner` cuts inside the frozen network
    that `own` runs whole (block 4 inside VGG16); else None."""
    if "/" not in inner.cut or inner.cut == own.cut:
        return None
    try:
        return [*inner.parts[:-1], keras.Model(inner.outer, own.outer)]
    except ValueError:  # own's cut is not after the nested model in the graph
        return None


# Activations a model computed for a model that starts from it, until that one takes them (one process:
# train --with-prerequisite, a Kubernetes chain).
_HANDED_ON: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def cache_key(split: FrozenSplit, *, image_size: int, split_fingerprint: str, precision: str) -> str:
    """Changes whenever the cached activations could: the prefix's weights, its cut, the images, the policy."""
    h = hashlib.sha256()
    for w in split.frozen:
        h.update(np.ascontiguousarray(keras.ops.convert_to_numpy(w)).tobytes())
    blob = json.dumps({"cut": split.cut, "weights": h.hexdigest(), "size": image_size, "split": split_fingerprint,
                       "precision": precision}, sort_keys=True)
    return "frozen-" + hashlib.sha256(blob.encode()).hexdigest()[:16]


def _composed(parts: list):
    """One compiled function applying `parts` in turn at inference."""
    import tensorflow as tf

    def run(x):
        for part in parts:
            x = part(x, training=False)
        return keras.ops.cast(x, "float32")  # bfloat16 -> float32 is exact: the suffix casts it back

    return tf.function(run)


def validation_activations(*, split: FrozenSplit, data, n: int, volume: Volume, key: str, memory_only: bool = False
                           ) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(activations, labels, where): the prefix run once over `data` (n images, in order). None, with
    `memory_only`, when they would not fit in memory."""
    run = _composed(split.prefix)
    batches = ((run(x).numpy(), y.numpy().reshape(-1)) for x, y in data)
    first = next(batches, None)
    if first is None:
        raise PermanentError("the validation subset is empty: redo the split: "
                             f"{run_hint('split --force', 'make split FORCE=1')}")
    shape = first[0].shape[1:]
    batches = itertools.chain([first], batches)
    if memory_allows(n * int(np.prod(shape)) * 4):
        out, labels = np.empty((n, *shape), dtype=np.float32), np.empty((n,), dtype=np.float32)
        at = 0
        for batch, y in batches:
            out[at:at + len(batch)], labels[at:at + len(batch)] = batch, y
            at += len(batch)
        return out, labels, "memory"
    if memory_only:
        return None
    store = volume.features / key
    with volume.lock(f"features-{key}", what="computing these activations", wait_s=None):
        if store_problem(store, ("validation",)) is not None:
            remove(store)  # absent, or garbled by a kill: computed again
            clear_stale(volume.staging, key)
            ensure_free(volume.root, n * int(np.prod(shape)) * 4, what="the frozen prefix's validation activations")
            with staged_dir(volume.staging, key) as tmp:
                labels, _ = write_batches(tmp / "validation.npy", batches, n=n,
                                          description=f"activations at {split.cut}")
                np.save(tmp / "validation.labels.npy", labels)
                write_json(tmp / "meta.json", {"key": key, "cut": split.cut, "shapes": {"validation": [n, *shape]},
                                               "files": checksums(tmp, ("validation",))})
                replace_dir(tmp, store)
    return np.load(store / "validation.npy", mmap_mode="r"), np.load(store / "validation.labels.npy"), str(store)


class ValidationClock(keras.callbacks.Callback):
    """Seconds of the last validation pass, Keras's own or the cached one."""

    seconds: float | None = None

    def on_test_begin(self, logs=None):
        self._start = time.perf_counter()

    def on_test_end(self, logs=None):
        self.seconds = time.perf_counter() - self._start


class CachedValidation(keras.callbacks.Callback):
    """Keras's validation step, on the cached activations: val_* logs as fit would write them.

    List it first: the callbacks after it (checkpoint, state, TensorBoard, the progress line) read them.
    """

    def __init__(self, *, split: FrozenSplit, x: np.ndarray, y: np.ndarray, batch_size: int, clock: ValidationClock):
        super().__init__()
        self.split, self.clock = split, clock
        self.data = _batches(x, y, batch_size)

    def on_epoch_end(self, epoch, logs=None):
        results = self.split.suffix.evaluate(self.data, verbose=0, return_dict=True, callbacks=[self.clock])
        if logs is not None:
            logs.update({f"val_{k}": float(v) for k, v in results.items()})


def _batches(x: np.ndarray, y: np.ndarray, batch_size: int):
    """Batches in order, read slice by slice (a memory-mapped array stays on disk), without autotuning."""
    import tensorflow as tf

    def gen():
        for at in range(0, len(x), batch_size):
            yield np.asarray(x[at:at + batch_size]), y[at:at + batch_size].reshape(-1, 1)

    signature = (tf.TensorSpec((None, *x.shape[1:]), tf.float32), tf.TensorSpec((None, 1), tf.float32))
    data = tf.data.Dataset.from_generator(gen, output_signature=signature)
    # A known length: Keras would otherwise read past the end once and warn that the input ran out.
    data = data.apply(tf.data.experimental.assert_cardinality(-(-len(x) // batch_size)))
    return data.prefetch(2).with_options(pipeline_options())


def _computed(split: FrozenSplit, successors: list[FrozenSplit], *, keyed, data, n: int, batch_size: int,
              volume: Volume) -> tuple[np.ndarray, np.ndarray, str]:
    """The prefix's activations. Where a model that starts from this one cuts inside this prefix (fine-tune
    after block 4 of the VGG16 this model runs whole), one pass yields both: up to that cut, kept for it,
    then from there to this cut. Never computed twice."""
    for inner in successors:
        parts = bridge(split, inner)
        found = parts and validation_activations(split=inner, data=data, n=n, volume=volume, key=keyed(inner),
                                                 memory_only=True)
        if not found:
            continue
        xi, yi, _ = found
        _HANDED_ON[keyed(inner)] = (xi, yi)
        rest = _composed(parts)
        x = np.concatenate([rest(xi[at:at + batch_size]).numpy() for at in range(0, n, batch_size)])
        return x, yi, "memory"
    return validation_activations(split=split, data=data, n=n, volume=volume, key=keyed(split))


def plan_validation(*, model, val_data, n: int, batch_size: int, volume: Volume, image_size: int,
                    split_fingerprint: str, precision: str, enabled: bool, successors=()):
    """(validation_data for fit, callbacks to list first, a description for config.json)."""
    clock = ValidationClock()
    split = split_frozen_prefix(model) if enabled else None
    if split is None:
        return val_data, [clock], {"frozen_prefix": None, "cache": None}
    def keyed(s: FrozenSplit) -> str:
        return cache_key(s, image_size=image_size, split_fingerprint=split_fingerprint, precision=precision)

    start, key = time.perf_counter(), keyed(split)
    handed_on = key in _HANDED_ON  # computed by the model this one starts from, in this process
    if handed_on:
        (x, y), where = _HANDED_ON.pop(key), "memory"
    else:
        x, y, where = _computed(split, successor_splits(model, list(successors)), keyed=keyed, data=val_data, n=n,
                                batch_size=batch_size, volume=volume)
    by = " by the model it starts from" if handed_on else ""
    say(f"validation: {split.cut} is frozen; its output on the {len(x)} validation images computed once{by} "
        f"({time.perf_counter() - start:.1f} s, kept in {where}); each epoch runs the layers after it")
    callback = CachedValidation(split=split, x=x, y=y, batch_size=batch_size, clock=clock)
    return None, [callback, clock], {"frozen_prefix": split.cut, "cache": where}

