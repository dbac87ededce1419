"""Issue 25: the README's "Adding a model" recipe, applied to a copy of the repository, is all it takes.

The copy gets the README's two code blocks (the builder, the catalog entry) and `make k8s-manifests`, and
nothing else; then the CLI, `make help`, `make chapter`, the rendered manifests, the summary and the page,
and the tests' parametrisation all have the new model.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from shared.orchestration.chain import chains
from shared.training.catalog import SPECS

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent.parent
MARKER = "    # New models go above this line"
NAME = "scratch-small"


def recipe() -> tuple[str, str]:
    """The builder and the catalog entry, as the README's section shows them."""
    text = ROOT.joinpath("README.md").read_text()
    section = text[text.index("### Adding a model"):]
    builder, entry = re.findall(r"```python\n(.*?)```", section, re.S)[:2]
    return builder, entry


@pytest.fixture(scope="module")
def copy(tmp_path_factory) -> Path:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    root = tmp_path_factory.mktemp("added") / "catsdogs"
    for name in files:
        if (ROOT / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, root / name)
    builder, entry = recipe()
    models = root / "shared" / "training" / "models.py"
    models.write_text(models.read_text() + "\n\n" + builder)
    catalog = root / "shared" / "training" / "catalog.py"
    text = catalog.read_text()
    assert text.count(MARKER) == 1, "the catalog lost the line the recipe names"
    catalog.write_text(text.replace(MARKER, entry + MARKER))
    make(root, "k8s-manifests")
    return root


def env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in ("IMAGE", "GPUS_PER_POD", "K8S_CLUSTER", "MODEL",
                                                              "K8S_SET", "MAKEFLAGS", "MAKELEVEL")}


def make(root: Path, *args: str) -> str:
    """make in the copy, with this venv (its stamp taken as current: nothing is reinstalled)."""
    return subprocess.run(["make", "-s", "-C", str(root), f"VENV={VENV}", "-o", f"{VENV}/.installed", *args],
                          capture_output=True, text=True, check=True, env=env()).stdout


def jobs(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jobs", *args], cwd=root, capture_output=True, text=True,
                          env={**env(), "CATSDOGS_DATA_DIR": str(root / "data"), "COLUMNS": "1000"})


def test_the_cli_and_make_have_it(copy):
    assert NAME not in {m.value for m in SPECS}  # here, without the recipe
    help_text = jobs(copy, "train", "--help").stdout
    assert f"|{NAME}>" in help_text  # the choices, from the catalog
    assert f"train-{NAME}" in make(copy, "help")
    chapter = make(copy, "-n", "chapter", "SEEDS=1 2")  # the commands make chapter would run
    assert f"train --model {NAME} --seed 2" in chapter, chapter


def test_the_manifests_have_one_more_chain_and_its_key(copy):
    n = len(chains()) + 1  # the new model starts from nothing: a chain of its own
    committed = {d["kind"] + d["metadata"]["name"]: d for p in sorted((copy / "k8s").rglob("*.yaml"))
                 for d in yaml.safe_load_all(p.read_text()) if d}
    train = committed["Jobcatsdogs-train"]["spec"]
    assert (train["parallelism"], train["completions"], train["maxFailedIndexes"]) == (n, n, n)
    assert f'{n - 1}: {NAME}' in (copy / "k8s" / "50-train.yaml").read_text()  # the index mapping
    assert "CATSDOGS_EPOCHS_SCRATCH_SMALL" in (copy / "k8s" / "20-configmap.yaml").read_text()
    learning = committed["Jobcatsdogs-learning-curve"]["spec"]  # one more chain per size, too
    sizes = len(committed["ConfigMapcatsdogs-config"]["data"]["CATSDOGS_LEARNING_SIZES"].split())
    assert (learning["parallelism"], learning["completions"]) == (sizes * n, sizes * n)
    docs = [d for d in yaml.safe_load_all(make(copy, "k8s-render", "K8S_SET=CATSDOGS_SEEDS=1,2 "
                                                   "CATSDOGS_EPOCHS_SCRATCH_SMALL=2")) if d]
    train = next(d for d in docs if d["metadata"]["name"] == "catsdogs-train")["spec"]
    assert (train["parallelism"], train["completions"], train["maxFailedIndexes"]) == (n, 2 * n, 2 * n)
    assert next(d for d in docs if d["kind"] == "ConfigMap")["data"]["CATSDOGS_EPOCHS_SCRATCH_SMALL"] == "2"


def test_the_tests_parametrise_over_it(copy):
    collected = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                                "tests/test_models.py"], cwd=copy, capture_output=True, text=True, env=env()).stdout
    assert f"[{NAME}]" in collected, collected


@pytest.mark.slow
def test_it_trains_and_the_summary_and_page_have_it(copy):
    for args in (["fetch", "--source", "synthetic", "--per-class", "20"],
                 ["split", "--train", "8", "--validation", "4", "--test", "4"],
                 ["train", "--model", NAME, "--epochs", "1", "--image-size", "80", "--batch-size", "8"],
                 ["evaluate"]):
        result = jobs(copy, *args)
        assert result.returncode == 0, (args, result.stderr[-2000:])
    reports = copy / "data" / "reports"
    row = next(line for line in (reports / "summary.md").read_text().splitlines() if line.startswith(f"| {NAME}"))
    assert "| 1 |" in row and "n/a" in row  # one run; the book reports no number for it
    page = (reports / "index.html").read_text()
    assert f'data-model="{NAME}" data-n="1"' in page and f"The chapter's {len(SPECS) + 1} models" in page
