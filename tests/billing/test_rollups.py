"""Hourly rollups from samples and replica runs: exact, idempotent, and indifferent to repeated,
late or missing samples; the usage API over them (JSON and CSV)."""

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing import rollups, traffic_sql
from billing.models import ReplicaHour, UsageDay, UsageHour
from billing.rollups import hour_of
from billing.usage import usage_rows
from gateways import services
from provisioning import metering
from provisioning.metering import PortCounters
from provisioning.models import ReplicaIncarnation, UsageSample
from tenants.roles import Role
from tests.delivery.helpers import ACTOR

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)  # a Tuesday, 09:00 UTC


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def counters(ok=0, client=0, server=0, received=0, sent=0, latency=None) -> dict[int, PortCounters]:
    values = dict.fromkeys(metering.COUNTERS, 0)
    values.update(responses_2xx=ok, responses_4xx=client, responses_5xx=server,
                  bytes_received=received, bytes_sent=sent)  # fmt: skip
    return {80: PortCounters(values, dict(latency or {}))}


@pytest.fixture
def gateway(org):
    return services.create_gateway(ACTOR, org.tenant, "edge", {})


def run(gateway, node: str = "acme/edge/0", start: float = 0, size: str = "small") -> uuid.UUID:
    incarnation = uuid.uuid4()
    metering.open_incarnation(incarnation, gateway.pk, node, size, 4242, "/runtime")
    ReplicaIncarnation.objects.filter(id=incarnation).update(
        started_at=at(start), last_seen_at=at(start)
    )
    return incarnation


def sample(incarnation, seq: int, minutes: float, **values) -> None:
    metering.record_sample(incarnation, seq, at(minutes), counters(**values))


def hours() -> dict[datetime, UsageHour]:
    return {row.hour: row for row in UsageHour.objects.order_by("hour")}


def test_deltas_of_cumulative_samples_land_in_the_hour_they_were_taken(gateway):
    first = run(gateway)
    sample(first, 0, 10, ok=5, client=1, received=500, sent=900)
    sample(first, 1, 59, ok=8, client=1, server=2, received=800, sent=1500)
    sample(first, 2, 61, ok=20, client=3, server=2, received=2000, sent=3000)
    rollups.rollup(at(0), at(120))
    found = hours()
    assert (found[T0].responses_2xx, found[T0].responses_4xx, found[T0].responses_5xx) == (8, 1, 2)
    later = found[T0 + timedelta(hours=1)]
    assert (later.responses_2xx, later.responses_4xx, later.bytes_received) == (12, 2, 1200)


def test_repeated_late_and_missing_samples_count_each_request_once(gateway):
    first = run(gateway)
    sample(first, 0, 5, ok=10)
    sample(first, 0, 5, ok=10)  # the same read again: stored once
    rollups.rollup(at(0), at(60))
    assert hours()[T0].responses_2xx == 10
    sample(first, 2, 30, ok=25)  # seq 1 never arrives: its requests come with seq 2
    rollups.rollup(at(0), at(60))
    rollups.rollup(at(0), at(60))  # and again: the same rows
    assert hours()[T0].responses_2xx == 25
    assert UsageHour.objects.count() == 1


def test_a_new_run_counts_from_zero_and_a_reset_is_never_subtracted(gateway):
    first = run(gateway)
    sample(first, 0, 5, ok=10)
    metering.close_incarnation(first, ReplicaIncarnation.Stop.EXITED, at(6))
    second = run(gateway, start=7)  # restarted: Envoy counts from zero again
    sample(second, 0, 9, ok=3)
    sample(second, 1, 12, ok=1)  # lower than before within one run: counted from zero
    rollups.rollup(at(0), at(60))
    assert hours()[T0].responses_2xx == 10 + 3 + 1


def test_a_stopped_runs_samples_end_with_it(gateway):
    first = run(gateway)
    sample(first, 0, 5, ok=10)
    metering.close_incarnation(first, ReplicaIncarnation.Stop.LOST, at(6))
    sample(first, 1, 8, ok=12)  # an agent that did not know: refused
    rollups.rollup(at(0), at(60))
    assert hours()[T0].responses_2xx == 10


def test_a_sample_delivered_late_counts_and_never_moves_the_last_sighting_back(gateway):
    first = run(gateway)
    sample(first, 1, 20, ok=15)
    sample(first, 0, 10, ok=10)  # seq 0 arrives after seq 1 (a retried write)
    assert ReplicaIncarnation.objects.get(id=first).last_seen_at == at(20)
    metering.close_incarnation(first, ReplicaIncarnation.Stop.SCALED_DOWN, at(30))
    sample(first, 2, 29, ok=18)  # taken before the stop, stored after it: kept
    sample(first, 3, 31, ok=19)  # taken after the stop: refused
    rollups.rollup(at(0), at(60))
    assert hours()[T0].responses_2xx == 18
    assert ReplicaIncarnation.objects.get(id=first).last_seen_at == at(20)


def test_replica_time_is_split_at_hours_exactly_and_an_open_run_counts_to_its_last_sighting(
    gateway,
):
    first = run(gateway, start=30)  # 09:30:00
    metering.close_incarnation(first, ReplicaIncarnation.Stop.SCALED_DOWN, at(150.5))
    second = run(gateway, node="acme/edge/1", start=45, size="large")
    sample(second, 0, 70)  # seen at 10:10: open, counted to then
    rollups.rollup(at(0), at(240))
    rows = {(row.hour, row.size): row.milliseconds for row in ReplicaHour.objects.all()}
    assert rows == {
        (T0, "small"): 30 * 60_000,
        (T0 + timedelta(hours=1), "small"): 60 * 60_000,
        (T0 + timedelta(hours=2), "small"): 30 * 60_000 + 30_000,
        (T0, "large"): 15 * 60_000,
        (T0 + timedelta(hours=1), "large"): 10 * 60_000,
    }


def test_runs_found_open_after_an_outage_close_at_their_last_sighting(gateway):
    kept, lost = run(gateway), run(gateway, node="acme/edge/1")
    sample(lost, 0, 20)
    assert metering.close_lost("/runtime", keep={kept}) == 1
    closed = ReplicaIncarnation.objects.get(id=lost)
    assert (closed.stopped_at, closed.stop_reason) == (at(20), "lost")
    assert ReplicaIncarnation.objects.get(id=kept).stopped_at is None


def test_percentiles_interpolate_within_envoys_buckets():
    buckets = {"1": 50, "2": 40, "10": 9, "100": 1}
    assert metering.percentile(buckets, 0.5) == pytest.approx(1.1)
    assert metering.percentile(buckets, 0.99) == pytest.approx(10 + 1 * (99 - 90) / 9)
    assert metering.percentile({}, 0.5) is None


# -- the API ------------------------------------------------------------------------------------


@pytest.fixture
def usage(gateway):
    first = run(gateway)
    sample(first, 0, 10, ok=7, client=2, server=1, received=100, sent=200,
           latency={"1": 6, "20": 4})  # fmt: skip
    sample(first, 1, 70, ok=9, client=2, server=1, received=150, sent=300,
           latency={"1": 8, "20": 4})  # fmt: skip
    metering.close_incarnation(first, ReplicaIncarnation.Stop.SCALED_DOWN, at(90))
    rollups.rollup(at(0), at(120))


URL = "/api/v1/tenants/acme/usage/"


def test_usage_by_hour_and_by_day(org, usage):
    client = org.client(Role.VIEWER)
    by_hour = client.get(URL, {"from": "2026-11-03T09:00:00Z", "to": "2026-11-03T11:00:00Z",
                               "granularity": "hour"})  # fmt: skip
    assert by_hour.status_code == 200, by_hour.content
    rows = by_hour.json()["results"]
    assert [(r["start"], r["requests"], r["replicaSeconds"]) for r in rows] == [
        ("2026-11-03T09:00:00Z", 10, 3600.0),
        ("2026-11-03T10:00:00Z", 2, 1800.0),
    ]
    assert rows[0]["responses"] == {"1xx": 0, "2xx": 7, "3xx": 0, "4xx": 2, "5xx": 1}
    assert (rows[0]["bytesReceived"], rows[0]["bytesSent"]) == (100, 200)
    assert rows[0]["latencyMs"]["p50"] < 2 and rows[0]["latencyMs"]["p99"] >= 20
    by_day = client.get(URL, {"from": "2026-11-03", "to": "2026-11-04", "gateway": "edge"})
    assert [(r["requests"], r["replicaSeconds"], r["end"]) for r in by_day.json()["results"]] == [
        (12, 5400.0, "2026-11-04T00:00:00Z")
    ]


def test_usage_as_csv_has_the_same_totals(org, usage):
    answer = org.client(Role.VIEWER).get(
        URL, {"from": "2026-11-03", "to": "2026-11-04", "granularity": "hour", "format": "csv"}
    )
    assert answer.status_code == 200 and answer["Content-Type"].startswith("text/csv")
    assert "attachment" in answer["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.content.decode())))
    assert sum(int(row["requests"]) for row in rows) == 12
    assert sum(float(row["replica_seconds"]) for row in rows) == 5400.0


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"granularity": "week"}, "granularity", "hour or day"),
        ({"from": "yesterday"}, "from", "not a date"),
        ({"from": "2026-11-04", "to": "2026-11-03"}, "to", "after from"),
        ({"from": "2024-01-01", "to": "2026-11-03", "granularity": "hour"}, "to", "at most"),
    ],
)
def test_a_bad_query_is_a_400_naming_the_field(org, params, field, words):
    answer = org.client(Role.VIEWER).get(URL, params)
    assert answer.status_code == 400, answer.content
    fields = {f["path"]: f["message"] for f in answer.json()["error"]["fields"]}
    assert words in fields[field], fields


def test_another_tenants_usage_is_a_404(org, other_org, usage):
    assert other_org.client(Role.ADMIN).get(URL).status_code == 404


# -- PostgreSQL's one-pass rollup against the sample-by-sample reference ----------------------

BOUNDS = ("0.5", "1", "2.5", "10", "120")
_history = st.lists(  # runs: each a list of (seq step, minutes step, counter steps, buckets)
    st.lists(
        st.tuples(
            st.integers(1, 3),  # seq gaps: a lost sample
            st.floats(0, 40),  # minutes after the sample before (0: the same instant)
            st.lists(
                st.integers(-3, 20),
                min_size=len(metering.COUNTERS),
                max_size=len(metering.COUNTERS),
            ),  # fmt: skip  # < 0: a reset
            st.dictionaries(st.sampled_from(BOUNDS), st.integers(-2, 9), max_size=4),
        ),
        min_size=1,
        max_size=12,
    ),  # fmt: skip
    min_size=1,
    max_size=3,
)


@given(
    history=_history,
    window=st.tuples(st.integers(0, 180), st.integers(1, 300)),
    width=st.sampled_from([timedelta(minutes=1), timedelta(minutes=5), timedelta(hours=1)]),
    narrowed=st.booleans(),
    order=st.randoms(use_true_random=False),
)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_what_samples_add_sums_to_the_reference_whatever_order_they_arrive_in(
    gateway, history, window, width, narrowed, order
):
    """Each sample's addition is worked out when it is stored (and the next one's again when
    it arrives late); summed over any range, they equal every sample of the range against the
    one before it, as the rollup used to compute them — on PostgreSQL and in Python."""
    UsageSample.objects.all().delete()
    ReplicaIncarnation.objects.all().delete()
    reads = []
    for index, samples in enumerate(history):
        incarnation = run(gateway, node=f"acme/edge/{index}")
        seq, minutes = 0, 0.0
        values = dict.fromkeys(metering.COUNTERS, 0)
        buckets: dict[str, int] = {}
        for seq_step, minutes_step, steps, bucket_steps in samples:
            seq, minutes = seq + seq_step, minutes + minutes_step
            for name, step in zip(metering.COUNTERS, steps, strict=True):
                values[name] = max(0, values[name] + step)
            for bound, step in bucket_steps.items():
                buckets[bound] = max(0, buckets.get(bound, 0) + step)
            read = {80: PortCounters(dict(values), dict(buckets))}
            reads.append((incarnation, seq, at(minutes), read))
    order.shuffle(reads)  # late, early and repeated arrivals
    for incarnation, seq, taken_at, read in reads + reads[: len(reads) // 3]:
        metering.record_sample(incarnation, seq, taken_at, read)
    start, length = window
    begin, end = at(start), at(start + length)
    scope = {"tenant_id": gateway.tenant_id, "gateway": "edge"} if narrowed else {}
    expected = rollups.traffic_in_python(begin, end, width, **scope)
    assert traffic_sql.traffic(begin, end, width, **scope) == expected
    assert rollups.summed_in_python(begin, end, width, **scope) == expected


# -- the periodic rollup: recent hours, late arrivals, and nothing else ---------------------


def test_the_periodic_rollup_recomputes_recent_hours_and_the_hours_late_samples_changed(gateway):
    first = run(gateway)
    for seq in range(20):  # ten hours, a read every 30 minutes; the read of 10:31 is late
        if seq != 3:
            sample(first, seq, 30 * seq + 1, ok=20 * (seq + 1))
    rollups.rollup_recent(now=at(600))  # the first run: every hour kept, from the oldest
    assert UsageHour.objects.count() == 10

    rollups.rollup_recent(now=at(620))  # beat again: the recent hours only
    ids = {row.hour: row.pk for row in UsageHour.objects.all()}
    # Those were stored as they were read, long before now (the clock here is the test's).
    UsageSample.objects.update(changed_at=timezone.now() - timedelta(hours=1))
    sample(first, 3, 91, ok=80)  # 10:31, stored now: 10:00 and 11:00 (the next read) change
    rollups.rollup_recent(now=at(625))
    now = {row.hour: row for row in UsageHour.objects.all()}
    changed = {hour for hour, pk in ids.items() if now[hour].pk != pk}
    recent = {hour for hour in ids if hour >= hour_of(at(625 - 120))}
    assert changed == {T0 + timedelta(hours=1), T0 + timedelta(hours=2)} | recent
    expected = rollups.traffic_in_python(at(0), at(700))
    assert {hour: row.responses_2xx for hour, row in now.items()} == {
        key[2]: row["counters"]["responses_2xx"] for key, row in expected.items()
    }


def test_gateways_combined_have_the_percentiles_of_all_their_requests(org):
    for name, bucket, count in (("fast", "1", 30), ("slow", "100", 10)):
        UsageHour.objects.create(tenant=org.tenant, gateway_name=name, hour=T0, port=80,
                                 responses_2xx=count, latency={bucket: count})  # fmt: skip
    rows = usage_rows(org.tenant, T0, T0 + timedelta(hours=1), "hour", None, combined=True)
    assert [(row["gateway"], row["requests"]) for row in rows] == [("", 40)]
    # 30 of the 40 requests took about 1 ms: the median is one of them, whatever the slow
    # gateway's own median (about 100 ms) says.
    assert 1 <= rows[0]["latencyMs"]["p50"] < 1.1
    assert rows[0]["latencyMs"]["p99"] >= 100
    per_gateway = usage_rows(org.tenant, T0, T0 + timedelta(hours=1), "hour", None)
    assert [row["gateway"] for row in per_gateway] == ["fast", "slow"]


# -- daily rows: a day recomputed whenever one of its hours is ------------------------------


def _reference_days(tenant, start, end, gateway=None) -> dict[tuple, tuple]:
    """(gateway, day) → (requests, bytes sent, replica ms, latency buckets) from the hours."""
    found: dict[tuple, list] = {}
    for model in (UsageHour, ReplicaHour):
        rows = model.objects.filter(tenant=tenant, hour__gte=start, hour__lt=end)
        for row in rows.filter(gateway_name=gateway) if gateway else rows:
            key = (row.gateway_name, row.hour.replace(hour=0))
            day = found.setdefault(key, [0, 0, 0, {}])
            if model is ReplicaHour:
                day[2] += row.milliseconds
                continue
            day[0] += row.requests
            day[1] += row.bytes_sent
            for bound, count in row.latency.items():
                day[3][bound] = day[3].get(bound, 0) + count
    return {key: (a, b, c, d) for key, (a, b, c, d) in found.items()}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    hours_used=st.lists(
        st.tuples(st.sampled_from(["edge", "api"]), st.integers(0, 24 * 4 - 1),
                  st.integers(0, 50), st.sampled_from(["1", "5", "100"])),
        min_size=1, max_size=40,
    ),
    edges=st.tuples(st.integers(0, 24 * 4 * 60), st.integers(0, 24 * 4 * 60)),
)  # fmt: skip
def test_days_from_the_daily_rows_equal_the_same_days_summed_from_the_hours(org, hours_used, edges):
    UsageHour.objects.all().delete()
    ReplicaHour.objects.all().delete()
    day0 = T0.replace(hour=0)
    for name, hour, count, bucket in hours_used:
        moment = day0 + timedelta(hours=hour)
        UsageHour.objects.update_or_create(
            tenant=org.tenant, gateway_name=name, hour=moment, port=80,
            defaults={"responses_2xx": count, "bytes_sent": 10 * count, "latency": {bucket: count}},
        )  # fmt: skip
        ReplicaHour.objects.update_or_create(
            tenant=org.tenant, gateway_name=name, hour=moment, size="small",
            defaults={"milliseconds": 1000 * hour + 7},
        )  # fmt: skip
    rollups.roll_days(day0, day0 + timedelta(days=4))
    low, high = sorted(edges)
    start, end = day0 + timedelta(minutes=low), day0 + timedelta(minutes=high)
    answer = usage_rows(org.tenant, start, end, "day", None)
    # The reference rounds the range out to whole hours, as the hourly rows are.
    start_hour = hour_of(start) + (timedelta(hours=1) if hour_of(start) < start else timedelta(0))
    expected = _reference_days(org.tenant, start_hour, end)
    got = {
        (row["gateway"], datetime.fromisoformat(row["start"])): (
            row["requests"],
            row["bytesSent"],
            round(row["replicaSeconds"] * 1000),
        )
        for row in answer
    }
    assert got == {key: value[:3] for key, value in expected.items()}
    combined = usage_rows(org.tenant, start, end, "day", None, combined=True)
    assert sum(row["requests"] for row in combined) == sum(v[0] for v in expected.values())


def test_a_late_sample_changes_its_day_as_well_as_its_hour(gateway):
    first = run(gateway)
    sample(first, 0, 1, ok=10)  # day 1, 09:01
    sample(first, 2, 15 * 60 + 31, ok=50)  # day 2, 00:31; the read of 23:31 (seq 1) is late
    rollups.rollup_recent(now=at(16 * 60))
    days = {row.day: row.requests for row in UsageDay.objects.all()}
    day1, day2 = T0.replace(hour=0), T0.replace(hour=0) + timedelta(days=1)
    assert days == {day1: 10, day2: 40}
    UsageSample.objects.update(changed_at=timezone.now() - timedelta(hours=1))
    sample(first, 1, 14 * 60 + 31, ok=45)  # day 1, 23:31: 35 more on day 1, 35 fewer on day 2
    rollups.rollup_recent(now=at(40 * 60))  # day 1 is long past the recent hours
    days = {row.day: row.requests for row in UsageDay.objects.all()}
    assert days == {day1: 45, day2: 5}
    rows = usage_rows(gateway.tenant, day1, day2 + timedelta(days=1), "day", "edge")
    assert [row["requests"] for row in rows] == [45, 5]
