"""``manage.py render_manifests``: a gateway's manifests from the database, token withheld."""

from io import StringIO

import pytest
import yaml
from django.core.management import CommandError, call_command
from django.test import override_settings

from gateways import services as gateway_services
from gateways.models import Backend, Policy
from provisioning.models import KubernetesCluster, PodCredential
from tests.kubernetes import schemas
from tests.kubernetes.conftest import ACTOR


def render(*args) -> list[dict]:
    out = StringIO()
    call_command("render_manifests", *args, stdout=out)
    return list(yaml.safe_load_all(out.getvalue()))


def test_it_prints_the_tenant_and_gateway_objects(org, k8s_gateway):
    objects = render("--tenant", "acme", "--gateway", "edge")
    kinds = [o["kind"] for o in objects]
    assert kinds[:4] == ["Namespace", "ResourceQuota", "LimitRange", "NetworkPolicy"]
    assert {"ServiceAccount", "Deployment", "Service", "PodDisruptionBudget"} <= set(kinds)
    assert "Secret" not in kinds
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 2
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "4Gi"}  # medium
    assert all(o["metadata"].get("namespace", "gantry-acme") == "gantry-acme" for o in objects)


def test_it_never_issues_or_prints_a_token(org, k8s_gateway):
    objects = render("--tenant", "acme", "--gateway", "edge")
    assert "gxds_" not in yaml.safe_dump_all(objects)
    assert not PodCredential.objects.filter(gateway=k8s_gateway).exists()


def test_its_output_is_valid_kubernetes(org, k8s_gateway):
    version = schemas.newest_versions()[-1]
    for obj in render("--tenant", "acme", "--gateway", "edge"):
        assert schemas.errors(obj, version) == [], obj["kind"]


def test_backends_of_the_routes_open_egress(org, k8s_gateway):
    gateway_services.create_backend(
        ACTOR, org.tenant, "app", {"endpoints": [{"ip": {"address": "10.1.2.3", "port": 9000}}]}
    )
    gateway_services.create_route(
        ACTOR, k8s_gateway, "web", {"rules": [{"backendRefs": [{"name": "app"}]}]}
    )
    policy = next(
        o
        for o in render("--tenant", "acme", "--gateway", "edge")
        if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "envoy-edge"
    )
    assert {
        "ports": [{"protocol": "TCP", "port": 9000}],
        "to": [{"ipBlock": {"cidr": "10.1.2.3/32"}}],
    } in policy["spec"]["egress"]


def egress_of(objects: list[dict]) -> list[dict]:
    return next(
        o for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "envoy-edge"
    )["spec"]["egress"]


@override_settings(GANTRY_EGRESS_PLATFORM_CIDRS=["10.244.0.0/16"])
def test_a_stored_refused_backend_opens_no_egress_and_the_platform_is_excepted(org, k8s_gateway):
    """A row stored before the policy; extAuth services and JWKS hosts open egress too."""
    backend = {"endpoints": [{"ip": {"address": "10.1.2.3", "port": 9000}}]}
    for name in ("app", "meta", "auth"):
        gateway_services.create_backend(ACTOR, org.tenant, name, backend)
    Backend.objects.filter(name="meta").update(
        spec={"endpoints": [{"ip": {"address": "10.244.0.7", "port": 8000}}]}
    )
    Backend.objects.filter(name="auth").update(
        spec={"endpoints": [{"fqdn": {"hostname": "auth.example", "port": 8443}}]}
    )
    rules = [{"backendRefs": [{"name": "app"}]}, {"backendRefs": [{"name": "meta"}]}]
    gateway_services.create_route(ACTOR, k8s_gateway, "web", {"rules": rules})
    Policy.objects.create(gateway=k8s_gateway, name="guard", kind=Policy.Kind.SECURITY, spec={
        "targetRefs": [{"kind": "Gateway", "name": "edge"}],
        "extAuth": {"http": {"backendRefs": [{"name": "auth"}]}},
        "jwt": {"providers": [{"name": "idp", "remoteJWKS": {"uri": "https://idp.example/k"}}]},
    })  # fmt: skip
    egress = egress_of(render("--tenant", "acme", "--gateway", "edge"))
    blocks = [peer["ipBlock"] for rule in egress for peer in rule.get("to", [])]
    assert {"cidr": "10.1.2.3/32"} in blocks
    assert not any(block["cidr"].startswith("10.244.") for block in blocks)
    ports = {rule["ports"][0]["port"]: rule for rule in egress}
    for port in (8443, 443):  # by name: anywhere but the denied ranges
        assert "10.244.0.0/16" in ports[port]["to"][0]["ipBlock"]["except"]
    assert 8000 not in ports


def test_it_uses_the_named_cluster(org, k8s_gateway):
    KubernetesCluster.objects.create(
        name="lab", in_cluster=True, exposure="NodePort", xds_address="10.0.0.9"
    )
    service = next(
        o
        for o in render("--tenant", "acme", "--gateway", "edge", "--cluster", "lab")
        if o["kind"] == "Service"
    )
    assert service["spec"]["type"] == "NodePort"


def test_unknown_gateway_cluster_or_plan_without_cluster_are_errors(org, other_org, k8s_gateway):
    with pytest.raises(CommandError, match="no gateway"):
        render("--tenant", "acme", "--gateway", "nope")
    with pytest.raises(CommandError, match="no gateway"):
        render("--tenant", "globex", "--gateway", "edge")  # another tenant's name
    with pytest.raises(CommandError, match="no cluster 'nope'"):
        render("--tenant", "acme", "--gateway", "edge", "--cluster", "nope")
    gateway_services.create_gateway(ACTOR, other_org.tenant, "edge", {})
    KubernetesCluster.objects.all().delete()
    with pytest.raises(CommandError, match="no Kubernetes cluster is registered for plan"):
        render("--tenant", "globex", "--gateway", "edge")
