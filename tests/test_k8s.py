"""The Kubernetes manifests: valid objects only, the contract they encode, and the pipeline they run."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from shared.errors import EXIT_BUG, EXIT_PERMANENT, EXIT_USAGE

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "k8s"
KUBERNETES_VERSION = "1.37.0"
TINY = {"SOURCE": "synthetic", "PER_CLASS": "30", "SPLIT_TRAIN": "10", "SPLIT_VALIDATION": "5", "SPLIT_TEST": "5",
        "MODEL": "fine-tune", "EPOCHS": "1", "PREREQUISITE_EPOCHS": "1", "IMAGE_SIZE": "32", "BATCH_SIZE": "8",
        "WEIGHTS": "none"}


def documents() -> list[tuple[Path, dict]]:
    return [(path, doc) for path in sorted(K8S.iterdir())
            for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def the(kind: str) -> dict:
    found = [doc for _, doc in documents() if doc["kind"] == kind]
    assert len(found) == 1, kind
    return found[0]


def containers(job: dict) -> list[dict]:
    spec = job["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def test_every_file_is_kubernetes_objects_that_validate():
    import kubernetes_validate

    files = sorted(K8S.iterdir())
    assert files and all(p.suffix == ".yaml" for p in files)
    for path, doc in documents():
        assert {"apiVersion", "kind", "metadata"} <= set(doc), path
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    assert {doc["kind"] for _, doc in documents()} == {"PersistentVolumeClaim", "ConfigMap", "Job"}


def test_a_broken_manifest_would_fail_validation():
    import kubernetes_validate

    job = the("Job")
    job["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 7
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)


def test_no_secret_in_the_repo():
    assert "Secret" not in {doc["kind"] for _, doc in documents()}
    refs = [e["valueFrom"]["secretKeyRef"] for c in containers(the("Job")) for e in c.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})]
    assert {r["name"] for r in refs} == {"kaggle-credentials"}


def test_failure_handling_follows_the_exit_code_contract():
    spec = the("Job")["spec"]
    assert spec["backoffLimit"] >= 1 and spec["activeDeadlineSeconds"] > 0 and spec["ttlSecondsAfterFinished"] > 0
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    rules = spec["podFailurePolicy"]["rules"]
    fail = [r for r in rules if r["action"] == "FailJob"]
    assert fail and fail[0]["onExitCodes"]["operator"] == "In"
    assert {EXIT_PERMANENT, EXIT_USAGE, EXIT_BUG} <= set(fail[0]["onExitCodes"]["values"])
    ignore = [r for r in rules if r["action"] == "Ignore"]
    assert ignore[0]["onPodConditions"] == [{"type": "DisruptionTarget"}]


def test_security_resources_and_gpu():
    job = the("Job")
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    claim = {v["name"]: v for v in pod["volumes"]}["data"]["persistentVolumeClaim"]["claimName"]
    assert claim == the("PersistentVolumeClaim")["metadata"]["name"]
    for c in containers(job):
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"]["drop"] == ["ALL"] and sc["runAsNonRoot"] is True
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"][kind]), (c["name"], kind)
        assert {m["mountPath"] for m in c["volumeMounts"]} == {"/data", "/tmp"}
    train = {c["name"]: c for c in containers(job)}["train"]
    assert train["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {"name": "CATSDOGS_REQUIRE_GPU", "value": "1"} in train["env"]


def _local(value: str, root: Path) -> str:
    """The pod's /data and /tmp mounts, under a test folder."""
    for mount in ("/data", "/tmp"):
        if value == mount or value.startswith(mount + "/"):
            return str(root / mount[1:]) + value[len(mount):]
    return value


def _entrypoint() -> list[str]:
    """The image's ENTRYPOINT, the `catsdogs` console script, as this venv has it."""
    entry = re.search(r'^ENTRYPOINT \["(\w+)"\]', (ROOT / "docker" / "Dockerfile").read_text(), re.M).group(1)
    script = Path(sys.executable).parent / entry
    return [str(script)] if script.exists() else [sys.executable, "-m", "jobs"]


def run_container(container: dict, config: dict, root: Path) -> subprocess.CompletedProcess:
    """Run one container as Kubernetes would, here: its env (ConfigMap and literal), $(VAR) args, /data."""
    env = {}
    for source in container.get("envFrom", []):
        assert source["configMapRef"]["name"] == the("ConfigMap")["metadata"]["name"]
        env.update(config)
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = _local(item["value"], root)
    env.pop("CATSDOGS_REQUIRE_GPU", None)  # no GPU on a test machine
    args = [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a) for a in container["args"]]
    command = container.get("command") or _entrypoint()
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith("KAGGLE_")}
    return subprocess.run([*command, *args], env={**base, **env}, capture_output=True, text=True, timeout=900,
                          check=False)


@pytest.mark.slow
def test_the_manifests_pipeline_runs_to_a_report(tmp_path):
    config = dict(the("ConfigMap")["data"])
    assert set(TINY) <= set(config), "the ConfigMap lost a setting the pipeline uses"
    config.update(TINY)
    names = []
    for container in containers(the("Job")):
        result = run_container(container, config, tmp_path)
        assert result.returncode == 0, f"{container['name']}: {result.stderr[-1500:]}"
        names.append(container["name"])
    assert names == ["fetch", "split", "train", "evaluate"]
    summary = (tmp_path / "data" / "reports" / "summary.md").read_text()
    assert "SYNTHETIC" in summary
    assert "| fine-tune [SYNTHETIC] |" in summary and "| feature-extraction-augmented [SYNTHETIC] |" in summary


@pytest.mark.slow
def test_stage_errors_exit_with_the_codes_the_job_acts_on(tmp_path):
    config = {**the("ConfigMap")["data"], **TINY}
    by_name = {c["name"]: c for c in containers(the("Job"))}
    fail_codes = set(the("Job")["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"])
    no_data = run_container(by_name["split"], config, tmp_path)  # nothing fetched: permanent
    assert no_data.returncode == EXIT_PERMANENT in fail_codes
    assert no_data.stderr.strip().splitlines()[-1].startswith("error: no fetched data")
    typo = run_container(by_name["train"], {**config, "MODEL": "fine_tune"}, tmp_path)  # usage
    assert typo.returncode == EXIT_USAGE in fail_codes
    no_credentials = run_container(by_name["fetch"], {**config, "SOURCE": "kaggle"}, tmp_path)
    assert no_credentials.returncode == EXIT_PERMANENT
    assert "no Kaggle credentials" in no_credentials.stderr
