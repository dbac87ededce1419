"""What the Kubernetes manifests are rendered with: the image, GPUs per pod, the cluster's storage, the models,
and any setting of the ConfigMap, each checked before anything is written.

A setting's value is taken as a literal string (the ConfigMap holds strings): it is never a pattern, never
substituted into text, and a value the jobs would refuse (a seed list, a model name, epochs) is refused here,
with the same parser the job uses.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.core.errors import UsageError
from shared.core.numbers import parse_number
from shared.core.seeds import parse_seeds
from shared.training.catalog import SPECS, parse_models
from shared.training.runs import MAX_EPOCHS

CLUSTERS = ("multi-node", "single-node")  # single-node: storage that offers only ReadWriteOnce (kind, k3s)
MAX_GPUS_PER_POD = 16
MAX_SHARDS = 10_000  # jobs/_options.py's bound of --shards


def epochs_keys() -> dict[str, int]:
    """The ConfigMap's per-model epochs keys, each with the seed's number for that model."""
    return {s.epochs_variable: s.epochs for s in SPECS.values()}


@dataclass(frozen=True)
class RenderSettings:
    image: str | None = None  # None: catsdogs:<the project's version>
    gpus_per_pod: int = 1  # 0: train on CPUs, with CPU-sized requests
    cluster: str = "multi-node"
    values: dict[str, str] = field(default_factory=dict)  # ConfigMap keys set beyond the template's defaults


def _whole(text: str, *, name: str, low: int, high: int) -> int:
    return int(parse_number(text, name=name, low=low, high=high))


def check_value(key: str, value: str) -> None:
    """Refuse what the jobs would refuse at run time, with their parsers; anything else is a literal string."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise UsageError(f"K8S_SET: {key}: control characters are not allowed in a value")
    if key == "CATSDOGS_SEEDS":
        parse_seeds(value, source=key)
    elif key in ("CATSDOGS_MODELS", "CATSDOGS_LEARNING_MODELS"):
        parse_models(value, source=key)
    elif key == "CATSDOGS_INFER_SHARDS":
        _whole(value, name=key, low=1, high=MAX_SHARDS)
    elif key in ("CATSDOGS_SERVE_MODEL", "CATSDOGS_INFER_MODEL"):
        chosen = parse_models(value, source=key)
        if chosen is None or len(chosen) != 1:
            raise UsageError(f"{key}={value}: expected one model of the catalog (the run to serve)")
    elif key in ("CATSDOGS_SERVE_SEED", "CATSDOGS_INFER_SEED"):
        if len(parse_seeds(value, source=key)) != 1:
            raise UsageError(f"{key}={value}: expected one seed (the run to serve)")
    elif key == "CATSDOGS_LEARNING_SIZES":
        from shared.orchestration.learning import parse_sizes

        parse_sizes(value, source=key)
    elif key in epochs_keys():
        _whole(value, name=key, low=1, high=MAX_EPOCHS)


def parse_set(text: str, *, keys: set[str]) -> dict[str, str]:
    """K8S_SET="KEY=VALUE KEY=VALUE": items split at blanks, each at its first '='; keys exactly as `keys` has
    them (the ConfigMap's and the per-model epochs), each at most once."""
    out: dict[str, str] = {}
    for item in text.split():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"K8S_SET: {item!r}: expected KEY=VALUE")
        if key not in keys:
            raise UsageError(f"K8S_SET: {key} is not a setting of the ConfigMap (k8s/20-configmap.yaml lists them)")
        if key in out:
            raise UsageError(f"K8S_SET: {key} twice")
        check_value(key, value)
        out[key] = value
    return out


def from_environment(environ: Mapping[str, str] = os.environ, *, keys: set[str]) -> RenderSettings:
    """The Makefile's variables: IMAGE, GPUS_PER_POD, K8S_CLUSTER, MODEL (a comma-separated list), K8S_SET."""
    cluster = environ.get("K8S_CLUSTER", "").strip() or "multi-node"
    if cluster not in CLUSTERS:
        raise UsageError(f"K8S_CLUSTER={cluster}: expected {' or '.join(CLUSTERS)}")
    gpus = _whole(environ.get("GPUS_PER_POD", "").strip() or "1", name="GPUS_PER_POD", low=0, high=MAX_GPUS_PER_POD)
    values = parse_set(environ.get("K8S_SET", ""), keys=keys)
    model = environ.get("MODEL", "").strip()
    if model:
        if "CATSDOGS_MODELS" in values:
            raise UsageError("MODEL and K8S_SET=CATSDOGS_MODELS=... both set: use one")
        check_value("CATSDOGS_MODELS", model)
        values["CATSDOGS_MODELS"] = model
    image = environ.get("IMAGE", "").strip() or None
    if image is not None and (any(c.isspace() for c in image) or not image.isprintable()):
        raise UsageError(f"IMAGE={image!r}: an image reference has no blanks")
    return RenderSettings(image=image, gpus_per_pod=gpus, cluster=cluster, values=values)
