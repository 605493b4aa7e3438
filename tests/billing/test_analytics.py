"""Analytics rollups: per gateway × route × consumer × minute counts from the access log
entries, the hours made of them, and the metrics API answering per route and per consumer."""

import uuid
from datetime import timedelta

import hypothesis
import pytest
from django.utils import timezone
from hypothesis import strategies as st

from billing import analytics
from billing.analytics import MINUTE, bucket, floor
from billing.models import AnalyticsHour, AnalyticsMinute
from gateways import services
from provisioning.metering import percentile
from provisioning.models import AccessLogEntry
from tenants.roles import Role
from tests.delivery.helpers import ACTOR

pytestmark = pytest.mark.django_db
_offsets = iter(range(10**9))


def entry(tenant, at, route="", consumer="", status=200, took=5, upstream=3, gateway="edge",
          received=10, sent=100) -> AccessLogEntry:  # fmt: skip
    return AccessLogEntry.objects.create(
        tenant=tenant, gateway_name=gateway, replica=0, incarnation=uuid.uuid4(), segment=0,
        offset=next(_offsets), timestamp=at, status=status, route=route, consumer=consumer,
        bytes_received=received, bytes_sent=sent, duration_ms=took, upstream_ms=upstream,
    )  # fmt: skip


def iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def metrics(org, gateway="edge", **params):
    answer = org.client(Role.VIEWER).get(
        f"/api/v1/tenants/{org.tenant.slug}/gateways/{gateway}/metrics/", params
    )
    return answer


def rows() -> dict:
    return {
        (r.tenant_id, r.gateway_name, r.route, r.consumer, r.start): (
            r.requests,
            r.responses_2xx,
            r.responses_4xx,
            r.responses_5xx,
            r.bytes_sent,
            r.latency,
            r.upstream_latency,
        )  # fmt: skip
        for r in AnalyticsMinute.objects.all()
    }


@pytest.mark.parametrize(
    ("milliseconds", "lower"),
    [(0, "0"), (7, "7"), (99, "99"), (100, "100"), (129, "120"), (1234, "1200"), (98765, "98000")],
)
def test_latency_buckets_keep_two_significant_digits(milliseconds, lower):
    assert bucket(milliseconds) == lower


def test_minutes_count_each_route_and_consumer_and_twice_run_changes_nothing(org, other_org):
    base = floor(timezone.now() - timedelta(minutes=30), MINUTE)
    tenant = org.tenant
    for status, took in ((200, 4), (200, 6), (404, 1), (503, 250), (0, 1234)):
        entry(tenant, base + timedelta(seconds=5), "api", "alice", status, took, upstream=None)
    entry(tenant, base + timedelta(seconds=70), "api", "bob", 201)
    entry(tenant, base + timedelta(seconds=80), "", "", 404, sent=7)
    entry(other_org.tenant, base + timedelta(seconds=5), "api", "alice", 500)
    first = analytics.rollup_minutes(base, base + 10 * MINUTE)
    once = rows()
    assert analytics.rollup_minutes(base, base + 10 * MINUTE) == first
    assert rows() == once
    alice = once[(tenant.pk, "edge", "api", "alice", base)]
    assert alice[:5] == (5, 2, 1, 1, 500)  # the unanswered request (status 0) is in requests
    assert alice[5] == {"4": 1, "6": 1, "1": 1, "250": 1, "1200": 1} and alice[6] == {}
    assert once[(tenant.pk, "edge", "api", "bob", base + MINUTE)][:2] == (1, 1)
    assert once[(tenant.pk, "edge", "", "", base + MINUTE)][:5] == (1, 0, 1, 0, 7)
    assert once[(other_org.tenant.pk, "edge", "api", "alice", base)][3] == 1
    hour = AnalyticsHour.objects.get(tenant=tenant, route="api", consumer="alice")
    assert (hour.start, hour.requests) == (floor(base, timedelta(hours=1)), 5)


def test_a_late_entry_is_counted_by_the_next_periodic_run(org):
    now = timezone.now()
    old = floor(now - timedelta(hours=3), MINUTE)
    entry(org.tenant, now - timedelta(minutes=2), "api", "alice")
    analytics.rollup_recent(now)
    assert AnalyticsMinute.objects.filter(start__lt=now - timedelta(hours=1)).count() == 0
    entry(org.tenant, old + timedelta(seconds=1), "api", "alice", 500)  # read late by the agent
    entry(org.tenant, old + timedelta(minutes=7), "api", "", 404)
    entry(org.tenant, old - timedelta(hours=1), "", "bob", 200)  # another hour
    analytics.rollup_recent(now + MINUTE)
    analytics.rollup_recent(now + 2 * MINUTE)
    late = AnalyticsMinute.objects.get(start=old)
    assert (late.requests, late.responses_5xx) == (1, 1)
    assert AnalyticsMinute.objects.get(start=old + 7 * MINUTE).responses_4xx == 1
    assert AnalyticsMinute.objects.get(consumer="bob").requests == 1
    assert AnalyticsMinute.objects.filter(start__gte=now - 3 * MINUTE).get().requests == 1
    assert sum(AnalyticsHour.objects.values_list("requests", flat=True)) == 4


def test_old_rows_are_pruned_minutes_after_a_day_hours_after_the_usage_retention(org, settings):
    now = timezone.now()
    for at in (now - timedelta(hours=30), now - timedelta(hours=2), now - timedelta(days=50)):
        entry(org.tenant, at)
        analytics.rollup_minutes(at, at + MINUTE)
    assert analytics.prune(now) == (2, 1)
    assert AnalyticsMinute.objects.count() == 1 and AnalyticsHour.objects.count() == 2


EVENTS = st.lists(
    st.tuples(
        st.integers(0, 179),  # the second within three minutes
        st.sampled_from(["", "api", "web"]),
        st.sampled_from(["", "alice"]),
        st.sampled_from([0, 101, 200, 302, 404, 500]),
        st.one_of(st.none(), st.integers(0, 50_000)),
    ),
    max_size=25,
)


@hypothesis.settings(
    max_examples=25, deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)  # fmt: skip
@hypothesis.given(early=EVENTS, late=EVENTS)
def test_the_database_sums_agree_with_the_reference_whatever_arrives_late(org, early, late):
    AccessLogEntry.objects.all().delete()
    base = floor(timezone.now() - timedelta(minutes=20), MINUTE)
    for second, route, consumer, status, took in early:
        entry(org.tenant, base + timedelta(seconds=second), route, consumer, status, took, took)
    analytics.rollup_minutes(base, base + 3 * MINUTE)
    for second, route, consumer, status, took in late:
        entry(org.tenant, base + timedelta(seconds=second), route, consumer, status, took, None)
    analytics.rollup_minutes(base, base + 3 * MINUTE)
    analytics.rollup_minutes(base, base + 3 * MINUTE)
    expected = analytics.counts_in_python(base, base + 3 * MINUTE)
    found = {
        (r.tenant_id, r.gateway_name, r.route, r.consumer, r.start): r
        for r in AnalyticsMinute.objects.all()
    }
    assert set(found) == set(expected)
    for key, row in expected.items():
        for name in analytics.SUMS:
            assert getattr(found[key], name) == row[name], name
        assert found[key].latency == row["latency"]
        assert found[key].upstream_latency == row["upstream_latency"]
    assert sum(r.requests for r in found.values()) == len(early) + len(late)


def test_metrics_per_route_and_consumer_with_upstream_latency_and_unknown_names_zero(org):
    gateway = services.create_gateway(ACTOR, org.tenant, "edge", {})
    base = floor(timezone.now() - timedelta(minutes=20), MINUTE)
    for took, upstream in ((10, 8), (20, 15), (30, 25), (40, 35)):
        entry(org.tenant, base + timedelta(seconds=1), "api", "alice", 200, took, upstream)
    entry(org.tenant, base + timedelta(seconds=61), "api", "bob", 502, 300, 290)
    entry(org.tenant, base + timedelta(seconds=62), "web", "alice", 404, 2, None)
    analytics.rollup_minutes(base, base + 5 * MINUTE)
    window = {"from": iso(base), "to": iso(base + 3 * MINUTE), "step": "1m"}

    by_route = metrics(org, route="api", **window)
    assert by_route.status_code == 200, by_route.content
    body = by_route.json()
    assert body["route"] == "api" and "consumer" not in body
    points = body["points"]
    assert [p["requests"] for p in points] == [4, 1, 0]
    assert points[1]["errorRate"] == 1.0 and points[1]["responses"]["5xx"] == 1
    buckets = {"10": 1, "20": 1, "30": 1, "40": 1}
    assert points[0]["latencyMs"]["p99"] == round(percentile(buckets, 0.99), 3)
    upstream = {"8": 1, "15": 1, "25": 1, "35": 1}
    assert points[0]["upstreamLatencyMs"]["p50"] == round(percentile(upstream, 0.5), 3)
    assert points[2]["latencyMs"] == {"p50": None, "p95": None, "p99": None}

    alice = metrics(org, consumer="alice", **window).json()["points"]
    assert [p["requests"] for p in alice] == [4, 1, 0]
    assert alice[1]["responses"]["4xx"] == 1 and alice[1]["clientErrorRate"] == 1.0
    both = metrics(org, route="web", consumer="alice", **window).json()["points"]
    assert [p["requests"] for p in both] == [0, 1, 0]
    unknown = metrics(org, route="nope", consumer="", **window).json()["points"]
    assert [p["requests"] for p in unknown] == [0, 0, 0]

    hourly = metrics(org, route="api", step="1h", **{"from": iso(base)}).json()["points"]
    assert sum(p["requests"] for p in hourly) == 5 and "replicaSeconds" not in hourly[0]
    whole = metrics(org, **window).json()["points"]  # the gateway's (counters: none here)
    assert whole[0]["requests"] == 0 and whole[0]["upstreamLatencyMs"]["p50"] is not None
    assert gateway.name == "edge"


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"route": "api", "step": "5x"}, "step", "must be one of"),
        ({"route": "api", "from": "2026-13-01"}, "from", "is not a date"),
        ({"consumer": "c", "from": "-2d"}, "from", ""),
        ({"route": "x" * 300}, "route", "at most 255"),
    ],
)
def test_bad_queries_per_route_name_their_field(org, params, field, words):
    services.create_gateway(ACTOR, org.tenant, "edge", {})
    if params.get("from") == "-2d":
        params["from"] = iso(timezone.now() - timedelta(days=2))
        params["to"] = iso(timezone.now() - timedelta(days=2) + timedelta(hours=1))
        words = "last 26 hours"
    answer = metrics(org, **params)
    assert answer.status_code == 400, answer.content
    fields = {f["path"]: f["message"] for f in answer.json()["error"]["fields"]}
    assert words in fields[field], fields


def test_another_tenants_gateway_is_not_found_per_route_either(org, other_org):
    services.create_gateway(ACTOR, other_org.tenant, "web", {})
    entry(other_org.tenant, timezone.now(), "api", "alice", gateway="web")
    analytics.rollup_recent()
    assert metrics(org, gateway="web", route="api").status_code == 404
    assert metrics(other_org, gateway="web", route="api").status_code == 200


def test_the_python_path_writes_the_same_rows_as_postgresql(org, monkeypatch):
    base = floor(timezone.now() - timedelta(minutes=50), MINUTE)
    for n in range(40):
        at, upstream = base + timedelta(seconds=37 * n), 3 * n if n % 5 else None
        route, consumer, status = ("api", "web", "")[n % 3], ("alice", "")[n % 2], n % 4 * 150
        entry(org.tenant, at, route, consumer, status, 7 * n, upstream)

    def written():
        analytics.rollup_minutes(base, base + 40 * MINUTE)
        return {
            table.__name__: sorted(
                (
                    r.route,
                    r.consumer,
                    r.start,
                    *(getattr(r, name) for name in analytics.SUMS),
                    r.latency,
                    r.upstream_latency,
                )
                for r in table.objects.all()
            )  # fmt: skip
            for table in (AnalyticsMinute, AnalyticsHour)
        }

    in_postgresql = written()
    monkeypatch.setattr(analytics.connection, "vendor", "sqlite")
    assert written() == in_postgresql
    assert sum(row[3] for row in in_postgresql["AnalyticsHour"]) == 40
