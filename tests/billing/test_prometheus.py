"""GET /metrics: who may read it, and that its series say what the replicas counted."""

import uuid

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from gateways import services
from provisioning import metering
from provisioning.models import ReplicaIncarnation
from tests.billing.test_rollups import counters
from tests.conftest import make_org, make_user
from tests.delivery.helpers import ACTOR

pytestmark = pytest.mark.django_db
TOKEN = "scrape-token-0123456789"


@pytest.fixture(autouse=True)
def _token(settings):
    settings.GANTRY_METRICS_TOKEN = TOKEN


def scrape(token: str = TOKEN) -> dict[str, list]:
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    families = text_string_to_metric_families(response.content.decode())
    return {family.name: family.samples for family in families}


def values(samples, name: str) -> dict[tuple, float]:
    return {
        tuple(sorted(s.labels.items())): s.value for s in samples if s.name == name
    }  # fmt: skip


def replica_run(gateway, node: str) -> uuid.UUID:
    incarnation = uuid.uuid4()
    metering.open_incarnation(incarnation, gateway.pk, node, "small", 4242, "/runtime")
    return incarnation


def test_each_live_replica_reports_its_newest_counters_and_a_stopped_one_leaves(org):
    edge = services.create_gateway(ACTOR, org.tenant, "edge", {"replicas": 2})
    first, second = replica_run(edge, "acme/edge/0"), replica_run(edge, "acme/edge/1")
    metering.record_sample(first, 0, metering.timezone.now(), counters(ok=3, client=1))
    metering.record_sample(first, 1, metering.timezone.now(), counters(ok=7, client=2, sent=900))
    metering.record_sample(second, 0, metering.timezone.now(), counters(server=4, received=50))

    found = scrape()
    responses = values(found["gantry_gateway_responses"], "gantry_gateway_responses_total")
    key = {"tenant": "acme", "gateway": "edge", "port": "80"}

    def at(replica, kind):
        return responses[tuple(sorted({**key, "replica": replica, "class": kind}.items()))]

    assert (at("0", "2xx"), at("0", "4xx"), at("0", "5xx")) == (7, 2, 0)  # the newest sample
    assert (at("1", "2xx"), at("1", "5xx")) == (0, 4)
    assert len(responses) == 2 * 5  # two replicas × five classes, nothing else
    sent = values(found["gantry_gateway_sent_bytes"], "gantry_gateway_sent_bytes_total")
    assert sent[tuple(sorted({**key, "replica": "0"}.items()))] == 900
    running = values(found["gantry_replicas_running"], "gantry_replicas_running")
    assert running == {(("runtime", "local"), ("size", "small")): 2}

    metering.close_incarnation(second, ReplicaIncarnation.Stop.SCALED_DOWN)
    found = scrape()
    responses = values(found["gantry_gateway_responses"], "gantry_gateway_responses_total")
    assert {dict(k)["replica"] for k in responses} == {"0"}


def test_platform_series_count_tenants_and_gateways_by_state(org, other_org):
    services.create_gateway(ACTOR, org.tenant, "edge", {})
    services.create_gateway(ACTOR, other_org.tenant, "web", {})
    from tenants import services as tenant_services

    tenant_services.update_tenant(ACTOR, other_org.tenant, {"suspended": True})
    found = scrape()
    tenants = values(found["gantry_tenants"], "gantry_tenants")
    assert tenants == {(("suspended", "false"),): 1, (("suspended", "true"),): 1}
    gateways = values(found["gantry_gateways"], "gantry_gateways")
    assert gateways == {(("phase", "Pending"), ("runtime", "local")): 2}


def test_only_the_scrape_token_or_a_staff_sign_in_reads_it(org):
    anonymous = Client().get("/metrics")
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"].startswith("Bearer")
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    # A tenant's own API token is not a scrape token.
    tenant_token = f"Bearer {org.tokens['owner']}"
    assert Client().get("/metrics", HTTP_AUTHORIZATION=tenant_token).status_code == 403
    member = Client()
    member.force_login(org.users["owner"])
    assert member.get("/metrics").status_code == 403
    operator = Client()
    operator.force_login(make_user("operator", is_staff=True))
    assert operator.get("/metrics").status_code == 200
    assert Client().post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405


def test_with_no_token_configured_no_bearer_gets_in(settings, org):
    settings.GANTRY_METRICS_TOKEN = ""
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 403


def test_a_deleted_tenants_runs_leave_the_exposition(db):
    gone = make_org("gone")
    edge = services.create_gateway(ACTOR, gone.tenant, "edge", {})
    run = replica_run(edge, "gone/edge/0")
    metering.record_sample(run, 0, metering.timezone.now(), counters(ok=1))
    assert scrape()["gantry_gateway_responses"]
    gone.tenant.delete()
    assert not scrape()["gantry_gateway_responses"]
