"""Golden files of the rendered manifests (``pytest --update-golden`` rewrites them; review
their diffs like code), strict validation against the real Kubernetes schemas, and the
properties every rendered gateway must have whatever its spec."""

import base64
import copy
import ipaddress
import subprocess

import pytest
import yaml

from gateways.egress import ALWAYS_DENIED_NETWORKS
from provisioning.envoy import envoy_binary
from provisioning.runtimes.kubernetes import names
from provisioning.runtimes.kubernetes.render import render_gateway, render_tenant, to_yaml
from tests.kubernetes import schemas
from tests.kubernetes.cases import CASES, TESTDATA, load


def rendered(case: str) -> list[dict]:
    cluster, tenant, gateway = load(case)
    return render_tenant(tenant) + render_gateway(gateway, cluster)


def readable(objects: list[dict]) -> str:
    """The YAML, with Secret data decoded so a golden diff shows the bootstrap."""
    shown = copy.deepcopy(objects)
    for obj in shown:
        if obj["kind"] == "Secret":
            obj["data"] = {k: base64.b64decode(v).decode() for k, v in obj["data"].items()}
    return to_yaml(shown)


@pytest.mark.parametrize("case", CASES)
def test_golden(case, request):
    output = readable(rendered(case))
    golden = TESTDATA / f"{case}.out.yaml"
    if request.config.getoption("--update-golden"):
        golden.write_text(output)
    assert golden.exists(), f"no golden output for {case}: run pytest --update-golden"
    assert output == golden.read_text()


def test_no_orphan_golden_outputs(request):
    orphans = [
        p for p in TESTDATA.glob("*.out.yaml") if p.name.removesuffix(".out.yaml") not in CASES
    ]
    if request.config.getoption("--update-golden"):
        for path in orphans:
            path.unlink()
        orphans = []
    assert not orphans, f"golden outputs without inputs: {orphans} (pytest --update-golden)"


@pytest.mark.parametrize("version", schemas.newest_versions())
@pytest.mark.parametrize("case", CASES)
def test_every_object_is_valid_kubernetes(case, version):
    problems = {
        f"{obj['kind']}/{obj['metadata']['name']}": schemas.errors(obj, version)
        for obj in rendered(case)
    }
    assert not {k: v for k, v in problems.items() if v}


def test_the_strict_schemas_catch_a_mistake():
    deployment = next(o for o in rendered("autoscaling") if o["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpget"] = {}
    deployment["spec"]["replicas"] = "two"
    found = schemas.errors(deployment, schemas.newest_versions()[-1])
    assert any("httpget" in e for e in found) and any("spec.replicas" in e for e in found)


def test_two_kubernetes_versions_are_checked():
    versions = schemas.newest_versions()
    assert len(versions) == 2 and versions[0] != versions[1]


@pytest.mark.parametrize("case", CASES)
def test_everything_is_marked_as_gantrys(case):
    cluster, tenant, gateway = load(case)
    owned = [(obj, f"tenant/{tenant.slug}") for obj in render_tenant(tenant)]
    owned += [(obj, f"gateway/{gateway.key}") for obj in render_gateway(gateway, cluster)]
    for obj, owner in owned:
        labels, annotations = obj["metadata"]["labels"], obj["metadata"]["annotations"]
        assert labels[names.MANAGED_BY] == "gantry"
        assert labels[names.TENANT_LABEL] == tenant.slug
        assert annotations[names.OWNER_ANNOTATION] == owner
        assert (names.GATEWAY_LABEL in labels) == owner.startswith("gateway/")
        assert len(obj["metadata"]["name"]) <= 63


@pytest.mark.parametrize("case", CASES)
def test_pods_are_locked_down(case):
    cluster, _, gateway = load(case)
    deployment = next(o for o in render_gateway(gateway, cluster) if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    # The drain (pre-stop sleep) ends before the kubelet kills the pod.
    drain = container["lifecycle"]["preStop"]["exec"]["command"][-1]
    drain_seconds = int(drain.rsplit("sleep ", 1)[1])
    assert pod["terminationGracePeriodSeconds"] > drain_seconds + 2
    assert container["args"][container["args"].index("--concurrency") + 1] == str(gateway.vcpu)


@pytest.mark.parametrize("case", CASES)
def test_the_service_has_a_port_per_listener_port_and_nothing_else(case):
    cluster, _, gateway = load(case)
    objects = {o["kind"]: o for o in render_gateway(gateway, cluster)}
    service_ports = [p["port"] for p in objects["Service"]["spec"]["ports"]]
    assert service_ports == sorted({listener.port for listener in gateway.listeners})
    admitted = [p["port"] for p in objects["NetworkPolicy"]["spec"]["ingress"][0]["ports"]]
    assert admitted == service_ports  # the readiness port is reachable by probes only


def test_budget_and_autoscaler_follow_the_spec():
    cluster, _, gateway = load("single-replica-load-balancer")
    kinds = [o["kind"] for o in render_gateway(gateway, cluster)]
    assert "PodDisruptionBudget" not in kinds and "HorizontalPodAutoscaler" not in kinds
    cluster, _, gateway = load("autoscaling")
    objects = {o["kind"]: o for o in render_gateway(gateway, cluster)}
    assert objects["HorizontalPodAutoscaler"]["spec"]["maxReplicas"] == 8
    assert "replicas" not in objects["Deployment"]["spec"]
    assert "PodDisruptionBudget" in objects


def test_rendering_is_deterministic_and_a_new_xds_address_rolls_the_pods():
    cluster, _, gateway = load("single-replica-load-balancer")
    assert render_gateway(gateway, cluster) == render_gateway(gateway, cluster)
    from dataclasses import replace

    moved = render_gateway(gateway, replace(cluster, xds_address="10.96.0.99"))
    before = {o["kind"]: o for o in render_gateway(gateway, cluster)}
    after = {o["kind"]: o for o in moved}
    templates = [d["Deployment"]["spec"]["template"] for d in (before, after)]
    assert templates[0] != templates[1]  # the init container enrolls with the new address
    assert before["Service"] == after["Service"]


@pytest.mark.parametrize("case", CASES)
def test_no_object_holds_a_token_and_only_the_init_container_sees_the_pods_identity(case):
    cluster, _, gateway = load(case)
    objects = render_gateway(gateway, cluster)
    assert "Secret" not in [o["kind"] for o in objects]
    assert "gxds_" not in yaml.safe_dump_all(objects)
    pod = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == names.workload(gateway.name)
    volumes = {v["name"]: v for v in pod["volumes"]}
    identity = volumes["xds-identity"]["projected"]["sources"]
    assert identity == [{"serviceAccountToken": {
        "audience": "gantry-xds", "expirationSeconds": 600, "path": "token"}}]  # fmt: skip
    assert "emptyDir" in volumes["bootstrap"] and "secret" not in volumes["bootstrap"]
    (enroll,) = pod["initContainers"]
    (envoy,) = pod["containers"]
    assert "xds-identity" in [m["name"] for m in enroll["volumeMounts"]]
    assert "xds-identity" not in [m["name"] for m in envoy["volumeMounts"]]
    assert enroll["image"] == cluster.platform_image
    assert enroll["command"] == ["python", "-m", "provisioning.xds.enroll"]
    args = enroll["args"]
    assert args[args.index("--xds") + 1] == f"{cluster.xds_address}:{cluster.xds_port}"
    assert args[args.index("--gateway") + 1] == gateway.key
    output = args[args.index("--output") + 1]
    envoy_mount = next(m for m in envoy["volumeMounts"] if m["name"] == "bootstrap")
    assert envoy_mount["readOnly"] is True
    assert envoy["args"][envoy["args"].index("-c") + 1] == output
    assert output.startswith(envoy_mount["mountPath"] + "/")
    for container in (enroll, envoy):
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert container["resources"]["requests"] == container["resources"]["limits"]


@pytest.mark.parametrize("case", CASES)
def test_an_enrolled_pods_bootstrap_is_accepted_by_envoy(case, tmp_path):
    from provisioning.runtimes.kubernetes import envoy_pod

    cluster, _, gateway = load(case)
    bootstrap = envoy_pod.pod_bootstrap(
        gateway_key=gateway.key, pod_name="envoy-x-1", token="gxds_abcdefgh_" + "x" * 43,
        xds_address=cluster.xds_address, xds_port=cluster.xds_port, ports=gateway.ports,
    )  # fmt: skip
    assert bootstrap["node"]["id"] == f"{gateway.key}/envoy-x-1"
    # Usage counters go to the xDS server, with the pod's xDS token, cumulative, every 10 s.
    (sink,) = bootstrap["stats_sinks"]
    config = sink["typed_config"]
    assert config["grpc_service"]["envoy_grpc"]["cluster_name"] == "xds"
    assert config["grpc_service"]["initial_metadata"] == [
        {"key": "authorization", "value": "Bearer gxds_abcdefgh_" + "x" * 43}
    ]
    assert (config["report_counters_as_deltas"], config["report_histograms_as_deltas"]) == (
        False, False
    )  # fmt: skip
    assert bootstrap["stats_flush_interval"] == "10s"
    path = tmp_path / "bootstrap.yaml"
    path.write_text(yaml.safe_dump(bootstrap))
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path), "--service-node",
         f"{gateway.key}/envoy-x-1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert bootstrap["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    # The probe port Envoy listens on is the one the Deployment probes.
    deployment = next(o for o in render_gateway(gateway, cluster) if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    ready = next(p for p in container["ports"] if p["name"] == names.READY_PORT_NAME)
    ports = [
        listener["address"]["socket_address"]["port_value"]
        for listener in bootstrap["static_resources"]["listeners"]
    ]
    assert ports == [ready["containerPort"]]


def test_port_names_stay_unique_whatever_the_listeners_are_called():
    from dataclasses import replace

    from provisioning.runtimes.kubernetes.inputs import ListenerPort

    cluster, _, gateway = load("single-replica-load-balancer")
    listeners = (
        ListenerPort("port-443", 80, "HTTP"),  # looks like another port's fallback name
        ListenerPort("a-listener-name-too-long-for-a-port", 443, "HTTP"),
        ListenerPort("ready", 8080, "HTTP"),  # the probe port's name
        ListenerPort("web", 8443, "HTTP"),
    )
    objects = {o["kind"]: o for o in render_gateway(replace(gateway, listeners=listeners), cluster)}
    container = objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    container_names = [p["name"] for p in container["ports"]]
    assert container_names == ["port-80", "port-443", "port-8080", "web", "ready"]
    service_names = [p["name"] for p in objects["Service"]["spec"]["ports"]]
    assert service_names == container_names[:-1]


def _opens(block: dict, network) -> bool:
    """Whether an ipBlock admits some address of ``network``."""
    cidr = ipaddress.ip_network(block["cidr"])
    if cidr.version != network.version or not cidr.overlaps(network):
        return False
    excepted = [ipaddress.ip_network(e) for e in block.get("except", [])]
    return not any(network.subnet_of(e) for e in excepted if e.version == network.version)


@pytest.mark.parametrize("case", CASES)
def test_no_backend_rule_opens_a_denied_range(case):
    """Only the DNS, xDS and rate limit service rules may lead into the platform's ranges or
    the safe defaults' ones; the operator's exceptions are the only other way in."""
    cluster, _, gateway = load(case)
    policy = next(o for o in render_gateway(gateway, cluster) if o["kind"] == "NetworkPolicy")
    denied = [n for n, _ in ALWAYS_DENIED_NETWORKS]
    denied += [ipaddress.ip_network(c) for c in cluster.denied_cidrs]
    allowed = [ipaddress.ip_network(c) for c in cluster.allowed_cidrs]
    dns, xds, *backends = policy["spec"]["egress"]
    assert "to" not in dns and {p["port"] for p in dns["ports"]} == {53}
    assert xds["ports"] == [{"protocol": "TCP", "port": cluster.xds_port}]
    if gateway.rate_limit_service:  # the platform's rate limit service, as the xDS server
        rate_limit, *backends = backends
        assert rate_limit["ports"] == [{"protocol": "TCP", "port": gateway.rate_limit_service[1]}]
    for rule in backends:
        assert rule["to"], rule  # never a port open to every address
        for peer in rule["to"]:
            block = peer["ipBlock"]
            for network in denied:
                if _opens(block, network):
                    cidr = ipaddress.ip_network(block["cidr"])
                    assert any(cidr.subnet_of(a) for a in allowed if a.version == cidr.version)
                    assert not any(_opens(block, n) for n, _ in ALWAYS_DENIED_NETWORKS)


def test_refused_backends_get_no_egress_and_exceptions_stay_open():
    cluster, _, gateway = load("egress-policy")
    policy = next(o for o in render_gateway(gateway, cluster) if o["kind"] == "NetworkPolicy")
    blocks = [peer["ipBlock"]["cidr"] for rule in policy["spec"]["egress"]
              for peer in rule.get("to", [])]  # fmt: skip
    assert "203.0.113.10/32" in blocks and "192.168.7.20/32" in blocks
    for refused in ("10.244.3.9/32", "169.254.169.254/32", "192.168.1.5/32"):
        assert refused not in blocks
    assert not any("ffff" in block for block in blocks)
    assert "10.96.0.40/32" in blocks  # the xDS server, inside the platform's service range
