"""The serve stage: an exported version behind KServe's Python model server, speaking TF Serving's REST API.

`POST /v1/models/<model>:predict` with `{"instances": [{"b64": "..."}]}` (KServe's V1 protocol is TF
Serving's REST format) answers `{"predictions": [{"p_dog": ..., "label": ...}]}`, as TF Serving would from
the same SavedModel's serving_default signature. This is the server a user without TF Serving's binary
runs on a laptop; on a cluster, k8s/serving/ serves the same export folder with TF Serving or KServe.
"""

from __future__ import annotations

from pathlib import Path

from shared.core.errors import PermanentError, UsageError
from shared.serving import rest
from shared.serving.export import base_path, versions
from shared.volume.layout import Volume, run_key


def latest_version(vol: Volume, model: str, seed: int) -> Path:
    base = base_path(vol, model, seed)
    found = versions(base)
    if not found:
        raise PermanentError(f"{run_key(model, seed)} has no export at {base}: export it first: "
                             f"`catsdogs export --model {model} --seed {seed}`")
    return base / str(found[-1])


def model_class():
    """kserve.Model around a SavedModel's serving_default (kserve is imported only by this stage)."""
    import kserve
    import tensorflow as tf
    from kserve.errors import InvalidInput

    class ExportedModel(kserve.Model):
        def __init__(self, name: str, path: Path):
            super().__init__(name)
            self.path = path
            self.signature = None
            self.load()

        def load(self) -> bool:
            self.signature = tf.saved_model.load(str(self.path)).signatures["serving_default"]
            self.ready = True
            return self.ready

        def predict(self, payload, headers=None, response_headers=None):
            try:
                encoded = rest.images(payload)
                out = self.signature(images=tf.constant(encoded))
            except UsageError as e:
                raise InvalidInput(str(e)) from None
            except tf.errors.InvalidArgumentError:  # bytes that do not decode as an image
                raise InvalidInput("an image does not decode (JPEG, PNG, GIF or BMP expected)") from None
            return {"predictions": [{"p_dog": float(p), "label": int(label)}
                                    for p, label in zip(out["p_dog"].numpy(), out["label"].numpy(), strict=True)]}

    return ExportedModel


def serve(*, vol: Volume, model: str, seed: int, port: int) -> None:
    """Serve the run's latest exported version on `port` until terminated (SIGTERM: KServe drains)."""
    path = latest_version(vol, model, seed)
    try:
        import kserve
    except ImportError:
        raise PermanentError("`catsdogs serve` needs KServe's model server: pip install 'catsdogs[serve]' "
                             "(make venv installs it)") from None
    print(f"serving {run_key(model, seed)} version {path.name} from {path} at "
          f"http://localhost:{port}/v1/models/{model}:predict", flush=True)
    kserve.ModelServer(http_port=port, enable_grpc=False, enable_docs_url=False).start([model_class()(model, path)])
