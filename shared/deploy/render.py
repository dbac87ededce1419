"""The one renderer of the Kubernetes manifests: templates (shared/deploy/templates/) + the catalog + settings.

The documents are read and written by a YAML library (ruamel.yaml, which keeps the templates' comments); the
renderer sets typed values in them and never edits text. What the catalog decides is rendered from it: the
training Job's parallelism, completions and maxFailedIndexes, the index mapping in its header, and the
ConfigMap's per-model epochs keys. The files under k8s/ are this module's output for the default settings
(`make k8s-manifests`; tests/test_k8s.py fails when they drift), so `kubectl apply -f k8s/` keeps working.

    python -m shared.deploy.render [--part all|prepare|train] [--write DIR]
reads IMAGE, GPUS_PER_POD, K8S_CLUSTER, MODEL and K8S_SET from the environment (the Makefile's variables).
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from shared.core.errors import EXIT_USAGE, UsageError
from shared.core.numbers import parse_number
from shared.core.seeds import DEFAULT_SEED, parse_seeds
from shared.deploy.settings import MAX_SHARDS, RenderSettings, epochs_keys, from_environment
from shared.orchestration.chain import chains
from shared.orchestration.learning import defaults_text as learning_defaults
from shared.orchestration.learning import parse_sizes

TEMPLATES = Path(__file__).resolve().parent / "templates"
TRAIN_FILE = "50-train.yaml"
LEARNING_FILE = "learning-curve/60-learning-curve.yaml"  # a folder of its own: `kubectl apply -f k8s/` skips it
SERVING = "serving/"  # TF Serving's Deployment, Service and NetworkPolicy; KServe's InferenceService (80-)
KSERVE_FILE = "serving/80-kserve-inferenceservice.yaml"
INFER_FILE = "inference/90-infer.yaml"
PARTS = ("all", "chapter", "prepare", "train", "learning-curve", "serving", "kserve", "infer")
CPU_REQUESTS = {"cpu": "500m", "memory": "2Gi"}  # GPUS_PER_POD=0: a laptop-sized cluster can schedule it
GPU = "nvidia.com/gpu"


@dataclass(frozen=True)
class Manifest:
    name: str  # the file's name under k8s/
    text: str


def _yaml():
    from ruamel.yaml import YAML

    yaml = YAML()  # round-trip: comments, key order and quoting style as the template has them
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long line
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def _quoted(value: str):
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString

    return DoubleQuotedScalarString(value)


def _flow(items: list | dict):
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    out = CommentedSeq(items) if isinstance(items, list) else CommentedMap(items)
    out.fa.set_flow_style()
    return out


def config_keys() -> set[str]:
    """Every key K8S_SET may set: the ConfigMap template's and the per-model epochs."""
    config = _yaml().load((TEMPLATES / "20-configmap.yaml").read_text())
    return set(config["data"]) | set(epochs_keys())


def _containers(job) -> list:
    spec = job["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def _env(container, name: str, value: str) -> None:
    entry = next(e for e in container["env"] if e["name"] == name)
    entry["value"] = _quoted(value)


def _config_header() -> str:
    lines = ["The chapter's settings; the jobs read each as an option's environment variable (catsdogs <stage> "
             "--help).", "Each model trains for its own number of epochs, the seed's, unless its key is set "
             "(make k8s-apply K8S_SET=\"KEY=VALUE\"):"]
    lines += [f"  {key}: \"{epochs}\"" for key, epochs in epochs_keys().items()]
    return "".join(f"# {line}\n" for line in lines)


def _train_header(n: int) -> str:
    mapping = [f"  {i}: " + ", then ".join(m.value for m in chain) for i, chain in enumerate(chains())]
    lines = ["Step 2: the catalog's models in parallel, one index per chain and seed (shared/orchestration/chain.py).",
             f"Index i trains chain i mod {n} for seed number i div {n} of CATSDOGS_SEEDS (a model that starts from",
             "another's checkpoint trains after it, in the same pod):", *mapping,
             f"parallelism is {n} (one pod per chain); completions and maxFailedIndexes are {n} x the number of seeds,",
             "and CATSDOGS_JOB_COMPLETIONS (each pod checks it against the seeds) the same: `make k8s-apply` renders",
             "them from CATSDOGS_SEEDS. Each index waits for the prepare Job's split, trains, and evaluates what it",
             "trained; reports/summary.md has a row per model. One index failing for good fails that index alone."]
    return "".join(f"# {line}\n" for line in lines)


def _learning_header(n: int) -> str:
    lines = ["The learning curve (make k8s-learning-curve, after the chapter's prepare Job): the models of",
             "CATSDOGS_LEARNING_MODELS trained on the first N training images for each N of",
             "CATSDOGS_LEARNING_SIZES, once per seed of CATSDOGS_SEEDS, each scored on the split's test subset",
             f"(shared/orchestration/learning.py). Index i is size number i div ({n} x seeds), seed number",
             f"(i div {n}) mod seeds, chain i mod {n}; the renderer sets completions, maxFailedIndexes and",
             "CATSDOGS_JOB_COMPLETIONS to sizes x seeds x chains. Each index redraws reports/learning-curve.png",
             "and the page from every run scored so far: the last one to finish draws them all."]
    return "".join(f"# {line}\n" for line in lines)


def _infer_header() -> str:
    lines = ["Kaggle's test1 scored in shards (make k8s-infer, after the chapter has trained the model): index i",
             "scores the files at positions i, i+N, ... of test1 for N = CATSDOGS_INFER_SHARDS (the renderer sets",
             "completions, parallelism and CATSDOGS_JOB_COMPLETIONS to N); each writes its part whole, and the",
             "one that finds all N merges them into reports/infer/<model>-seed-<S>/test1/predictions.csv and",
             "submission.csv. A failed shard is retried alone; the others' parts are kept."]
    return "".join(f"# {line}\n" for line in lines)


def _indexed(job, *, completions: int, parallelism: int, gpus: int) -> None:
    """An Indexed Job's counts (maxFailedIndexes = completions: one index failing stops no other), the
    completions its pods check (CATSDOGS_JOB_COMPLETIONS), and its GPUs per pod."""
    job["spec"]["completions"] = completions
    job["spec"]["parallelism"] = parallelism
    job["spec"]["maxFailedIndexes"] = completions
    (container,) = job["spec"]["template"]["spec"]["containers"]
    _env(container, "CATSDOGS_JOB_COMPLETIONS", str(completions))
    _resources(container, gpus)


def _resources(container, gpus: int) -> None:
    resources = container["resources"]
    if gpus == 0:
        resources["requests"] = _flow(dict(CPU_REQUESTS))
        resources["limits"].pop(GPU, None)
        _env(container, "CATSDOGS_REQUIRE_GPU", "0")
    else:
        resources["requests"][GPU] = gpus
        resources["limits"][GPU] = gpus


def render(settings: RenderSettings) -> list[Manifest]:
    """Every manifest, in the order kubectl applies a folder (file names)."""
    yaml = _yaml()
    image = settings.image or f"catsdogs:{version('catsdogs')}"
    out = []
    for path in sorted(TEMPLATES.rglob("*.yaml")):  # the chapter's files first, then the learning curve's folder
        name = path.relative_to(TEMPLATES).as_posix()
        doc, header = yaml.load(path.read_text()), ""
        kind = doc["kind"]
        if kind == "PersistentVolumeClaim":
            modes = ["ReadWriteOnce"] if settings.cluster == "single-node" else ["ReadWriteMany"]
            doc["spec"]["accessModes"] = _flow(modes)
        elif kind == "ConfigMap":
            header = _config_header()
            doc["data"]["CATSDOGS_SEEDS"] = _quoted(str(DEFAULT_SEED))
            doc["data"]["CATSDOGS_SERVE_SEED"] = _quoted(str(DEFAULT_SEED))
            doc["data"]["CATSDOGS_INFER_SEED"] = _quoted(str(DEFAULT_SEED))
            sizes_text, models_text = learning_defaults()
            doc["data"]["CATSDOGS_LEARNING_SIZES"] = _quoted(sizes_text)
            doc["data"]["CATSDOGS_LEARNING_MODELS"] = _quoted(models_text)
            for key, value in settings.values.items():
                doc["data"][key] = _quoted(value)
        elif kind == "Job":
            for container in _containers(doc):
                container["image"] = image
        if path.name == TRAIN_FILE:
            n = len(chains())
            seeds = parse_seeds(settings.values.get("CATSDOGS_SEEDS", str(DEFAULT_SEED)), source="CATSDOGS_SEEDS")
            _indexed(doc, completions=n * len(seeds), parallelism=n, gpus=settings.gpus_per_pod)
            header = _train_header(n)
        if name == LEARNING_FILE:
            n = len(chains())
            sizes = parse_sizes(settings.values.get("CATSDOGS_LEARNING_SIZES", learning_defaults()[0]),
                                source="CATSDOGS_LEARNING_SIZES")
            seeds = parse_seeds(settings.values.get("CATSDOGS_SEEDS", str(DEFAULT_SEED)), source="CATSDOGS_SEEDS")
            _indexed(doc, completions=len(sizes) * len(seeds) * n, parallelism=len(sizes) * n,
                     gpus=settings.gpus_per_pod)
            header = _learning_header(n)
        if name == INFER_FILE:
            defaults = yaml.load((TEMPLATES / "20-configmap.yaml").read_text())["data"]
            shards = int(parse_number(settings.values.get("CATSDOGS_INFER_SHARDS", defaults["CATSDOGS_INFER_SHARDS"]),
                                      name="CATSDOGS_INFER_SHARDS", low=1, high=MAX_SHARDS))
            _indexed(doc, completions=shards, parallelism=shards, gpus=settings.gpus_per_pod)
            header = _infer_header()
        if name == KSERVE_FILE:
            model, seed = served_run(settings, yaml)
            doc["spec"]["predictor"]["model"]["storageUri"] = f"pvc://catsdogs-data/models/{model}/seed-{seed}/export/{model}"
        buffer = io.StringIO()
        yaml.dump(doc, buffer)
        out.append(Manifest(name, header + buffer.getvalue()))
    return out


def served_run(settings: RenderSettings, yaml=None) -> tuple[str, int]:
    """(model, seed) the serving manifests serve: the ConfigMap's CATSDOGS_SERVE_MODEL and _SEED."""
    defaults = (yaml or _yaml()).load((TEMPLATES / "20-configmap.yaml").read_text())["data"]
    model = settings.values.get("CATSDOGS_SERVE_MODEL", defaults["CATSDOGS_SERVE_MODEL"])
    seed = parse_seeds(settings.values.get("CATSDOGS_SERVE_SEED", str(DEFAULT_SEED)), source="CATSDOGS_SERVE_SEED")
    return model, seed[0]


def part_of(name: str) -> str:
    if name == LEARNING_FILE:
        return "learning-curve"
    if name == INFER_FILE:
        return "infer"
    if name.startswith(SERVING):
        return "kserve" if name == KSERVE_FILE else "serving"
    return "train" if name == TRAIN_FILE else "prepare"


def wanted(part: str, name: str) -> bool:
    """all: every file; chapter: what `make k8s-apply` applies (prepare, then train); else that part."""
    return part == "all" or part_of(name) == part or (part == "chapter" and part_of(name) in ("prepare", "train"))


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m shared.deploy.render", description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=PARTS, default="all",
                        help="chapter: prepare and train; prepare: everything but the Jobs that train (applied "
                             "first); train: the chapter's training Job; learning-curve: its Job; all: every file")
    parser.add_argument("--write", type=Path, metavar="DIR", help="write the files into DIR instead of printing")
    args = parser.parse_args(argv)
    try:
        manifests = render(from_environment(keys=config_keys()))
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    for manifest in [m for m in manifests if wanted(args.part, m.name)]:
        if args.write:
            target = args.write / manifest.name
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_text(manifest.text)
            tmp.replace(target)
        else:
            sys.stdout.write("---\n" + manifest.text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
