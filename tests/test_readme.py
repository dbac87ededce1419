"""The README is a contract: every command it tells a user to type is run by a test, as typed, or listed
here with the reason it cannot run on a machine without GPUs, a cluster or Kaggle credentials.

A test may only make a command smaller (fewer images and epochs, smaller images: appended options or
make variables, which win over earlier ones) and fill in the README's placeholders (`my-cat.jpg`,
`photos/`, `/path/to/mnist.npz`); it never changes the command itself. The container section's
commands are run by docker/container-test.sh (`make container-test`, in CI), which reads them from the
README with tests/readme.py.
"""

import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.readme import CONTAINER_SECTION, commands

ROOT = Path(__file__).resolve().parents[1]
VGG = "IMAGE_SIZE=32 WEIGHTS=none"  # no ImageNet download here; VGG16 runs at 32px


@dataclass(frozen=True)
class Here:
    """Run by test_the_readme_commands_run, in the README's order, on one generated volume."""

    smaller: str = ""  # appended to the command


HERE = {
    "make demo": Here('DEMO_PER_CLASS=60 DEMO_SPLIT="--train 30 --validation 15 --test 15" '
                      'DEMO_TRAIN="--epochs 1 --image-size 80" DEMO_MNIST="--samples 600 --epochs 1"'),
    "make train-scratch": Here("EPOCHS=1 IMAGE_SIZE=80"),
    "make train-scratch EPOCHS=2 IMAGE_SIZE=96": Here("EPOCHS=1 IMAGE_SIZE=80"),
    "make train-scratch SEED=1": Here("EPOCHS=1 IMAGE_SIZE=80"),
    "make train-finetune": Here(f"EPOCHS=1 BASE_EPOCHS=1 {VGG}"),
    "python -m jobs train --model fine-tune --epochs 5": Here("--epochs 1 --weights none"),  # its base's
    "python -m jobs describe --model fine-tune": Here(),
    "python -m jobs train --model scratch --summary --verbose": Here("--epochs 1 --image-size 80"),
    'make explain IMAGES="my-cat.jpg" MODEL=scratch': Here(),
    "python -m jobs explain --model fine-tune photos/": Here(),
    "make export MODEL=scratch": Here(),
    "make infer MODEL=scratch": Here(),
    "python -m jobs infer --model fine-tune --shard 0 --shards 4": Here(),
    "python -m jobs infer --model scratch photos/ --skip-unreadable": Here(),
    "python -m jobs export": Here(),
    "python -m jobs export --model scratch --format onnx": Here(),
    "python -m shared.serving.rest my-cat.jpg --out body.json": Here(),
    "make train-mnist MNIST_SOURCE=synthetic": Here("MNIST_SAMPLES=600 EPOCHS=1"),
    "make train-mnist MNIST_MODEL=no-max-pool MNIST_SOURCE=synthetic": Here("MNIST_SAMPLES=600 EPOCHS=1"),
    "python -m jobs mnist --source /path/to/mnist.npz --epochs 5": Here("--epochs 1"),
    "make evaluate": Here(),
    "make report": Here(),
    'make predict IMAGES="my-cat.jpg photos/" MODEL=scratch': Here(),
    "python -m jobs predict --model fine-tune --json photos/": Here(),
    # The tiny chapter, on the volume the commands above made: the same fetch, split and MNIST (no-ops).
    "make chapter SOURCE=synthetic PER_CLASS=400 TRAIN=250 VALIDATION=75 TEST=75 EPOCHS=3 IMAGE_SIZE=96 "
    'WEIGHTS=none MNIST_SOURCE=synthetic MNIST_SAMPLES=3000 SEEDS="1 2 3"':
        Here('PER_CLASS=60 TRAIN=30 VALIDATION=15 TEST=15 EPOCHS=1 IMAGE_SIZE=80 MNIST_SAMPLES=600 SEEDS="1 2"'),
    'make learning-curve SIZES="250 500 1000 2000" MODELS="scratch scratch-augmented feature-extraction" SEEDS="1 2"':
        Here('SIZES="20 60" MODELS="scratch" EPOCHS=1 IMAGE_SIZE=80'),
    'make learning-curve SIZES="20 60" MODELS="scratch feature-extraction" SEEDS="1 2" EPOCHS=1 IMAGE_SIZE=80 '
    "WEIGHTS=none": Here(),
}
NO_CLUSTER = "needs a Kubernetes cluster; the manifests are validated strictly and their containers run " \
             "locally in tests/test_k8s.py"
NOT_HERE = {
    "make test": "the test suite itself: CI runs it (.ci/run)",
    "make train-mnist": "downloads MNIST from Google's storage (no network here); the same stage runs on "
                        "generated digits and on a local mnist.npz below",
    "export KAGGLE_USERNAME=you KAGGLE_KEY=...": "your Kaggle credentials",
    "make fetch": "needs Kaggle's servers and credentials; the same path (the real kaggle client) runs against a "
                  "loopback Kaggle in tests/test_fetch_kaggle.py",
    "make fetch && make split": "the same Kaggle download; split runs after `make demo`'s fetch",
    "kind create cluster --name catsdogs": NO_CLUSTER,
    "make docker-build && kind load docker-image catsdogs:0.1.0 --name catsdogs":
        NO_CLUSTER + "; make docker-build runs in make container-test",
    "kubectl -n catsdogs get pods --watch": NO_CLUSTER,
    "make docker-build IMAGE=registry.example/catsdogs:0.1.0 && docker push registry.example/catsdogs:0.1.0":
        "pushes to your registry",
    "make k8s-secret": NO_CLUSTER,
    "kubectl apply -f k8s/": NO_CLUSTER,
    "make k8s-logs": NO_CLUSTER,
    'make k8s-serve K8S_SET="CATSDOGS_SERVE_MODEL=fine-tune CATSDOGS_SERVE_SEED=1337"':
        NO_CLUSTER + " (test_the_serving_example_validates_and_is_restricted_like_the_rest)",
    "kubectl -n catsdogs port-forward svc/catsdogs-tf-serving 8501": NO_CLUSTER,
    'make k8s-infer K8S_SET="CATSDOGS_INFER_MODEL=fine-tune CATSDOGS_INFER_SHARDS=8"':
        NO_CLUSTER + " (test_the_test_set_is_scored_by_every_shard_at_once_and_merged runs its pods' commands)",
    "make k8s-serve-kserve": NO_CLUSTER + "; KServe's InferenceService is checked as YAML with its required fields",
    'make k8s-learning-curve K8S_SET="CATSDOGS_LEARNING_SIZES=250,500,1000,2000 CATSDOGS_SEEDS=1,2"':
        NO_CLUSTER + " (test_the_learning_curve_fans_out_from_one_setting renders these very settings)",
    'make chapter SEEDS="1337 1 2"': "Kaggle's photos and the seed's epochs three times (a GPU's hours); the "
                                     "tiny variant on the next line runs here",
    "python -m jobs serve --model scratch --port 8501": "a server, until stopped: tests/test_serve.py runs this "
                                                        "line and the curl below it, as typed, on a free port",
    "curl -d @body.json http://localhost:8501/v1/models/scratch:predict": "against the server above: "
                                                                          "tests/test_serve.py",
    "make tensorboard": "a server, until stopped: tests/test_page.py starts it on a volume of runs and asks it "
                        "for them",
}
# Applied to a cluster there; here the same make command renders what it would apply, validated strictly.
RENDERED = "make k8s-apply "


def _kind(line: str, section: str) -> str:
    if section.startswith(CONTAINER_SECTION):
        return "container"
    if line in HERE:
        return "here"
    if line in NOT_HERE:
        return "not here"
    if line.startswith(RENDERED):
        return "rendered"
    return "unaccounted"


def test_every_readme_command_is_run_by_a_test_or_says_why_not():
    found = commands()
    assert len(found) > 30, "the parser lost the README's commands"
    unaccounted = [c.line for c in found if _kind(c.line, c.section) == "unaccounted"]
    assert not unaccounted, f"README commands no test runs (add them to tests/test_readme.py): {unaccounted}"
    lines = {c.line for c in found}
    stale = [line for line in [*HERE, *NOT_HERE] if line not in lines]
    assert not stale, f"listed here but no longer in the README: {stale}"
    container = [c.line for c in found if _kind(c.line, c.section) == "container"]
    assert any(line.startswith("docker run") for line in container) and "make docker-build" in container
    # ... and the container test runs exactly those, read from the README with the same parser.
    assert "python3 -m tests.readme container" in (ROOT / "docker" / "container-test.sh").read_text()
    assert "make container-test" in (ROOT / ".ci" / "run").read_text()


def test_the_parser_reads_commands_as_typed():
    text = "## A\n```sh\nmake x  # why\n\n# a note\nmake y '#not a comment'\n```\n```\nnot sh\n```\n"
    assert [(c.section, c.line) for c in commands(text)] == [("A", "make x"), ("A", "make y '#not a comment'")]


def _make_inputs(cwd: Path, images: Path) -> None:
    """What the README's placeholders name: a photo, a folder of photos, an mnist.npz."""
    import numpy as np

    (cwd / "photos").mkdir()
    for name in ("cat.0.jpg", "cat.1.jpg", "dog.0.jpg"):
        (cwd / "photos" / name).write_bytes((images / name).read_bytes())
    (cwd / "my-cat.jpg").write_bytes((images / "cat.2.jpg").read_bytes())
    rng = np.random.default_rng(0)
    digits = {name: rng.integers(0, 256, (n, 28, 28), dtype=np.uint8) for name, n in (("x_train", 120),
                                                                                      ("x_test", 20))}
    np.savez(cwd / "mnist.npz", **digits, y_train=np.arange(120, dtype=np.uint8) % 10,
             y_test=np.arange(20, dtype=np.uint8) % 10)


def _argv(line: str, smaller: str, cwd: Path, data: Path) -> tuple[list[str], Path]:
    line = line.replace("my-cat.jpg", str(cwd / "my-cat.jpg")).replace("/path/to/mnist.npz", str(cwd / "mnist.npz"))
    words = shlex.split(line) + shlex.split(smaller)
    if words[0] == "make":  # the Makefile's folder, as the README's user; placeholders made absolute above
        words = ["make", "-C", str(ROOT), *[w.replace("photos/", f"{cwd}/photos/") for w in words[1:]],
                 f"DATA_DIR={data}"]
        return words, ROOT
    assert words[0] == "python", line
    return [sys.executable, *words[1:]], cwd


@pytest.mark.slow
def test_the_readme_commands_run(tmp_path, fetched_template):
    from shared.volume.layout import Volume

    _make_inputs(tmp_path, Volume(fetched_template).raw_images)
    data = tmp_path / "data"
    env = {**os.environ, "CATSDOGS_DATA_DIR": str(data), "PYTHONUNBUFFERED": "1"}
    ran = set()
    for c in commands():
        if _kind(c.line, c.section) != "here" or c.line in ran:
            continue
        ran.add(c.line)
        argv, cwd = _argv(c.line, HERE[c.line].smaller, tmp_path, data)
        result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900,
                                stdin=subprocess.DEVNULL)
        assert result.returncode == 0, f"{c.line!r} failed ({result.returncode}): {result.stderr[-1500:]}"
        if "predict" in c.line:
            assert result.stdout.count("\tcat\t") + result.stdout.count('"label"') >= 2, result.stdout
        if "explain" in c.line:
            assert result.stdout.count("p_dog=") >= 1 and ".gradcam.png" in result.stdout, result.stdout
        if "--summary" in c.line:
            assert "parameters:" in result.stdout and "Conv2D" in result.stdout, result.stdout
        if "make chapter" in c.line:
            _the_page_tells_each_model_s_story(data)
    assert ran == set(HERE)
    assert (data / "reports" / "summary.md").exists() and (data / "reports" / "mnist.md").exists()
    assert [p.name for p in sorted((data / "models" / "fine-tune").iterdir())] == ["seed-1", "seed-1337", "seed-2"]
    page = (data / "reports" / "index.html").read_text()
    assert "<img" in page and 'id="learning-curve"' in page
    # make demo ends with an export and a submission file (issue 27)
    assert (data / "models" / "scratch" / "seed-1337" / "export" / "scratch" / "1" / "saved_model.pb").is_file()
    submission = (data / "reports" / "infer" / "scratch-seed-1337" / "test1" / "submission.csv").read_text()
    assert submission.startswith("id,label\n1,") and len(submission.splitlines()) > 2
    curve = json.loads((data / "reports" / "learning-curve.json").read_text())
    assert {(p["train_images"], p["model"]) for p in curve["points"]} >= {(20, "scratch"), (60, "feature-extraction")}


def _the_page_tells_each_model_s_story(data: Path) -> None:
    """Issue 28: after the tiny chapter, every model's parameters, curves, confusion matrix and explained
    mistakes, and the augmentation preview of each model whose summary shows augmentation layers."""
    from shared.reports.augmentation import AUGMENTATION_LAYER
    from shared.training.catalog import SPECS

    page = (data / "reports" / "index.html").read_text()
    assert page.count('class="parameters"') == len(SPECS)
    assert page.count("with their Grad-CAM heat maps, seed ") == len(SPECS)
    assert page.count(": training and validation accuracy") == len(SPECS)
    assert page.count(': confusion matrix"') == len(SPECS)
    augments = {name.value: AUGMENTATION_LAYER in (data / "models" / name.value / "seed-1" / "summary.txt")
                .read_text() for name in SPECS}
    assert sum(augments.values()) >= 2, augments  # the seed's augmented models, and fine-tune built on one
    for name, yes in augments.items():
        shown = f'alt="{name}: augmentation"' in page
        assert shown == yes == (data / "reports" / name / "augmentation.png").is_file(), name


@pytest.mark.parametrize("version", ["1.33.0", "1.37.0"])
def test_the_readme_cluster_commands_render_valid_manifests(version):
    import kubernetes_validate
    import yaml

    applied = [c.line for c in commands() if c.line.startswith(RENDERED)]
    assert applied, "the README shows no make k8s-apply command"
    for line in applied:
        words = shlex.split(line)
        out = subprocess.run(["make", "-s", "k8s-render", *words[2:]], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout
        docs = [d for d in yaml.safe_load_all(out) if d]
        for doc in docs:
            kubernetes_validate.validate(doc, version, strict=True)
        if "K8S_CLUSTER=single-node" in line:
            claim = next(d for d in docs if d["kind"] == "PersistentVolumeClaim")
            assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_the_readme_s_table_of_models_is_the_catalog():
    """The README lists the models by hand: its table must name the catalog's, in its order, with their
    epochs and make targets (a target the Makefile has), so a model added or renamed shows up here."""
    from shared.training.catalog import SPECS

    text = (ROOT / "README.md").read_text()
    section = text.split("### The models\n", 1)[1].split("\n```", 1)[0]
    rows = [[cell.strip().strip("`") for cell in line.strip("|").split("|")]
            for line in section.splitlines() if line.startswith("| `") and not line.startswith("| `--model`")]
    assert [r[0] for r in rows] == [spec.name.value for spec in SPECS.values()]
    assert [int(r[3]) for r in rows] == [spec.epochs for spec in SPECS.values()]
    makefile = (ROOT / "Makefile").read_text()
    for row, spec in zip(rows, SPECS.values(), strict=True):
        assert row[1] == spec.make_target or f"\n{row[1]}: {spec.make_target} " in makefile, row[1]
