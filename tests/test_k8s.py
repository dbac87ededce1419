"""The Kubernetes manifests: valid objects only, the contract they encode, and the chapter they run."""

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from shared.core.errors import EXIT_BUG, EXIT_PERMANENT, EXIT_USAGE
from shared.core.seeds import DEFAULT_SEED
from shared.orchestration.chain import chains
from shared.training.catalog import SPECS

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "k8s"
KUBERNETES_VERSIONS = ("1.33.0", "1.37.0")
NAMESPACE = "catsdogs"
TINY = {"CATSDOGS_SOURCE": "synthetic", "CATSDOGS_PER_CLASS": "30", "CATSDOGS_SPLIT_TRAIN": "10",
        "CATSDOGS_SPLIT_VALIDATION": "5", "CATSDOGS_SPLIT_TEST": "5", "CATSDOGS_IMAGE_SIZE": "80",
        "CATSDOGS_BATCH_SIZE": "8", "CATSDOGS_WEIGHTS": "none", "CATSDOGS_WAIT_FOR_SPLIT": "600",
        **{s.epochs_variable: "1" for s in SPECS.values()}}


LEARNING = K8S / "learning-curve"  # not applied by `kubectl apply -f k8s/` (no -R): make k8s-learning-curve
SERVING = K8S / "serving"  # nor is this: make k8s-serve (TF Serving), make k8s-serve-kserve
INFERENCE = K8S / "inference"  # nor this: make k8s-infer


def documents(folder: Path = K8S) -> list[tuple[Path, dict]]:
    return [(path, doc) for path in sorted(folder.glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def the(kind: str, name: str | None = None) -> dict:
    found = [doc for _, doc in documents() if doc["kind"] == kind and name in (None, doc["metadata"]["name"])]
    assert len(found) == 1, (kind, name)
    return found[0]


def pod(job: dict) -> dict:
    return job["spec"]["template"]["spec"]


def containers(job: dict) -> list[dict]:
    return [*pod(job).get("initContainers", []), *pod(job)["containers"]]


PREPARE, TRAIN = the("Job", "catsdogs-prepare"), the("Job", "catsdogs-train")
(LEARNING_JOB,) = [doc for _, doc in documents(LEARNING)]
(INFER_JOB,) = [doc for _, doc in documents(INFERENCE)]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_file_is_kubernetes_objects_that_validate(version):
    import kubernetes_validate

    files = sorted(p for p in K8S.iterdir() if p.is_file())
    assert files and all(p.suffix == ".yaml" for p in files)
    assert sorted(p for p in K8S.iterdir() if p.is_dir()) == [INFERENCE, LEARNING, SERVING]
    assert [p.name for p in LEARNING.iterdir()] == ["60-learning-curve.yaml"]
    for path, doc in [*documents(), *documents(LEARNING), *documents(INFERENCE)]:
        assert {"apiVersion", "kind", "metadata"} <= set(doc), path
        kubernetes_validate.validate(doc, version, strict=True)
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == NAMESPACE, path
    assert sorted(doc["kind"] for _, doc in documents()) == \
        ["ConfigMap", "Job", "Job", "Namespace", "NetworkPolicy", "PersistentVolumeClaim"]
    # kubectl applies a folder's files in name order: the namespace first, the Jobs last.
    assert [doc["kind"] for _, doc in documents()][0] == "Namespace"


def test_a_broken_manifest_would_fail_validation():
    import kubernetes_validate

    job = the("Job", "catsdogs-train")
    job["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 7
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, KUBERNETES_VERSIONS[0], strict=True)
    job = the("Job", "catsdogs-train")  # 1.33 requires a pod condition's status
    del job["spec"]["podFailurePolicy"]["rules"][1]["onPodConditions"][0]["status"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, "1.33.0", strict=True)


def test_kaggle_credentials_are_a_mounted_file_never_in_the_repo():
    assert "Secret" not in {doc["kind"] for _, doc in documents()}
    secret = {v["name"]: v for v in pod(PREPARE)["volumes"]}["kaggle"]["secret"]
    assert secret["secretName"] == "kaggle-credentials" and secret["optional"] is True
    fetch = {c["name"]: c for c in containers(PREPARE)}["fetch"]
    assert {"name": "KAGGLE_CONFIG_DIR", "value": "/kaggle"} in fetch["env"]
    assert {"name": "kaggle", "mountPath": "/kaggle", "readOnly": True} in fetch["volumeMounts"]
    for job in (PREPARE, TRAIN):
        assert not any("valueFrom" in e for c in containers(job) for e in c.get("env", []))


def _policy(job: dict) -> dict:
    rules = job["spec"]["podFailurePolicy"]["rules"]
    exits = [r for r in rules if "onExitCodes" in r]
    ignore = [r for r in rules if r["action"] == "Ignore"]
    assert len(exits) == 1 and exits[0]["onExitCodes"]["operator"] == "In"
    assert ignore[0]["onPodConditions"] == [{"type": "DisruptionTarget", "status": "True"}]
    return {"action": exits[0]["action"], "codes": set(exits[0]["onExitCodes"]["values"])}


def test_failure_handling_follows_the_exit_code_contract():
    assert _policy(PREPARE) == {"action": "FailJob", "codes": {EXIT_USAGE, EXIT_PERMANENT, EXIT_BUG}}
    assert _policy(TRAIN) == {"action": "FailIndex", "codes": {EXIT_USAGE, EXIT_PERMANENT, EXIT_BUG}}
    assert _policy(LEARNING_JOB) == _policy(TRAIN) == _policy(INFER_JOB)  # the same contract, per index
    assert INFER_JOB["spec"]["completions"] == INFER_JOB["spec"]["parallelism"] == \
        INFER_JOB["spec"]["maxFailedIndexes"] == int(the("ConfigMap")["data"]["CATSDOGS_INFER_SHARDS"])
    assert LEARNING_JOB["spec"]["maxFailedIndexes"] == LEARNING_JOB["spec"]["completions"]
    spec = TRAIN["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == len(chains())
    assert spec["backoffLimitPerIndex"] >= 1 and spec["maxFailedIndexes"] == spec["completions"]
    for job in (PREPARE, TRAIN, LEARNING_JOB, INFER_JOB):
        assert job["spec"]["activeDeadlineSeconds"] > 0 and job["spec"]["ttlSecondsAfterFinished"] > 0
        assert pod(job)["restartPolicy"] == "Never"


def test_security_resources_and_gpus():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for job in (PREPARE, TRAIN, LEARNING_JOB, INFER_JOB):
        spec = pod(job)
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert {v["name"]: v for v in spec["volumes"]}["data"]["persistentVolumeClaim"]["claimName"] == \
            the("PersistentVolumeClaim")["metadata"]["name"]
        for c in containers(job):
            assert c["image"] == f"catsdogs:{version}", "the project's version, never latest"
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"]["drop"] == ["ALL"] and sc["runAsNonRoot"] is True
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][kind]), (c["name"], kind)
            assert {"/data", "/tmp"} <= {m["mountPath"] for m in c["volumeMounts"]}
    assert not any("nvidia.com/gpu" in c["resources"]["limits"] for c in containers(PREPARE))
    (train,) = containers(TRAIN)
    assert train["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {"name": "CATSDOGS_REQUIRE_GPU", "value": "1"} in train["env"]
    (learning,) = containers(LEARNING_JOB)
    assert learning["resources"] == train["resources"] and {"name": "CATSDOGS_REQUIRE_GPU", "value": "1"} in \
        learning["env"]
    labels = the("Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_network_policy_lets_in_nothing_and_out_only_dns_and_https():
    policy = the("NetworkPolicy")["spec"]
    assert policy["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "catsdogs"}
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"} and policy["ingress"] == []
    ports = {(p["protocol"], p["port"]) for rule in policy["egress"] for p in rule["ports"]}
    assert ports == {("UDP", 53), ("TCP", 53), ("TCP", 443)}
    assert all(set(rule) == {"ports"} for rule in policy["egress"])
    for job in (PREPARE, TRAIN, LEARNING_JOB, INFER_JOB):
        assert job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == "catsdogs"


def test_checkov_skips_are_explained_in_a_form_checkov_reads():
    for job in (PREPARE, TRAIN, LEARNING_JOB, INFER_JOB):
        skips = {k: v for k, v in job["metadata"].get("annotations", {}).items() if k.startswith("checkov.io/skip")}
        assert skips, "checkov -d k8s: 171 passed, 4 skipped (make k8s-lint)"
        for value in skips.values():  # checkov splits at '=' and fails on a second one
            assert re.fullmatch(r"CKV_K8S_\d+=[^=]{20,}", value), value


def test_the_volume_can_be_shared_across_nodes():
    assert the("PersistentVolumeClaim")["spec"]["accessModes"] == ["ReadWriteMany"]


def test_make_renders_image_gpus_and_models():
    import kubernetes_validate

    out = subprocess.run(["make", "-s", "k8s-render", "IMAGE=registry.example/catsdogs@sha256:" + "a" * 64,
                          "GPUS_PER_POD=2", "MODEL=fine-tune"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    assert len(docs) == len(documents())
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSIONS[-1], strict=True)
    jobs = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Job"}
    images = {c["image"] for j in jobs.values() for c in containers(j)}
    assert images == {"registry.example/catsdogs@sha256:" + "a" * 64}
    assert containers(jobs["catsdogs-train"])[0]["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert next(d for d in docs if d["kind"] == "ConfigMap")["data"]["CATSDOGS_MODELS"] == "fine-tune"


def _render(*variables: str) -> list[dict]:
    out = subprocess.run(["make", "-s", "k8s-render", *variables], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_single_node_cluster_variant_validates_and_asks_only_for_read_write_once(version):
    """kind, k3s and minikube provision ReadWriteOnce volumes only (kubernetes-sigs/kind#2371), and no GPUs."""
    import kubernetes_validate

    docs = _render("K8S_CLUSTER=single-node", "GPUS_PER_POD=0",
                   "K8S_SET=CATSDOGS_SOURCE=synthetic CATSDOGS_EPOCHS_SCRATCH=2 CATSDOGS_WEIGHTS=none")
    assert len(docs) == len(documents())
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)
    claim = next(d for d in docs if d["kind"] == "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    train = next(d for d in docs if d["kind"] == "Job" and d["metadata"]["name"] == "catsdogs-train")
    (container,) = containers(train)
    assert "nvidia.com/gpu" not in container["resources"]["requests"] | container["resources"]["limits"]
    assert container["resources"]["requests"] == {"cpu": "500m", "memory": "2Gi"}
    assert {e["name"]: e["value"] for e in container["env"]}["CATSDOGS_REQUIRE_GPU"] == "0"
    data = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    assert (data["CATSDOGS_SOURCE"], data["CATSDOGS_EPOCHS_SCRATCH"], data["CATSDOGS_WEIGHTS"]) == \
        ("synthetic", "2", "none")
    assert "CATSDOGS_EPOCHS_FINE_TUNE" not in data  # only what was set
    # The default render is the multi-node one, unchanged.
    assert next(d for d in _render() if d["kind"] == "PersistentVolumeClaim")["spec"]["accessModes"] == \
        ["ReadWriteMany"]


@pytest.mark.parametrize("bad, says", [
    ("K8S_SET=CATSDOGS_NO_SUCH=1", "not a setting of the ConfigMap"),
    ("K8S_CLUSTER=two-nodes", "expected multi-node or single-node"),
    ("K8S_SET=CATSDOGS_.*=1", "not a setting"),  # a key is a key, never a pattern
    ("K8S_SET=CATSDOGS_SEEDS=1,x", "not a seed"),
    ("K8S_SET=CATSDOGS_SEEDS=1 CATSDOGS_SEEDS=2", "twice"),
    ("K8S_SET=CATSDOGS_EPOCHS_SCRATCH=0", "1 to 10000"),
    ("K8S_SET=CATSDOGS_SOURCE", "expected KEY=VALUE"),
    ("MODEL=fine_tune", "expected 'all' or names from"),
    ("GPUS_PER_POD=two", "GPUS_PER_POD"),
])
def test_render_refuses_what_the_jobs_would_refuse(bad, says):
    result = subprocess.run(["make", "-s", "k8s-render", bad], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == "", (bad, result.stderr)
    assert result.stderr.startswith("error: ") and says in result.stderr.splitlines()[0], (bad, result.stderr)


def test_render_takes_values_literally():
    """The sed renderer took `\1`, `&` and `|` as replacement syntax; values are now strings in a document."""
    value = r"/data/my|weights&\1.h5"
    data = next(d for d in _render(f"K8S_SET=CATSDOGS_WEIGHTS={value}") if d["kind"] == "ConfigMap")["data"]
    assert data["CATSDOGS_WEIGHTS"] == value
    every = " ".join(f"{s.epochs_variable}=3" for s in SPECS.values())  # every model's key, from the catalog
    data = next(d for d in _render(f"K8S_SET={every}") if d["kind"] == "ConfigMap")["data"]
    assert {s.epochs_variable: data[s.epochs_variable] for s in SPECS.values()} == \
        {s.epochs_variable: "3" for s in SPECS.values()}


def test_the_committed_manifests_are_the_renderers_defaults(tmp_path):
    """k8s/ is shared/deploy/render.py's output for the default settings: `make k8s-manifests` rewrites it."""
    env = {k: v for k, v in os.environ.items() if k not in ("IMAGE", "GPUS_PER_POD", "K8S_CLUSTER", "MODEL", "K8S_SET")}
    subprocess.run([sys.executable, "-m", "shared.deploy.render", "--write", str(tmp_path)], cwd=ROOT, env=env,
                   check=True)
    rendered = {p.relative_to(tmp_path): p.read_text() for p in tmp_path.rglob("*") if p.is_file()}
    assert rendered == {p.relative_to(K8S): p.read_text() for p in K8S.rglob("*") if p.is_file()}, \
        "k8s/ drifted: run make k8s-manifests"
    # the catalog's counts and keys, in the files themselves
    config = the("ConfigMap")
    assert all(f'#   {s.epochs_variable}: "{s.epochs}"' in (K8S / "20-configmap.yaml").read_text()
               for s in SPECS.values())
    assert TRAIN["spec"]["parallelism"] == len(chains()) and config["data"]["CATSDOGS_SEEDS"] == str(DEFAULT_SEED)


def _local(value: str, root: Path) -> str:
    """The pod's mounts, under a test folder."""
    for mount in ("/data", "/tmp", "/kaggle"):
        if value == mount or value.startswith(mount + "/"):
            return str(root / mount[1:]) + value[len(mount):]
    return value


def _entrypoint() -> list[str]:
    """The image's ENTRYPOINT, the `catsdogs` console script, as this venv has it."""
    entry = re.search(r'^ENTRYPOINT \["(\w+)"\]', (ROOT / "docker" / "Dockerfile").read_text(), re.M).group(1)
    script = Path(sys.executable).parent / entry
    return [str(script)] if script.exists() else [sys.executable, "-m", "jobs"]


def start_container(container: dict, config: dict, root: Path, **extra_env: str) -> subprocess.Popen:
    """Start one container as Kubernetes would, here: its env (ConfigMap and literal), its args, its mounts."""
    env = {}
    for source in container.get("envFrom", []):
        assert source["configMapRef"]["name"] == the("ConfigMap")["metadata"]["name"]
        env.update(config)
    for item in container.get("env", []):
        env[item["name"]] = _local(item["value"], root)
    env.pop("CATSDOGS_REQUIRE_GPU", None)  # no GPU on a test machine
    env.update(extra_env)
    args = [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a) for a in container["args"]]
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KAGGLE_", "CATSDOGS_"))}
    return subprocess.Popen([*(container.get("command") or _entrypoint()), *args], env={**base, **env}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run_container(container: dict, config: dict, root: Path, **extra_env: str) -> subprocess.CompletedProcess:
    proc = start_container(container, config, root, **extra_env)
    out, err = proc.communicate(timeout=900)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _config() -> dict:
    config = dict(the("ConfigMap")["data"])
    assert set(TINY) - {k for k in TINY if "EPOCHS" in k} <= set(config), "the ConfigMap lost a setting"
    return {**config, **TINY}


def _prepare(root: Path, config: dict) -> None:
    for container in containers(PREPARE):
        result = run_container(container, config, root)
        assert result.returncode == 0, f"{container['name']}: {result.stderr[-1500:]}"


def test_seeds_render_completions_to_match_and_each_pod_checks_them():
    docs = _render("K8S_SET=CATSDOGS_SEEDS=1337,1,2")
    job = next(d for d in docs if d["kind"] == "Job" and d["metadata"]["name"] == "catsdogs-train")
    assert job["spec"]["completions"] == len(chains()) * 3
    (container,) = containers(job)
    assert {e["name"]: e["value"] for e in container["env"]}["CATSDOGS_JOB_COMPLETIONS"] == str(len(chains()) * 3)
    assert next(d for d in docs if d["kind"] == "ConfigMap")["data"]["CATSDOGS_SEEDS"] == "1337,1,2"
    # As the files are (kubectl apply -f k8s/): one seed, one index per chain.
    assert TRAIN["spec"]["completions"] == len(chains())
    assert {e["name"]: e["value"] for e in containers(TRAIN)[0]["env"]}["CATSDOGS_JOB_COMPLETIONS"] == \
        str(len(chains()))


def test_a_pod_refuses_seeds_its_job_was_not_rendered_for(tmp_path):
    """Three seeds in an edited ConfigMap, but the Job still has one seed's completions: exit 2 at once."""
    (train,) = containers(TRAIN)
    result = run_container(train, {**_config(), "CATSDOGS_SEEDS": "1337,1,2"}, tmp_path, JOB_COMPLETION_INDEX="0")
    assert result.returncode == EXIT_USAGE in _policy(TRAIN)["codes"]
    assert "need 12" in result.stderr.strip().splitlines()[-1] and "make k8s-render" in result.stderr


@pytest.mark.slow
def test_the_chapter_runs_prepare_then_every_index_at_once(tmp_path):
    """Two seeds: every (chain, seed) index as a process on one volume, each run trained once."""
    docs = _render("K8S_SET=CATSDOGS_SEEDS=1337,7")
    job = next(d for d in docs if d["kind"] == "Job" and d["metadata"]["name"] == "catsdogs-train")
    config = {**next(d for d in docs if d["kind"] == "ConfigMap")["data"], **TINY}
    (train,) = containers(job)
    # The indices start first and wait for the split, as pods scheduled before the prepare Job ends do.
    procs = [start_container(train, config, tmp_path, JOB_COMPLETION_INDEX=str(i))
             for i in range(job["spec"]["completions"])]
    assert len(procs) == 2 * len(chains())
    _prepare(tmp_path, config)
    for i, proc in enumerate(procs):
        out, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, f"index {i}: {err[-2000:]}"
    data = tmp_path / "data"
    for seed in (1337, 7):
        for chain in chains():
            for model in chain:
                history = yaml.safe_load((data / "models" / model.value / f"seed-{seed}" / "history.json").read_text())
                assert len(history["loss"]) == 1, (model, seed)  # trained once, with its own epochs setting
    summary = (data / "reports" / "summary.md").read_text()
    rows = [line for line in summary.splitlines() if line.startswith("| ") and "[SYNTHETIC]" in line]
    assert len(rows) == len(SPECS) and all(row.split("|")[2].strip() == "2" for row in rows), summary
    assert not list((data / ".staging").iterdir())


@pytest.mark.slow
def test_a_permanent_failure_fails_its_index_and_is_in_the_summary(tmp_path):
    config = _config()
    _prepare(tmp_path, config)
    (train,) = containers(TRAIN)
    failed = run_container(train, {**config, "CATSDOGS_IMAGE_SIZE": "40"}, tmp_path, JOB_COMPLETION_INDEX="0")
    assert failed.returncode == EXIT_USAGE in _policy(TRAIN)["codes"]
    assert failed.stderr.strip().splitlines()[-1].startswith("error: --image-size 40 is too small for scratch")
    row = next(line for line in (tmp_path / "data" / "reports" / "summary.md").read_text().splitlines()
               if line.startswith("| scratch |"))
    assert "failed (exit 2)" in row and "too small" in row


@pytest.mark.slow
def test_stage_errors_exit_with_the_codes_the_jobs_act_on(tmp_path):
    config = _config()
    by_name = {c["name"]: c for c in containers(PREPARE)}
    no_data = run_container(by_name["split"], config, tmp_path)  # nothing fetched: permanent
    assert no_data.returncode == EXIT_PERMANENT in _policy(PREPARE)["codes"]
    assert no_data.stderr.strip().splitlines()[-1].startswith("error: no fetched data")
    no_credentials = run_container(by_name["fetch"], {**config, "CATSDOGS_SOURCE": "kaggle"}, tmp_path)
    assert no_credentials.returncode == EXIT_PERMANENT
    assert "no Kaggle credentials" in no_credentials.stderr
    (train,) = containers(TRAIN)
    typo = run_container(train, {**config, "CATSDOGS_MODELS": "fine_tune"}, tmp_path, JOB_COMPLETION_INDEX="3")
    assert typo.returncode == EXIT_USAGE in _policy(TRAIN)["codes"]
    too_far = run_container(train, config, tmp_path, JOB_COMPLETION_INDEX=str(len(chains())))
    assert too_far.returncode == EXIT_USAGE
    waited = run_container(train, {**config, "CATSDOGS_WAIT_FOR_SPLIT": "0.5"}, tmp_path, JOB_COMPLETION_INDEX="0")
    assert waited.returncode == 75 and "has the prepare Job finished" in waited.stderr  # retried by the Job


def _render_learning(k8s_set: str) -> tuple[dict, dict]:
    """(the learning-curve Job, the ConfigMap) as `make k8s-learning-curve K8S_SET=...` renders them."""
    env = {**{k: v for k, v in os.environ.items() if k not in ("IMAGE", "GPUS_PER_POD", "K8S_CLUSTER", "MODEL")},
           "K8S_SET": k8s_set}
    docs = []
    for part in ("learning-curve", "prepare"):
        out = subprocess.run([sys.executable, "-m", "shared.deploy.render", "--part", part], cwd=ROOT, env=env,
                             capture_output=True, text=True, check=True).stdout
        docs += [d for d in yaml.safe_load_all(out) if d]
    (job,) = [d for d in docs if d["metadata"]["name"] == "catsdogs-learning-curve"]
    return job, next(d for d in docs if d["kind"] == "ConfigMap")


def test_the_learning_curve_fans_out_from_one_setting():
    """sizes x seeds x chains indices, rendered from CATSDOGS_LEARNING_SIZES (and the chapter's seeds)."""
    import kubernetes_validate

    job, config = _render_learning("CATSDOGS_LEARNING_SIZES=100,400,1600 CATSDOGS_SEEDS=1,2")
    kubernetes_validate.validate(job, KUBERNETES_VERSIONS[-1], strict=True)
    assert job["spec"]["completions"] == job["spec"]["maxFailedIndexes"] == 3 * 2 * len(chains())
    (container,) = containers(job)
    assert {e["name"]: e["value"] for e in container["env"]}["CATSDOGS_JOB_COMPLETIONS"] == str(3 * 2 * len(chains()))
    assert config["data"]["CATSDOGS_LEARNING_SIZES"] == "100,400,1600" and container["args"] == ["learning-curve"]
    default_sizes = the("ConfigMap")["data"]["CATSDOGS_LEARNING_SIZES"].split()
    assert LEARNING_JOB["spec"]["completions"] == len(default_sizes) * len(chains())  # as committed: one seed
    bad = subprocess.run([sys.executable, "-m", "shared.deploy.render", "--part", "learning-curve"], cwd=ROOT,
                         env={**os.environ, "K8S_SET": "CATSDOGS_LEARNING_SIZES=250,25O"}, capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "is not a training-set size" in bad.stderr and bad.stdout == ""


@pytest.mark.slow
def test_the_learning_curve_runs_every_index_at_once(tmp_path):
    """After the prepare Job: every (size, seed, chain) index as a process on one volume; the last draws all."""
    job, config = _render_learning("CATSDOGS_LEARNING_SIZES=4,10 CATSDOGS_LEARNING_MODELS=scratch")
    config = {**config["data"], **TINY}
    _prepare(tmp_path, config)
    (container,) = containers(job)
    procs = [start_container(container, config, tmp_path, JOB_COMPLETION_INDEX=str(i))
             for i in range(job["spec"]["completions"])]
    for i, proc in enumerate(procs):
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, f"index {i}: {err[-2000:]}"
    curve = yaml.safe_load((tmp_path / "data" / "reports" / "learning-curve.json").read_text())
    assert sorted((p["train_images"], p["model"]) for p in curve["points"]) == [(4, "scratch"), (10, "scratch")]
    too_far = run_container(container, config, tmp_path, JOB_COMPLETION_INDEX=str(job["spec"]["completions"]))
    assert too_far.returncode == EXIT_USAGE in _policy(job)["codes"]


def _serving() -> dict[str, dict]:
    return {doc["kind"]: doc for _, doc in documents(SERVING)}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_serving_example_validates_and_is_restricted_like_the_rest(version):
    """TF Serving's Deployment and Service by schema; KServe's InferenceService (a CRD no schema here has)
    as YAML with the fields KServe requires; the served path is the one `catsdogs export` writes."""
    import kubernetes_validate

    from shared.serving.export import base_path
    from shared.volume.layout import Volume

    docs = _serving()
    assert sorted(docs) == ["Deployment", "InferenceService", "NetworkPolicy", "Service"]
    for kind in ("Deployment", "Service", "NetworkPolicy"):
        kubernetes_validate.validate(docs[kind], version, strict=True)
        assert docs[kind]["metadata"]["namespace"] == NAMESPACE
    spec = docs["Deployment"]["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (server,) = spec["containers"]
    assert server["securityContext"]["readOnlyRootFilesystem"] is True
    assert server["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert {"name": "data", "mountPath": "/data", "readOnly": True} in server["volumeMounts"]
    assert {v["name"]: v for v in spec["volumes"]}["data"]["persistentVolumeClaim"] == \
        {"claimName": the("PersistentVolumeClaim")["metadata"]["name"], "readOnly": True}
    config = the("ConfigMap")["data"]
    env = {e["name"]: config[e["valueFrom"]["configMapKeyRef"]["key"]] for e in server["env"]}
    args = [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a) for a in server["args"]]
    model, seed = config["CATSDOGS_SERVE_MODEL"], int(config["CATSDOGS_SERVE_SEED"])
    served = str(base_path(Volume(Path("/data")), model, seed))
    assert f"--model_base_path={served}" in args and f"--model_name={model}" in args
    assert "--rest_api_port=8501" in args
    # The chapter's policy lets nothing in; the server's own lets in its two ports and nothing out.
    assert docs["Deployment"]["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] != \
        the("NetworkPolicy")["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
    policy = docs["NetworkPolicy"]["spec"]
    assert policy["egress"] == [] and {p["port"] for r in policy["ingress"] for p in r["ports"]} == {8500, 8501}
    assert docs["Service"]["spec"]["selector"] == docs["Deployment"]["spec"]["selector"]["matchLabels"]
    isvc = docs["InferenceService"]
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1" and isvc["metadata"]["name"]
    assert isvc["spec"]["predictor"]["model"]["modelFormat"]["name"] == "tensorflow"
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == f"pvc://catsdogs-data{served.removeprefix('/data')}"


def test_the_served_run_is_one_setting_checked_like_the_jobs_check_theirs():
    env = {k: v for k, v in os.environ.items() if k not in ("IMAGE", "GPUS_PER_POD", "K8S_CLUSTER", "MODEL")}

    def render(k8s_set: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "shared.deploy.render", "--part", "kserve"], cwd=ROOT,
                              env={**env, "K8S_SET": k8s_set}, capture_output=True, text=True)

    (isvc,) = [d for d in yaml.safe_load_all(render("CATSDOGS_SERVE_MODEL=scratch CATSDOGS_SERVE_SEED=7").stdout)
               if d]
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == "pvc://catsdogs-data/models/scratch/seed-7/export/scratch"
    for bad in ("CATSDOGS_SERVE_MODEL=scratch,fine-tune", "CATSDOGS_SERVE_MODEL=all", "CATSDOGS_SERVE_SEED=1,2",
                "CATSDOGS_SERVE_MODEL=fine_tune"):
        result = render(bad)
        assert result.returncode == 2 and result.stdout == "" and result.stderr.startswith("error: "), bad


def _render_part(part: str, k8s_set: str) -> list[dict]:
    env = {**{k: v for k, v in os.environ.items() if k not in ("IMAGE", "GPUS_PER_POD", "K8S_CLUSTER", "MODEL")},
           "K8S_SET": k8s_set}
    out = subprocess.run([sys.executable, "-m", "shared.deploy.render", "--part", part], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.mark.slow
def test_the_test_set_is_scored_by_every_shard_at_once_and_merged(tmp_path):
    """make k8s-infer's Job: every shard's command run here at once, on one volume; one submission."""
    import kubernetes_validate

    (job,) = _render_part("infer", "CATSDOGS_INFER_MODEL=scratch CATSDOGS_INFER_SHARDS=3")
    kubernetes_validate.validate(job, KUBERNETES_VERSIONS[-1], strict=True)
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 3
    config = {**next(d for d in _render_part("prepare", "CATSDOGS_INFER_MODEL=scratch CATSDOGS_INFER_SHARDS=3")
                     if d["kind"] == "ConfigMap")["data"], **TINY}
    _prepare(tmp_path, config)
    (train,) = containers(TRAIN)
    assert run_container(train, {**config, "CATSDOGS_MODELS": "scratch"}, tmp_path,
                         JOB_COMPLETION_INDEX="0").returncode == 0
    (container,) = containers(job)
    procs = [start_container(container, config, tmp_path, JOB_COMPLETION_INDEX=str(i)) for i in range(3)]
    for i, proc in enumerate(procs):
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, f"shard {i}: {err[-2000:]}"
    folder = tmp_path / "data" / "reports" / "infer" / f"scratch-seed-{DEFAULT_SEED}" / "test1"
    sample = (tmp_path / "data" / "raw" / "sampleSubmission.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in (folder / "submission.csv").read_text().splitlines()] == \
        [line.split(",")[0] for line in sample]
    wrong = run_container(container, {**config, "CATSDOGS_INFER_SHARDS": "2"}, tmp_path, JOB_COMPLETION_INDEX="0")
    assert wrong.returncode == EXIT_USAGE and "make k8s-infer" in wrong.stderr  # an edited ConfigMap, an old Job
