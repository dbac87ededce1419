"""The export stage: a trained run as a SavedModel that TF Serving and KServe load, versioned.

models/<model>/seed-<S>/export/<model>/<version>/ is the layout TF Serving watches (the model's base path
is .../export/<model>; each version a folder named by a positive integer). A version is written once and
never changed: an unchanged model.keras is not exported again, a retrained one gets the next number
(train carries export/ over when it replaces the run's folder). Each version is written under a temporary
name on the volume and renamed into place whole, so a full disk leaves no half-written version.

Two signatures, built with Keras 3's own ExportArchive:
- serving_default: `images`, a batch of encoded JPEG or PNG bytes of any size, decoded and resized exactly
  as the data pipeline does (shared/data/pipeline.py's resize_decoded: decode_image, bilinear, float32);
- pixels: float pixels [batch, size, size, 3], 0-255, as model.keras takes them.
Both return p_dog (float32) and label (int64, 1 = dog), with augmentation and dropout inactive, in float32
even when the run trained in a mixed precision (the layers are rebuilt in float32 around its weights).
"""

from __future__ import annotations

import errno
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from shared.core.console import say
from shared.core.errors import PermanentError, RetryableError, UsageError, one_line
from shared.core.seeds import DEFAULT_SEED
from shared.reports.predict import load_run
from shared.training.catalog import SPECS, ModelName
from shared.training.runs import finished_seeds
from shared.volume.fsutil import clear_stale, ensure_free, read_cached, sha256_file, staged_dir
from shared.volume.layout import MODEL_FILE, Volume, run_key

EXPORT_VERSION = 1  # bump when what an export holds changes: unchanged models are then exported again
RECORD = "assets.extra/catsdogs.json"  # TF Serving's place for files beside a SavedModel
SIGNATURES = {"serving_default": "images", "pixels": "pixels"}


FORMATS = ("saved_model", "onnx")
ONNX_TOLERANCE = 1e-4
# Keras 3's augmentation layers keep random ops in the inference graph, which tf2onnx cannot convert.
ONNX_UPSTREAM = "onnx/tensorflow-onnx#2395, keras-team/keras#21346"


@dataclass(frozen=True)
class ExportConfig:
    data_dir: Path
    model: ModelName | None = None  # None: every trained model
    seed: int | None = None  # None: every trained seed
    format: str = "saved_model"  # or onnx: float pixels in, p_dog out, checked with onnxruntime


@dataclass(frozen=True)
class Exported:
    model: str
    seed: int
    path: Path  # the version's folder
    version: int
    new: bool


def base_path(vol: Volume, model: str, seed: int, fmt: str = "saved_model") -> Path:
    """What TF Serving's --model_base_path (and KServe's storageUri) point at; ONNX versions beside it."""
    return vol.model_dir(model, seed) / "export" / (model if fmt == "saved_model" else f"{model}-onnx")


def versions(base: Path) -> list[int]:
    found = []
    for entry in base.iterdir() if base.is_dir() else []:
        name = entry.name
        if name.isascii() and name.isdigit() and str(int(name)) == name and int(name) > 0 and entry.is_dir():
            found.append(int(name))
    return sorted(found)


def float32_model(model):
    """The model itself when it computes in float32; else the same layers rebuilt in float32 around its
    weights (a mixed policy keeps its variables in float32: the weights carry over exactly)."""
    return in_policy(model, "float32")


def in_policy(model, policy: str):
    """The model with every layer computing in `policy` (float32, mixed_bfloat16, mixed_float16), its last
    layer kept in float32 as the builders keep it (a half-precision sigmoid saturates): the same layers
    rebuilt around the same weights, or the model itself when it already computes so."""
    from tensorflow import keras

    def leaves(layer):  # what computes: a nested model's own policy is only its default
        return [leaf for inner in layer.layers for leaf in leaves(inner)] if hasattr(layer, "layers") else [layer]

    def computes_as_wanted(m) -> bool:  # an InputLayer computes nothing: its dtype is its input's
        return all(leaf.dtype_policy.name == ("float32" if layer is m.layers[-1] else policy)
                   for layer in m.layers for leaf in leaves(layer)
                   if not isinstance(leaf, keras.layers.InputLayer))

    if computes_as_wanted(model):
        return model

    def rewrite(config, target: str):
        if isinstance(config, dict):
            if config.get("class_name") == "DTypePolicy" and isinstance(config.get("config"), dict):
                return {**config, "config": {**config["config"], "name": target}}
            return {k: rewrite(v, target) for k, v in config.items()}
        if isinstance(config, list):
            return [rewrite(v, target) for v in config]
        return config

    config = model.get_config()
    entries = config["layers"]  # in the model's order: the output layer last
    config["layers"] = [rewrite(entry, "float32" if i == len(entries) - 1 else policy)
                        for i, entry in enumerate(entries)]
    from shared.training.precision import precision_policy

    with precision_policy(policy):  # layers whose configuration names no policy (ops, nested models) take it
        rebuilt = model.__class__.from_config(config)
    rebuilt.set_weights(model.get_weights())
    if not computes_as_wanted(rebuilt):
        found = ", ".join(f"{leaf.name}: {leaf.dtype_policy.name}"
                          for layer in rebuilt.layers for leaf in leaves(layer))
        raise PermanentError(f"cannot rebuild {model.name} in {policy} ({found})")
    return rebuilt


def _layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _layers(layer)


def archive(model, *, image_size: int):
    """The ExportArchive with both signatures (not yet written)."""
    import tensorflow as tf
    from tensorflow import keras

    from shared.data.pipeline import resize_decoded

    model = float32_model(model)
    out = keras.export.ExportArchive()
    out.track(model)

    def answer(pixels):
        p_dog = tf.reshape(tf.cast(model(pixels, training=False), tf.float32), [-1])
        return {"p_dog": p_dog, "label": tf.cast(p_dog > 0.5, tf.int64)}

    def from_bytes(images):
        pixels = tf.map_fn(lambda b: resize_decoded(b, image_size), images,
                           fn_output_signature=tf.TensorSpec((image_size, image_size, 3), tf.float32))
        return answer(pixels)

    out.add_endpoint(name="serving_default", fn=from_bytes,
                     input_signature=[tf.TensorSpec([None], tf.string, name=SIGNATURES["serving_default"])])
    out.add_endpoint(name="pixels", fn=answer, input_signature=[
        tf.TensorSpec([None, image_size, image_size, 3], tf.float32, name=SIGNATURES["pixels"])])
    return out


def write_onnx(keras_model, *, image_size: int, out: Path, name: str) -> None:
    """model.onnx in `out` (float pixels in, p_dog out), kept only if onnxruntime computes what model.keras
    does within ONNX_TOLERANCE; else a PermanentError in one line, and no file."""
    import numpy as np

    model = float32_model(keras_model)
    pixels = np.random.default_rng(0).uniform(0, 255, (4, image_size, image_size, 3)).astype("float32")
    expected = np.asarray(keras_model.predict(pixels, verbose=0), dtype=np.float32).ravel()  # also builds it
    try:
        import onnxruntime

        model.export(str(out / "model.onnx"), format="onnx", verbose=False)
        session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
        (feed,) = session.get_inputs()
        got = np.asarray(session.run(None, {feed.name: pixels})[0], dtype=np.float32).ravel()
    except ImportError as e:
        raise PermanentError(f"--format onnx needs tf2onnx and onnxruntime ({e.name} is missing): "
                             "pip install 'catsdogs[onnx]' (make venv installs them)") from None
    except Exception as e:  # a conversion or a graph onnxruntime refuses: this stack cannot do this model
        raise PermanentError(f"cannot export {name} to ONNX with this Keras and tf2onnx ({type(e).__name__}: "
                             f"{one_line(e, limit=160)}); nothing was kept (known upstream: {ONNX_UPSTREAM})") from None
    worst = float(np.max(np.abs(got - expected)))
    if not worst <= ONNX_TOLERANCE:
        raise PermanentError(f"the ONNX conversion of {name} computes other numbers than model.keras "
                             f"(off by {worst:.2g}, more than {ONNX_TOLERANCE:g}): not kept")


def export_run(*, vol: Volume, model: str, seed: int, fmt: str = "saved_model") -> Exported:
    """Export one run, or find its current export; one exporter per run, its model not replaced meanwhile."""
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
    key = run_key(model, seed)
    with vol.lock(f"export-{key}", what=f"exporting {key}", wait_s=None):
        run, keras_model = load_run(vol, model, seed, doing="exporting")
        with vol.reading(f"model-{key}", what=f"exporting {key}"):
            digest = sha256_file(vol.model_dir(model, seed) / MODEL_FILE)
            base = base_path(vol, model, seed, fmt)
            done = versions(base)
            if done:
                record = read_cached(base / str(done[-1]) / RECORD) or {}
                if record.get("model_sha256") == digest and record.get("export_version") == EXPORT_VERSION:
                    return Exported(model, seed, base / str(done[-1]), done[-1], new=False)
            version = (done[-1] if done else 0) + 1
            config = read_cached(vol.model_dir(model, seed) / "config.json") or {}
            clear_stale(vol.staging, f"export-{key}")  # a killed export's, under this run's lock
            # about model.keras's size again (float32 weights, the graph); refused before anything is written
            ensure_free(vol.root, 2 * (vol.model_dir(model, seed) / MODEL_FILE).stat().st_size,
                        what=f"exporting {key}")
            with staged_dir(vol.staging, f"export-{key}") as tmp:
                try:
                    if fmt == "onnx":
                        (tmp / "saved").mkdir()
                        write_onnx(keras_model, image_size=run.image_size, out=tmp / "saved", name=key)
                    else:
                        archive(keras_model, image_size=run.image_size).write_out(str(tmp / "saved"), verbose=False)
                    (tmp / "saved" / RECORD).parent.mkdir(parents=True, exist_ok=True)
                    (tmp / "saved" / RECORD).write_text(json.dumps({
                        "model": model, "seed": seed, "version": version, "model_sha256": digest,
                        "export_version": EXPORT_VERSION, "image_size": run.image_size,
                        "trained_precision": run.precision, "precision": "float32", "weights": config.get("weights"),
                        "split": run.split, "data_source": config.get("data_source"),
                        "format": fmt,
                        "signatures": {name: {"input": arg, "outputs": ["p_dog", "label"]}
                                       for name, arg in SIGNATURES.items()} if fmt == "saved_model" else
                        {"model.onnx": {"input": "float pixels [batch, size, size, 3], 0-255", "outputs": ["p_dog"]}},
                        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    }, indent=2, sort_keys=True) + "\n")
                except OSError as e:
                    if e.errno in (errno.ENOSPC, errno.EDQUOT):
                        raise RetryableError(f"the volume is full while exporting {key}: nothing was kept; free "
                                             "some space and export again") from None
                    raise
                base.mkdir(parents=True, exist_ok=True)
                os.rename(tmp / "saved", base / str(version))  # the whole version, or none of it
    say(f"exported {key}: version {version} at {base / str(version)}"
        + (f" (in float32; it trained in {run.precision})" if run.precision != "float32" else ""))
    return Exported(model, seed, base / str(version), version, new=True)


def export(*, config: ExportConfig) -> list[Exported]:
    """Every trained run asked for; a model named but not trained is a PermanentError (exit 3)."""
    vol = Volume(config.data_dir)
    names = [ModelName(config.model).value] if config.model else [s.name.value for s in SPECS.values()]
    runs = []
    for name in names:
        seeds = [config.seed] if config.seed is not None else finished_seeds(vol, name)
        if config.model and not seeds:
            seeds = [DEFAULT_SEED]  # not trained: load_run says so, with the command that trains it
        runs += [(name, seed) for seed in seeds]
    if not runs:
        raise PermanentError(f"no trained model to export on the volume at {vol.root}: train one first")
    out = []
    for name, seed in runs:
        result = export_run(vol=vol, model=name, seed=seed, fmt=config.format)
        if not result.new:
            say(f"{run_key(name, seed)} is already exported, unchanged: {result.path}")
        out.append(result)
    return out
