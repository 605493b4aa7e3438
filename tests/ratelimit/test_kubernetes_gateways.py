"""Kubernetes gateways with global rate limits: their Envoys reach the platform's rate limit
Service by its name (a DNS cluster), and their NetworkPolicy lets them, only when a policy
has global limits."""

import pytest

from gateways import services
from provisioning.compile import compile_gateway
from provisioning.desired import load_desired_state
from provisioning.runtimes.kubernetes.desired import gateway_input
from tests.conftest import make_org
from tests.delivery.helpers import ACTOR

pytestmark = pytest.mark.django_db
GLOBAL = {"type": "Global", "global": {"rules": [{"limit": {"requests": 5, "unit": "Second"}}]}}
LOCAL = {"type": "Local", "local": {"rules": [{"limit": {"requests": 5, "unit": "Second"}}]}}


def policy(gateway, rate_limit):
    services.create_policy(ACTOR, gateway, "limits", "BackendTrafficPolicy", {
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge"}],
        "rateLimit": rate_limit,
    })  # fmt: skip


@pytest.fixture
def gateway(settings):
    settings.GANTRY_RATELIMIT_KUBERNETES_HOST = "gantry-ratelimit.platform.svc.cluster.local"
    settings.GANTRY_RATELIMIT_PORT = 18099
    tenant = make_org("acme").tenant
    gateway = services.create_gateway(ACTOR, tenant, "edge", {})
    services.create_backend(ACTOR, tenant, "app", {
        "endpoints": [{"ip": {"address": "203.0.113.10", "port": 8080}}]})  # fmt: skip
    services.create_route(ACTOR, gateway, "all", {"rules": [{"backendRefs": [{"name": "app"}]}]})
    return gateway


def test_only_a_gateway_with_global_limits_may_reach_the_service(gateway):
    assert gateway_input(gateway).rate_limit_service is None
    policy(gateway, LOCAL)
    assert gateway_input(gateway).rate_limit_service is None
    services.replace_policy_spec(ACTOR, gateway.policies.get(), {
        "targetRefs": [{"kind": "Gateway", "name": "edge"}], "rateLimit": GLOBAL})  # fmt: skip
    assert gateway_input(gateway).rate_limit_service == (
        "gantry-ratelimit.platform.svc.cluster.local",
        18099,
    )


def test_the_service_is_a_dns_cluster_of_the_compiled_config(gateway):
    policy(gateway, GLOBAL)
    resources = compile_gateway(load_desired_state(gateway.pk))
    cluster = next(c for c in resources.clusters if c["name"] == "platform/ratelimit")
    assert cluster["type"] == "STRICT_DNS"
    address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert address["address"]["socket_address"] == {
        "address": "gantry-ratelimit.platform.svc.cluster.local",
        "port_value": 18099,
    }
