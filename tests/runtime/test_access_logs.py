"""Access logs with a real Envoy replica of the local runtime: requests of several statuses go
through, the agent reads the replica's access log into the database, and the tenant finds
them through the API — and no credential the clients sent is anywhere."""

import json
import uuid
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from gateways import services
from gateways.models import Gateway
from provisioning import access_logs
from provisioning.models import AccessLogEntry, LocalReplica
from provisioning.reconcile import reconcile
from tenants.models import Plan
from tenants.roles import Role
from tests.conftest import make_org
from tests.delivery.helpers import ACTOR
from tests.provisioning.harness import Upstream
from tests.runtime.stack import Stack
from tests.xds.harness import wait_for

BEARER = "bearer-token-never-logged"
WRONG_KEY = "secret"


def route(path: str) -> dict:
    return {"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": path}}],
                       "backendRefs": [{"name": "app"}]}]}  # fmt: skip


def status_of(url: str) -> int | None:
    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException:
        return None


def entries(org, **params):
    answer = org.client(Role.VIEWER).get(
        f"/api/v1/tenants/{org.tenant.slug}/gateways/edge/access-logs/", params
    )
    assert answer.status_code == 200, answer.content
    return answer.json()["results"]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_requests_appear_in_the_api_with_their_route_status_and_id_and_no_secret(tmp_path):
    app = Upstream("app")
    stack = Stack(tmp_path)
    stack.env["GANTRY_ACCESS_LOG_SECONDS"] = "0.2"
    stack.start()
    try:
        org = make_org("acme")
        gateway = services.create_gateway(ACTOR, org.tenant, "edge", {"replicas": 1})
        services.create_backend(ACTOR, org.tenant, "app", app.backend())
        services.create_route(ACTOR, gateway, "open", route("/open"))
        services.create_route(ACTOR, gateway, "keys", route("/keys"))
        alice = services.create_consumer(ACTOR, org.tenant, "alice", {})
        key = services.create_credential(ACTOR, alice, {"type": "api-key"})[1]
        target = {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "keys"}
        services.create_policy(ACTOR, gateway, "keys", "SecurityPolicy", {
            "targetRefs": [target],
            "apiKeyAuth": {"credentialRefs": [{"kind": "Consumer", "name": "alice"}],
                           "extractFrom": [{"params": ["apikey"]}]},
        })  # fmt: skip
        assert reconcile(gateway.pk).result == "created"
        wait_for(
            lambda: LocalReplica.objects.filter(gateway=gateway, state="running").exists(),
            timeout=60, interval=0.1, message=lambda: f"a replica running\n{stack.logs()}",
        )  # fmt: skip
        url = Gateway.objects.get(pk=gateway.pk).status["listeners"][0]["url"].rstrip("/")
        wait_for(lambda: status_of(url + "/open") == 200, timeout=30, interval=0.1,
                 message="the routes served")  # fmt: skip

        secret = {"Authorization": f"Bearer {BEARER}", "User-Agent": "probe/1.0"}
        opened = requests.get(url + "/open/page?x=1", headers=secret, timeout=5)
        keyed = requests.get(f"{url}/keys/a?apikey={key}", headers=secret, timeout=5)
        refused = requests.get(f"{url}/keys/b?apikey={WRONG_KEY}", headers=secret, timeout=5)
        missing = requests.post(url + "/nowhere", timeout=5)
        assert [opened.status_code, keyed.status_code, refused.status_code,
                missing.status_code] == [200, 200, 401, 404]  # fmt: skip
        opened_id = opened.json()["headers"]["x-request-id"]
        keyed_id = keyed.json()["headers"]["x-request-id"]

        def stored() -> int:
            return AccessLogEntry.objects.filter(path__in=["/keys/b", "/nowhere"]).count()

        wait_for(lambda: stored() == 2, timeout=15, interval=0.1,
                 message=lambda: f"the entries stored\n{stack.logs()}")  # fmt: skip

        # The agent is killed and started again: it adopts the replica and reads on from where
        # the last one stopped, storing no line twice.
        stack.agent.kill()
        assert requests.get(url + "/open/after", timeout=5).status_code == 200
        stack.agent.start()
        wait_for(lambda: AccessLogEntry.objects.filter(path="/open/after").exists(),
                 timeout=20, interval=0.1, message=lambda: f"read on\n{stack.logs()}")  # fmt: skip
        assert "adopted" in stack.agent.output()
        log_text = "".join(path.read_text() for path in (tmp_path / "runtime").rglob("access.log"))
    finally:
        stack.stop()
        app.close()

    newest_first = entries(org)
    by_path = {entry["path"]: entry for entry in newest_first}
    assert {"/open/page", "/keys/a", "/keys/b", "/nowhere"} <= set(by_path)
    assert [e["timestamp"] for e in newest_first] == sorted(
        (e["timestamp"] for e in newest_first), reverse=True
    )
    page, keys, refusal, nowhere = (by_path[p] for p in ("/open/page", "/keys/a", "/keys/b",
                                                         "/nowhere"))  # fmt: skip
    assert (page["route"], page["status"], page["requestId"]) == ("open", 200, opened_id)
    assert (keys["route"], keys["status"], keys["requestId"]) == ("keys", 200, keyed_id)
    assert keys["consumer"] == "alice" and page["consumer"] == ""
    assert (refusal["route"], refusal["status"], refusal["consumer"]) == ("keys", 401, "")
    assert (nowhere["route"], nowhere["status"], nowhere["method"]) == ("", 404, "POST")
    assert nowhere["responseFlags"] == "NR" and page["upstreamHost"]
    assert page["userAgent"] == "probe/1.0" and page["bytesSent"] > 0
    assert page["listenerPort"] == int(url.rsplit(":", 1)[1])
    assert page["durationMs"] is not None and page["upstreamServiceTimeMs"] is not None

    # Filters.
    assert [e["path"] for e in entries(org, status="404")] == ["/nowhere"]
    assert {e["path"] for e in entries(org, status="4xx")} == {"/keys/b", "/nowhere"}
    assert {e["path"] for e in entries(org, route="keys")} >= {"/keys/a", "/keys/b"}
    assert [e["path"] for e in entries(org, consumer="alice")] == ["/keys/a"]
    assert [e["path"] for e in entries(org, requestId=keyed_id)] == ["/keys/a"]
    assert [e["path"] for e in entries(org, method="POST")] == ["/nowhere"]
    later = (timezone.now() + timedelta(minutes=1)).isoformat()
    assert entries(org, **{"from": later}) == []

    # No credential anywhere: the API's answer, the rows, the files Envoy wrote.
    rows = json.dumps(list(AccessLogEntry.objects.values()), default=str)
    answer = json.dumps(newest_first)
    for text in (rows, answer, log_text):
        for secret_text in (key, WRONG_KEY, BEARER, "apikey"):
            assert secret_text not in text, secret_text
    assert "/keys/a" in log_text
    lines = [line for line in log_text.splitlines() if line.strip()]
    assert AccessLogEntry.objects.count() == len(lines), "each line stored once"


@pytest.mark.django_db
def test_bad_filters_are_400s_naming_them_and_another_tenants_gateway_is_a_404(org, other_org):
    services.create_gateway(ACTOR, org.tenant, "edge", {})
    base = f"/api/v1/tenants/{org.tenant.slug}/gateways/edge/access-logs/"
    for name, value in (("status", "abc"), ("status", "6xx"), ("from", "yesterday"),
                        ("method", "BREW")):  # fmt: skip
        answer = org.client(Role.VIEWER).get(base, {name: value})
        assert answer.status_code == 400, (name, answer.content)
        assert name in json.dumps(answer.json()), answer.json()
    stranger = other_org.client(Role.OWNER)
    assert stranger.get(base).status_code == 404
    assert org.client(Role.VIEWER).get(base.replace("/edge/", "/nope/")).status_code == 404


def entry(tenant, at, path="/x") -> AccessLogEntry:
    return AccessLogEntry(tenant=tenant, gateway_name="edge", replica=0, incarnation=uuid.uuid4(),
                          segment=0, offset=0, timestamp=at, path=path, status=200)  # fmt: skip


@pytest.mark.django_db
def test_entries_older_than_the_plan_keeps_them_are_pruned(org, other_org):
    now = timezone.now()
    Plan.objects.filter(pk=org.tenant.plan_id).update(access_log_retention_days=7)
    short = Plan.objects.create(name="short", display_name="Short", max_gateways=1,
                                max_replicas_per_gateway=1, max_routes_per_gateway=1,
                                access_log_retention_days=1)  # fmt: skip
    other_org.tenant.plan = short
    other_org.tenant.save()
    AccessLogEntry.objects.bulk_create([
        entry(org.tenant, now - timedelta(days=8), "/old"),
        entry(org.tenant, now - timedelta(days=6), "/kept"),
        entry(other_org.tenant, now - timedelta(days=2), "/old-short"),
        entry(other_org.tenant, now - timedelta(hours=2), "/kept-short"),
    ])  # fmt: skip
    assert access_logs.prune(now) == 2
    assert sorted(AccessLogEntry.objects.values_list("path", flat=True)) == [
        "/kept", "/kept-short",
    ]  # fmt: skip


def test_a_line_read_again_after_a_rotation_is_read_from_where_it_stopped(tmp_path):
    log = tmp_path / "access.log"
    line = b'{"start": "2026-12-04T10:00:00.000Z", "status": 200, "path": "/a"}\n'
    log.write_bytes(line + line[:10])  # the second line is not whole yet
    tail = access_logs.Tail(log)
    lines, tail.position = tail.read()
    assert [(s, o) for s, o, _ in lines] == [(0, 0)]
    with open(log, "ab") as handle:
        handle.write(line[10:])
    log.rename(tmp_path / "access.log.1")  # rotated; Envoy reopens a new file
    log.write_bytes(line)
    lines, tail.position = tail.read()
    assert [(s, o) for s, o, _ in lines] == [(0, len(line)), (1, 0)]
    assert access_logs.parse_line(lines[0][2])["path"] == "/a"
    assert tail.read()[0] == []


@pytest.mark.django_db
def test_operators_set_a_plans_access_log_retention_and_a_bad_one_changes_nothing(staff_client):
    url = "/api/v1/plans/standard/"
    assert staff_client.get(url).json()["accessLogRetentionDays"] == 7
    refused = staff_client.patch(url, {"accessLogRetentionDays": 0}, format="json")
    assert refused.status_code == 400 and "accessLogRetentionDays" in refused.content.decode()
    assert Plan.objects.get(name="standard").access_log_retention_days == 7
    changed = staff_client.patch(url, {"accessLogRetentionDays": 30}, format="json")
    assert changed.status_code == 200, changed.content
    assert Plan.objects.get(name="standard").access_log_retention_days == 30
