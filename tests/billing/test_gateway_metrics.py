"""GET …/gateways/{g}/metrics/: a gateway's traffic period by period, from the same samples and
rollups as usage and invoices."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from billing import rollups
from billing.metrics import floor
from gateways import services
from provisioning import metering
from tenants.roles import Role
from tests.billing.test_rollups import counters
from tests.delivery.helpers import ACTOR

pytestmark = pytest.mark.django_db
MINUTE = timedelta(minutes=1)


@pytest.fixture
def edge(org):
    return services.create_gateway(ACTOR, org.tenant, "edge", {})


def replica_run(gateway, node="acme/edge/0") -> uuid.UUID:
    incarnation = uuid.uuid4()
    metering.open_incarnation(incarnation, gateway.pk, node, "small", 4242, "/runtime")
    return incarnation


def iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def url(org, gateway="edge", **params) -> str:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return f"/api/v1/tenants/{org.tenant.slug}/gateways/{gateway}/metrics/?{query}"


def test_minute_points_carry_what_each_minute_added_and_empty_minutes_are_zeros(org, edge):
    base = floor(timezone.now() - 20 * MINUTE, MINUTE)
    run = replica_run(edge)
    metering.record_sample(run, 0, base + timedelta(seconds=30), counters(ok=5, sent=500))
    metering.record_sample(run, 1, base + timedelta(seconds=70), counters(ok=8, client=1, sent=500))
    metering.record_sample(run, 2, base + 5 * MINUTE, counters(ok=20, client=1, server=2, sent=800))
    other = services.create_gateway(ACTOR, org.tenant, "other", {})
    metering.record_sample(replica_run(other, "acme/other/0"), 0, base, counters(ok=99))

    answer = org.client(Role.VIEWER).get(
        url(org, step="1m", **{"from": iso(base), "to": iso(base + 10 * MINUTE)})
    )
    assert answer.status_code == 200, answer.content
    points = answer.json()["points"]
    assert [p["start"] for p in points] == [iso(base + n * MINUTE) for n in range(10)]
    assert [p["requests"] for p in points] == [5, 4, 0, 0, 0, 14, 0, 0, 0, 0]
    assert points[1]["responses"]["4xx"] == 1
    assert (points[5]["responses"]["2xx"], points[5]["responses"]["5xx"]) == (12, 2)
    assert points[5]["errorRate"] == round(2 / 14, 6)
    assert (points[0]["bytesSent"], points[5]["bytesSent"]) == (500, 300)
    assert "replicaSeconds" not in points[0]


def test_hourly_points_are_the_rollups_invoices_use_with_replica_seconds(org, edge):
    hour = floor(timezone.now() - timedelta(hours=3), timedelta(hours=1))
    run = replica_run(edge)
    metering.record_sample(run, 0, hour + 10 * MINUTE, counters(ok=7))
    metering.record_sample(run, 1, hour + 70 * MINUTE, counters(ok=10, server=1))
    rollups.rollup(hour, timezone.now())
    answer = org.client(Role.VIEWER).get(url(org, step="1h", **{"from": iso(hour)}))
    assert answer.status_code == 200, answer.content
    points = answer.json()["points"]
    assert [p["requests"] for p in points[:2]] == [7, 4]
    usage = (
        org.client(Role.VIEWER)
        .get(f"/api/v1/tenants/acme/usage/?granularity=hour&from={iso(hour)}")
        .json()["results"]
    )
    assert [row["requests"] for row in usage] == [p["requests"] for p in points if p["requests"]]
    assert all("replicaSeconds" in p for p in points)


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"step": "2m"}, "step", "must be one of 1m, 5m, 1h, 1d"),
        ({"from": "2026-13-01"}, "from", "is not a date"),
        ({"from": "2020-01-01", "step": "1h"}, "step", "at most 1440 points"),
        ({"from": "2020-01-01", "to": "2020-01-02", "step": "1m"}, "from", "last 45 days"),
        ({"from": "2026-12-02", "to": "2026-12-01", "step": "1h"}, "to", "after from"),
    ],
)
def test_bad_queries_name_their_field(org, edge, params, field, words):
    answer = org.client(Role.VIEWER).get(url(org, **params))
    assert answer.status_code == 400, answer.content
    fields = {f["path"]: f["message"] for f in answer.json()["error"]["fields"]}
    assert words in fields[field], fields


def test_another_tenants_gateway_and_an_unknown_one_are_not_found(org, other_org, edge):
    services.create_gateway(ACTOR, other_org.tenant, "web", {})
    assert org.client(Role.OWNER).get(url(org, gateway="web")).status_code == 404
    assert org.client(Role.OWNER).get(url(org, gateway="nope")).status_code == 404
    outsider = other_org.client(Role.OWNER).get(url(org))
    assert outsider.status_code == 404
