"""Revisions compared side by side, the operations timeline, an audit event's page and usage
charts: what a member sees, what another tenant gets (404) and that no secret is rendered."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from billing import rollups
from billing.models import ReplicaHour, UsageHour
from frontend import charts, field_diff, side_by_side
from gateways import services
from gateways.models import Route
from provisioning.models import GatewayOperation
from provisioning.reconcile import reconcile
from tenants.models import AuditEvent
from tenants.roles import Role
from tests.api.pki import certificate
from tests.delivery.helpers import ACTOR, gateway_with_route, route_spec

GATEWAY = "/t/acme/gateways/edge/"


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def text(response) -> str:
    return response.content.decode()


@pytest.fixture
def edge(org):
    """Gateway edge with revisions 1 (/api) and 2 (/v2, serving), each after a write."""
    gateway = gateway_with_route(org.tenant)
    reconcile(gateway.pk)
    services.patch_route_spec(ACTOR, Route.objects.get(gateway=gateway), route_spec("/v2"))
    reconcile(gateway.pk)
    return gateway


# --- Revisions compared ----------------------------------------------------------------------


def test_side_by_side_marks_changes_and_collapses_unchanged_runs():
    old = "\n".join(f"line {i}" for i in range(1, 21))
    new = old.replace("line 10", "line ten") + "\nline 21"
    diff = side_by_side.compare(old, new)
    assert (diff.changed, diff.added, diff.removed) == (1, 1, 0)
    kinds = [row.kind for row in diff.rows]
    assert kinds == ["skipped", "same", "same", "same", "changed", "same", "same", "same",
                     "skipped", "same", "same", "same", "added"]  # fmt: skip
    assert [row.skipped for row in diff.rows if row.kind == "skipped"] == [6, 4]
    changed = diff.rows[4]
    assert (changed.old_number, changed.old, changed.new_number, changed.new) == (
        10, "line 10", 10, "line ten"
    )  # fmt: skip
    assert side_by_side.compare("a\nb", "a\nb").identical


def test_two_revisions_are_compared_side_by_side(org, edge):
    viewer = signed_in(org.users[Role.VIEWER])
    listing = text(viewer.get(GATEWAY + "revisions/"))
    assert 'action="/t/acme/gateways/edge/revisions/compare/"' in listing
    assert '<label for="compare-from">' in listing and '<label for="compare-to">' in listing

    response = viewer.get(GATEWAY + "revisions/compare/?from=1&to=2")
    assert response.status_code == 200
    page = text(response)
    assert "Revision 1 (old)" in page and "Revision 2 (new)" in page
    changed = re.findall(r'<tr class="changed">(.*?)</tr>', page, re.S)
    assert any("/api" in row and "/v2" in row for row in changed)
    assert "unchanged line" in page  # the long unchanged runs are collapsed with a count

    same = text(viewer.get(GATEWAY + "revisions/compare/?from=2&to=2"))
    assert "The same compiled config." in same


def test_bad_revision_numbers_are_refused_clearly(org, other_org, edge):
    viewer = signed_in(org.users[Role.VIEWER])
    response = viewer.get(GATEWAY + "revisions/compare/?from=x&to=2")
    assert response.status_code == 400
    assert "from: &#x27;x&#x27; is not a revision number" in text(response)
    assert viewer.get(GATEWAY + "revisions/compare/?to=2").status_code == 400
    assert viewer.get(GATEWAY + "revisions/compare/?from=1&to=9").status_code == 404
    # Another gateway's revision is not this gateway's.
    other = services.create_gateway(ACTOR, org.tenant, "other", {})
    services.create_route(ACTOR, other, "api", route_spec())
    reconcile(other.pk)  # its revision 1 only: edge's revision 2 is not its
    assert viewer.get("/t/acme/gateways/other/revisions/compare/?from=1&to=1").status_code == 200
    assert viewer.get("/t/acme/gateways/other/revisions/compare/?from=1&to=2").status_code == 404
    outsider = signed_in(other_org.users[Role.OWNER])
    assert outsider.get(GATEWAY + "revisions/compare/?from=1&to=2").status_code == 404


def test_the_comparison_shows_secrets_only_as_fingerprints(org, edge):
    chain, key = certificate(("edge.example.com",))
    services.create_certificate(ACTOR, org.tenant, "tls",
                                {"certificatePem": chain, "privateKeyPem": key})  # fmt: skip
    spec = {"listeners": [{"name": "https", "protocol": "HTTPS", "port": 443,
                           "tls": {"certificateRefs": [{"name": "tls"}]}}]}  # fmt: skip
    services.patch_gateway_spec(ACTOR, edge, spec)
    reconcile(edge.pk)
    page = text(signed_in(org.users[Role.VIEWER]).get(GATEWAY + "revisions/compare/?from=2&to=3"))
    assert "redacted hmac-sha256:" in page
    assert key.splitlines()[1] not in page and "PRIVATE KEY" not in page


# --- Operations and who caused them ---------------------------------------------------------


def test_the_timeline_shows_stages_and_the_write_that_caused_each(org, edge):
    admin = signed_in(org.users[Role.ADMIN])
    page = text(admin.get(GATEWAY + "operations/"))
    operations = GatewayOperation.objects.filter(gateway=edge).order_by("started_at")
    assert len(operations) == 2
    for operation in operations:
        assert f'operations/{operation.pk}/">#{operation.pk} reconcile</a>' in page
    # The stages the reconcile recorded, with their milliseconds.
    assert "<td>Compiled</td>" in page and "<td>Validated</td>" in page
    first = operations[0]
    assert f"<td>{first.timings['compile']}</td>" in page
    # Each reconcile's cause: the newest write before it (ACTOR is system:tests).
    patch = AuditEvent.objects.get(action="update", object_type="route")
    assert f'/t/acme/audit/{patch.pk}/">system:tests' in page

    revisions = text(admin.get(GATEWAY + "revisions/"))
    assert f'/t/acme/audit/{patch.pk}/">system:tests' in revisions  # revision 2's cause
    assert f'operations/{operations[1].pk}/">#{operations[1].pk}</a>' in revisions

    revision = text(admin.get(GATEWAY + "revisions/2/"))
    assert f'/t/acme/audit/{patch.pk}/">system:tests' in revision
    assert f'operations/{operations[1].pk}/">operation #{operations[1].pk}</a>' in revision

    viewer = signed_in(org.users[Role.VIEWER])
    assert "/t/acme/audit/" not in text(viewer.get(GATEWAY + "revisions/"))  # admins only
    detail = viewer.get(GATEWAY + f"operations/{first.pk}/")
    assert detail.status_code == 200 and "system:tests" in text(detail)


def test_a_rollback_is_caused_by_the_editor_who_asked(org, edge):
    editor = signed_in(org.users[Role.EDITOR])
    editor.post(GATEWAY + "revisions/1/rollback/")
    event = AuditEvent.objects.get(action="rollback")
    admin = signed_in(org.users[Role.ADMIN])
    name = org.users[Role.EDITOR].username
    assert f'/t/acme/audit/{event.pk}/">{name}' in text(admin.get(GATEWAY + "operations/"))
    assert f'/t/acme/audit/{event.pk}/">{name}' in text(admin.get(GATEWAY + "revisions/"))


def test_another_tenants_operations_are_404(org, other_org, edge):
    outsider = signed_in(other_org.users[Role.OWNER])
    operation = GatewayOperation.objects.filter(gateway=edge).first()
    assert outsider.get(GATEWAY + "operations/").status_code == 404
    other_gateway = services.create_gateway(ACTOR, other_org.tenant, "edge", {})
    reconcile(other_gateway.pk)
    # Same gateway name in their tenant: still not this operation.
    assert outsider.get(GATEWAY.replace("acme", other_org.tenant.slug)
                        + f"operations/{operation.pk}/").status_code == 404  # fmt: skip


# --- An audit event ---------------------------------------------------------------------------


def test_field_diff_lists_each_leaf_that_changed():
    found = field_diff.changes(
        {"spec": {"replicas": 1, "listeners": [{"port": 80}]}, "name": "a"},
        {"spec": {"replicas": 2, "listeners": [{"port": 80}, {"port": 443}]}, "name": "a"},
    )
    assert [(c.path, c.kind, c.old, c.new) for c in found] == [
        ("spec.replicas", "changed", "1", "2"),
        ("spec.listeners[1].port", "added", "", "443"),
    ]
    assert [c.kind for c in field_diff.changes(None, {"a": 1})] == ["added"]


def test_an_audit_event_shows_before_after_and_each_change(org, other_org, edge):
    admin = signed_in(org.users[Role.ADMIN])
    event = AuditEvent.objects.get(action="update", object_type="route")
    listing = text(admin.get("/t/acme/audit/?objectType=route&action=update"))
    assert f'href="/t/acme/audit/{event.pk}/"' in listing
    page = text(admin.get(f"/t/acme/audit/{event.pk}/"))
    assert "spec.rules[0].matches[0].path.value" in page
    assert "&quot;/api&quot;" in page and "&quot;/v2&quot;" in page
    assert '<h2 id="before-heading">Before</h2>' in page
    assert signed_in(org.users[Role.EDITOR]).get(f"/t/acme/audit/{event.pk}/").status_code == 403
    outsider = signed_in(other_org.users[Role.OWNER])
    assert outsider.get(f"/t/{other_org.tenant.slug}/audit/{event.pk}/").status_code == 404


def test_an_audit_event_never_shows_a_secret(org):
    _, key = certificate(("app.example.com",))
    event = AuditEvent.objects.create(
        tenant=org.tenant, tenant_slug="acme", actor_name="old-writer", action="update",
        object_type="certificate", object_name="app",
        before={"spec": {"privateKeyPem": key, "password": "hunter2"}},  # as stored long ago
        after={"spec": {"privateKeyPem": "[redacted]"}},
    )  # fmt: skip
    page = text(signed_in(org.users[Role.ADMIN]).get(f"/t/acme/audit/{event.pk}/"))
    assert "[redacted]" in page
    assert key.splitlines()[1] not in page and "hunter2" not in page


# --- Usage ------------------------------------------------------------------------------------


def _usage(org, hour, gateway="edge", requests=10, errors=(1, 2), p50_bucket="5"):
    UsageHour.objects.create(
        tenant=org.tenant, gateway_name=gateway, hour=hour, port=80,
        responses_2xx=requests - sum(errors), responses_4xx=errors[0], responses_5xx=errors[1],
        latency={p50_bucket: requests},
    )  # fmt: skip
    ReplicaHour.objects.create(tenant=org.tenant, gateway_name=gateway, hour=hour,
                               size="small", milliseconds=3_600_000)  # fmt: skip
    rollups.roll_days(hour, hour + timedelta(hours=1))  # as the rollup does after an hour


def test_charts_lay_out_bars_and_lines():
    drawn = charts.chart("Requests", "d", "requests", ["a", "b", "c"],
                         [charts.Series("r", [0, 5, 10]),
                          charts.Series("p", [None, 1, 2], kind="line")])  # fmt: skip
    assert len(drawn.bars) == 2  # a zero draws nothing
    assert drawn.bars[1]["height"] > drawn.bars[0]["height"]
    assert len(drawn.lines) == 1 and drawn.lines[0]["points"].count(",") == 2
    assert [t["label"] for t in drawn.ticks] == ["0", "5", "10"]
    assert charts.nice_ceiling(7) == 10 and charts.nice_ceiling(0.3) == 0.5


def test_usage_page_charts_the_usage_apis_rows(org, edge):
    hour = timezone.now().astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    _usage(org, hour - timedelta(hours=2))
    _usage(org, hour - timedelta(hours=2), gateway="other", requests=30, errors=(0, 0))
    _usage(org, hour - timedelta(days=40))  # outside either range
    viewer = signed_in(org.users[Role.VIEWER])
    response = viewer.get("/t/acme/usage/")
    assert response.status_code == 200
    page = text(response)
    assert page.count("<svg") == 4 and page.count("<title id=") == 4
    assert "40 in all" in page  # requests of both gateways in the last 24 hours
    assert "1 4xx and 2 5xx in all" in page
    assert "2.0 in all" in page or "2 in all" in page  # replica-hours
    assert '<option value="24h" selected>' in page

    gateway_page = text(viewer.get(GATEWAY + "usage/"))
    assert "10 in all" in gateway_page and 'aria-current="page">Usage' in gateway_page

    by_day = text(viewer.get("/t/acme/usage/?range=30d"))
    assert '<option value="day" selected>' in by_day and "40 in all" in by_day


def test_usage_csv_is_the_apis_csv(org, edge):
    hour = timezone.now().astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    _usage(org, hour - timedelta(hours=1))
    viewer = signed_in(org.users[Role.VIEWER])
    console = viewer.get("/t/acme/usage/csv/?range=24h&granularity=hour")
    assert console.status_code == 200 and console["Content-Type"].startswith("text/csv")
    start = (timezone.now().astimezone(UTC) - timedelta(hours=24)).replace(
        minute=0, second=0, microsecond=0
    )
    api = signed_in(org.users[Role.VIEWER]).get(
        "/api/v1/tenants/acme/usage/",
        {"from": start.isoformat(), "granularity": "hour", "format": "csv"},
    )
    assert api.status_code == 200
    assert console.content == api.content
    assert console.content.decode().splitlines()[1].startswith("edge,")
    assert viewer.get(GATEWAY + "usage/csv/").status_code == 200


def test_bad_usage_parameters_are_named_and_another_tenant_is_404(org, other_org, edge):
    viewer = signed_in(org.users[Role.VIEWER])
    response = viewer.get("/t/acme/usage/?range=forever")
    assert response.status_code == 400 and "range: &#x27;forever&#x27;" in text(response)
    response = viewer.get("/t/acme/usage/?range=90d&granularity=hour")
    assert response.status_code == 400 and "granularity: at most 800" in text(response)
    assert viewer.get("/t/acme/usage/csv/?granularity=week").status_code == 400
    outsider = signed_in(other_org.users[Role.OWNER])
    assert outsider.get("/t/acme/usage/").status_code == 404
    assert outsider.get(GATEWAY + "usage/").status_code == 404


# --- A malformed resourceVersion ------------------------------------------------------------


@pytest.mark.parametrize("raw", ["abc", "-1", "1.0", "٣", "1" * 20])
def test_an_edit_with_a_malformed_resource_version_is_refused(org, edge, raw):
    editor = signed_in(org.users[Role.EDITOR])
    route = Route.objects.get(gateway=edge, name="api")
    before = route.spec
    response = editor.post(
        GATEWAY + "routes/api/edit/",
        {"mode": "spec", "spec": "hostnames: [mine.example.com]", "resource_version": raw},
    )
    assert response.status_code == 400
    assert "resourceVersion: must be a resourceVersion from a previous read" in text(response)
    assert Route.objects.get(pk=route.pk).spec == before
    backend = editor.post(
        "/t/acme/backends/api/edit/",
        {"mode": "spec", "spec": "endpoints: []", "resource_version": raw},
    )
    assert backend.status_code == 400 and "resourceVersion: must be" in text(backend)
    services.create_policy(ACTOR, edge, "sec", "BackendTrafficPolicy",
                           {"targetRefs": [{"kind": "Gateway", "name": "edge"}],
                            "timeout": {"http": {"requestTimeout": "2s"}}})  # fmt: skip
    policy = editor.post(GATEWAY + "policies/sec/edit/",
                         {"spec": "targetRefs: []", "resource_version": raw})  # fmt: skip
    assert policy.status_code == 400 and "resourceVersion: must be" in text(policy)
    consumer = services.create_consumer(ACTOR, org.tenant, "mob", {})
    answer = editor.post("/t/acme/consumers/mob/edit/",
                         {"description": "x", "resource_version": raw})  # fmt: skip
    assert answer.status_code == 400 and "resourceVersion: must be" in text(answer)
    consumer.refresh_from_db()
    assert consumer.spec.get("description", "") == ""


def test_the_audit_log_filters_by_actor_object_action_and_time(org, edge):
    admin = signed_in(org.users[Role.ADMIN])
    page = text(admin.get("/t/acme/audit/"))
    for label in ("Actor", "Object type", "Object name", "Action", "From", "Until (before)"):
        assert f">{label}</label>" in page, label
    patch = AuditEvent.objects.get(action="update", object_type="route")
    AuditEvent.objects.filter(pk=patch.pk).update(created_at=datetime(2026, 1, 2, tzinfo=UTC))

    def events(query: str) -> set[int]:
        found = re.findall(
            r'href="/t/acme/audit/(\d+)/"', text(admin.get("/t/acme/audit/" + query))
        )
        return {int(pk) for pk in found}

    assert events("?objectType=route&objectName=edge/api&action=update") == {patch.pk}
    assert events("?actor=system:tests&since=2026-01-01T00:00:00Z&until=2026-01-03T00:00:00Z") == {
        patch.pk
    }
    assert patch.pk not in events("?since=2026-01-03T00:00:00Z")
    response = admin.get("/t/acme/audit/?since=yesterday")
    assert events("?since=yesterday") == set()  # an invalid filter is shown and matches nothing
    assert "Enter a valid date/time." in text(response)
