"""A hostile tenant on the Kubernetes runtime, against the real ``xds_server`` process and the
API server double: a pod gets an xDS token only by proving, with a projected service account
token the cluster vouches for, that it is a running pod of the gateway it names; the token
streams only as that pod, is replaced when the pod enrolls again and revoked when the pod goes.
"""

import asyncio
import os
import stat
import subprocess
import sys
from datetime import timedelta

import grpc
import pytest
import yaml
from django.utils import timezone

from gateways import services
from provisioning import tasks
from provisioning.models import KubernetesCluster, PodCredential
from provisioning.reconcile import reconcile
from provisioning.runtimes.kubernetes import driver, names
from provisioning.xds import enroll as client
from provisioning.xds.enrollment import EnrollmentService
from tests.conftest import make_org
from tests.delivery.helpers import ACTOR
from tests.kubernetes.apiserver_double import ApiServerDouble
from tests.provisioning.harness import free_port
from tests.runtime.stack import ROOT, Stack
from tests.security.test_xds_credentials import REFUSED, stream
from tests.xds.harness import running_envoy, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

DENIED = grpc.StatusCode.PERMISSION_DENIED


@pytest.fixture
def double():
    server = ApiServerDouble().start()
    yield server
    server.stop()


@pytest.fixture
def xds(tmp_path, monkeypatch):
    """The real ``manage.py xds_server`` alone (every test call comes from 127.0.0.1: the
    per-address limit is raised here and shown on its own below)."""
    monkeypatch.setattr(tasks, "send_reconcile", lambda *args, **kwargs: None)
    monkeypatch.setenv("GANTRY_XDS_ENROLL_ADDRESS_BURST", "1000")
    monkeypatch.setenv("GANTRY_XDS_ENROLL_GATEWAY_BURST", "1000")
    stack = Stack(tmp_path)
    stack.xds.start()
    stack.wait_for_xds()
    yield stack
    stack.xds.stop()


def kubeconfig(double) -> str:
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "double", "cluster": {"server": double.host}}],
        "users": [{"name": "gantry", "user": {"token": "operator-token"}}],
        "contexts": [{"name": "double", "context": {"cluster": "double", "user": "gantry"}}],
        "current-context": "double",
    })  # fmt: skip


class Gateway:
    """A Kubernetes gateway converged onto the double, whose pods a test places there."""

    def __init__(self, double, tenant, name: str, listener_port: int):
        self.double, self.tenant, self.name = double, tenant.slug, name
        listener = {"name": "http", "protocol": "HTTP", "port": listener_port}
        spec = {"runtime": "kubernetes", "replicas": 2, "listeners": [listener]}
        self.row = services.create_gateway(ACTOR, tenant, name, spec)
        # Compiles, validates and stores a revision, then applies the objects to the double.
        assert reconcile(self.row.pk).result == "created"
        self.namespace = names.namespace(self.tenant)
        self.account = names.workload(name)

    @property
    def key(self) -> str:
        return f"{self.tenant}/{self.name}"

    def pod(self, name: str, labels: dict | None = None) -> str:
        labels = names.gateway_labels(self.tenant, self.name) if labels is None else labels
        self.double.add_pod(self.namespace, name, labels, self.account)
        return name

    def token(self, pod: str, **kwargs) -> str:
        return self.double.mint_token(self.namespace, pod, **kwargs)


@pytest.fixture
def gateways(double, xds, plan):
    cluster = KubernetesCluster.objects.create(
        name="double", kubeconfig=kubeconfig(double), xds_address="127.0.0.1",
        xds_port=xds.xds_port,
    )  # fmt: skip
    acme, globex = make_org("acme").tenant, make_org("globex").tenant
    cluster.plans.add(acme.plan, globex.plan)
    return (
        Gateway(double, acme, "edge", free_port()),
        Gateway(double, globex, "web", free_port()),
    )


def target(xds) -> str:
    return f"127.0.0.1:{xds.xds_port}"


def enroll(xds, gateway: str, pod: str, token: str) -> dict:
    return client.call(target(xds), {"gateway": gateway, "pod": pod, "token": token}, 10)


def refusal(xds, gateway: str, pod: str, token: str) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        enroll(xds, gateway, pod, token)
    return caught.value.code(), caught.value.details()


def xds_token(answer: dict) -> str:
    bootstrap = yaml.safe_load(answer["bootstrap"])
    service = bootstrap["dynamic_resources"]["ads_config"]["grpc_services"][0]
    return service["initial_metadata"][0]["value"].removeprefix("Bearer ")


def test_a_pod_enrolls_and_its_token_streams_only_as_that_pod(xds, gateways):
    acme, globex = gateways
    first, second = acme.pod("envoy-edge-6f7c9-aaaaa"), acme.pod("envoy-edge-6f7c9-bbbbb")
    web = globex.pod("envoy-web-5d4b8-ccccc")
    answer = enroll(xds, acme.key, first, acme.token(first))
    assert answer["nodeId"] == f"acme/edge/{first}"
    assert yaml.safe_load(answer["bootstrap"])["node"]["id"] == answer["nodeId"]
    token = xds_token(answer)
    other = xds_token(enroll(xds, acme.key, second, acme.token(second)))
    assert token != other
    web_token = xds_token(enroll(xds, globex.key, web, globex.token(web)))
    address = target(xds)
    assert stream(address, token, f"acme/edge/{first}") == "served"
    assert stream(address, token, f"acme/edge/{second}") == REFUSED  # another pod
    assert stream(address, token, "acme/edge/envoy-edge-6f7c9-zzzzz") == REFUSED  # no such pod
    assert stream(address, token, f"globex/web/{web}") == REFUSED  # another gateway
    assert stream(address, web_token, f"acme/edge/{first}") == REFUSED
    assert stream(address, web_token, f"globex/web/{web}") == "served"
    # Only hashes are kept, bound to the pod's uid.
    stored = str(list(PodCredential.objects.values()))
    assert token not in stored and other not in stored
    uid = acme.double.objects[("Pod", "gantry-acme", first)]["metadata"]["uid"]
    assert PodCredential.objects.get(pod_name=first).pod_uid == uid


def test_a_token_of_another_gateways_pod_cannot_enroll(xds, gateways):
    acme, globex = gateways
    web = globex.pod("envoy-web-5d4b8-ccccc")
    acme.pod("envoy-edge-6f7c9-aaaaa")
    code, message = refusal(xds, acme.key, web, globex.token(web))
    assert code == DENIED
    assert "system:serviceaccount:gantry-globex:envoy-web" in message
    assert "system:serviceaccount:gantry-acme:envoy-edge" in message
    # Nor for a pod of the gateway it names, under that pod's name.
    code, message = refusal(xds, acme.key, "envoy-edge-6f7c9-aaaaa", globex.token(web))
    assert code == DENIED
    assert not PodCredential.objects.filter(gateway=acme.row).exists()


def test_every_other_proof_is_refused_with_its_reason(xds, gateways, double):
    acme, _ = gateways
    pod, neighbour = acme.pod("envoy-edge-6f7c9-aaaaa"), acme.pod("envoy-edge-6f7c9-bbbbb")
    cases = {
        "wrong audience": (
            (acme.key, pod, acme.token(pod, audiences=("https://kubernetes.default.svc",))),
            grpc.StatusCode.UNAUTHENTICATED, "gantry-xds",
        ),
        "expired": (
            (acme.key, pod, acme.token(pod, expires_in=-1)),
            grpc.StatusCode.UNAUTHENTICATED, "expired",
        ),
        "not a token": ((acme.key, pod, "eyJhbGciOi.forged.x"), grpc.StatusCode.UNAUTHENTICATED,
                        "does not accept"),
        "another pod's name": (
            (acme.key, neighbour, acme.token(pod)), DENIED,
            f"issued to pod '{pod}', not '{neighbour}'",
        ),
        "not a Kubernetes gateway": ((f"{acme.tenant}/nothing", pod, acme.token(pod)), DENIED,
                                     "no Kubernetes gateway"),
    }  # fmt: skip
    for name, (request, code, reason) in cases.items():
        got, message = refusal(xds, *request)
        assert (got, reason in message) == (code, True), (name, got, message)
    # A pod of the namespace, with the gateway's service account but not its labels.
    stray = acme.pod("stray", labels={"app": "anything"})
    code, message = refusal(xds, acme.key, stray, acme.token(stray))
    assert (code, message) == (DENIED, "pod 'stray' does not carry the gateway's labels")
    # A pod being deleted.
    token = acme.token(neighbour)
    double.terminate_pod("gantry-acme", neighbour)
    code, message = refusal(xds, acme.key, neighbour, token)
    assert (code, message) == (DENIED, f"pod '{neighbour}' is terminating")
    # A pod that no longer exists: the cluster no longer vouches for its token.
    token = acme.token(pod)
    double.delete("Pod", "gantry-acme", pod)
    code, message = refusal(xds, acme.key, pod, token)
    assert code == grpc.StatusCode.UNAUTHENTICATED and "not found" in message
    assert not PodCredential.objects.exists()
    log = xds.xds.output()
    assert "refused enrollment of pod 'stray' for 'acme/edge'" in log


def test_enrolling_again_rotates_and_a_gone_pods_token_is_revoked(xds, gateways, double):
    acme, _ = gateways
    pod, other = acme.pod("envoy-edge-6f7c9-aaaaa"), acme.pod("envoy-edge-6f7c9-bbbbb")
    address, node = target(xds), f"acme/edge/{pod}"
    old = xds_token(enroll(xds, acme.key, pod, acme.token(pod)))
    new = xds_token(enroll(xds, acme.key, pod, acme.token(pod)))  # the same pod restarted
    assert stream(address, old, node) == REFUSED
    assert stream(address, new, node) == "served"
    kept = xds_token(enroll(xds, acme.key, other, acme.token(other)))
    # Tokens issued while the status sync reads the pods are spared until its next run;
    # these were issued well before it.
    PodCredential.objects.update(issued_at=timezone.now() - timedelta(minutes=1))
    double.delete("Pod", "gantry-acme", pod)
    acme.row.refresh_from_db()
    driver.converge(acme.row)  # what every reconcile and the periodic heal run
    assert stream(address, new, node) == REFUSED
    assert stream(address, kept, f"acme/edge/{other}") == "served"
    # The gateway deleted: its pods' tokens go with it.
    services.delete_gateway(ACTOR, acme.row)
    assert stream(address, kept, f"acme/edge/{other}") == REFUSED


def test_envoy_runs_on_the_bootstrap_its_pod_enrolled_for(xds, gateways, tmp_path):
    """The init container's program (a subprocess, as in the pod) writes the bootstrap; a
    real Envoy started on it gets its gateway's listener from the xDS server."""
    acme, _ = gateways
    pod = acme.pod("envoy-edge-6f7c9-aaaaa")
    token_file, output = tmp_path / "token", tmp_path / "bootstrap.yaml"
    token_file.write_text(acme.token(pod))
    result = subprocess.run(
        [sys.executable, "-m", "provisioning.xds.enroll", "--xds", target(xds),
         "--gateway", acme.key, "--token-file", str(token_file), "--output", str(output),
         "--deadline", "20"],
        cwd=ROOT, env={"PATH": os.environ["PATH"], "POD_NAME": pod},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"enrolled as acme/edge/{pod}" in result.stderr
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    bootstrap = yaml.safe_load(output.read_text())
    # The pod's admin and probe ports are its own; on this shared machine, free ones.
    bootstrap["admin"]["address"]["socket_address"]["port_value"] = free_port()
    probe = bootstrap["static_resources"]["listeners"][0]["address"]["socket_address"]
    probe["port_value"] = free_port()
    with running_envoy(bootstrap) as envoy:
        wait_for(lambda: envoy.dynamic_listener_names(), timeout=20, message="a listener")
        assert envoy.dynamic_listener_names()
    assert bootstrap["node"]["id"] == f"acme/edge/{pod}"


def test_the_init_container_exits_non_zero_with_the_reason_when_refused(xds, gateways, tmp_path):
    acme, globex = gateways
    web = globex.pod("envoy-web-5d4b8-ccccc")
    token_file, output = tmp_path / "token", tmp_path / "bootstrap.yaml"
    token_file.write_text(globex.token(web))
    result = subprocess.run(
        [sys.executable, "-m", "provisioning.xds.enroll", "--xds", target(xds),
         "--gateway", acme.key, "--token-file", str(token_file), "--output", str(output)],
        cwd=ROOT, env={"PATH": os.environ["PATH"], "POD_NAME": web},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == client.REFUSED_EXIT
    assert "refused pod envoy-web-5d4b8-ccccc: PERMISSION_DENIED" in result.stderr
    assert not output.exists()


def test_the_init_containers_program_needs_no_django():
    check = (
        "import sys, provisioning.xds.enroll; "
        "sys.exit(sorted(m for m in sys.modules if m.split('.')[0] == 'django') != [])"
    )
    result = subprocess.run([sys.executable, "-c", check], cwd=ROOT, timeout=60,
                            env={"PATH": os.environ["PATH"]})  # fmt: skip
    assert result.returncode == 0


class FakeContext:
    def __init__(self, peer: str):
        self._peer = peer

    def peer(self):
        return self._peer

    async def abort(self, code, message):
        raise grpc.RpcError(code, message)


def test_enrollment_attempts_are_limited_before_any_cluster_is_asked():
    now = [0.0]
    asked = []
    service = EnrollmentService(
        enroll_function=lambda raw: asked.append(raw) or {"nodeId": "x", "bootstrap": ""},
        address_burst=5, gateway_burst=8, clock=lambda: now[0],
    )  # fmt: skip

    def attempt(peer: str, gateway: str = "acme/edge"):
        request = {"gateway": gateway, "pod": "p", "token": "t"}
        try:
            asyncio.run(service.Enroll(request, FakeContext(f"ipv4:{peer}:40000")))
            return "asked"
        except grpc.RpcError as error:
            return error.args[0]

    results = [attempt("10.0.0.7") for _ in range(7)]
    assert results == ["asked"] * 5 + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2
    # Other addresses go on, until the gateway's own allowance is spent.
    assert [attempt(f"10.0.0.{i}") for i in range(10, 14)] == ["asked"] * 3 + [
        grpc.StatusCode.RESOURCE_EXHAUSTED
    ]
    assert len(asked) == 8
    now[0] += 5  # one attempt per address every 5 s, two per gateway a second
    assert attempt("10.0.0.7") == "asked"
