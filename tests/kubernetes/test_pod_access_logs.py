"""Access logs of Kubernetes gateways, collected from their pods' logs: real Envoys run as the
pods' containers, on the bootstraps the real ``xds_server`` enrolls them with and the config
compiled for the Kubernetes runtime (access log to ``/dev/stdout``); their stdout and stderr,
line by line, are the pods' logs in the API server double, as the kubelet merges and stamps
them. The collector reads them through the double's pod log endpoint, and the tenant finds the
entries through the API: each request once, with its route and status, no credential, and
never in another tenant's or gateway's log."""

import json
import os
import subprocess
import tempfile
import threading
from contextlib import contextmanager

import pytest
import requests
import yaml
from django.db import connections

from gateways import services
from provisioning import pod_logs
from provisioning.metering import pod_incarnation
from provisioning.models import AccessLogEntry, KubernetesCluster, PodLogCursor
from provisioning.reconcile import reconcile
from provisioning.runtimes.kubernetes import envoy_pod
from tenants.roles import Role
from tests.conftest import make_org
from tests.delivery.helpers import ACTOR
from tests.provisioning.harness import free_port
from tests.security.test_kubernetes_xds_credentials import (  # noqa: F401 (fixtures)
    Gateway,
    double,
    enroll,
    kubeconfig,
    xds,
)
from tests.xds.harness import envoy_binary, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
BEARER = "bearer-token-never-logged"
WRONG_KEY = "wrong-key-never-logged"
FIELDS = [
    "start", "requestId", "method", "path", "status", "flags", "bytesReceived", "bytesSent",
    "durationMs", "upstreamMs", "route", "upstreamHost", "port", "client", "userAgent",
    "consumer",
]  # fmt: skip


def route(path: str, **rule) -> dict:
    return {"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": path}}], **rule}]}


REDIRECT = {"type": "RequestRedirect", "requestRedirect": {"path": {
    "type": "ReplaceFullPath", "replaceFullPath": "/elsewhere"}}}  # fmt: skip


@pytest.fixture
def orgs(double, xds, plan):  # noqa: F811
    """acme/edge and globex/web on the double's cluster, with their members' API clients."""
    cluster = KubernetesCluster.objects.create(
        name="double", kubeconfig=kubeconfig(double), xds_address="127.0.0.1",
        xds_port=xds.xds_port,
    )  # fmt: skip
    acme, globex = make_org("acme"), make_org("globex")
    cluster.plans.add(acme.tenant.plan, globex.tenant.plan)
    return {
        "acme": (acme, Gateway(double, acme.tenant, "edge", free_port())),
        "globex": (globex, Gateway(double, globex.tenant, "web", free_port())),
    }


def pod_bootstrap(stack, gateway, pod: str) -> dict:
    """What the pod's init container writes, with the pod's own ports made free ones here."""
    answer = enroll(stack, gateway.key, pod, gateway.token(pod))
    bootstrap = yaml.safe_load(answer["bootstrap"])
    bootstrap["admin"]["address"]["socket_address"]["port_value"] = free_port()
    probe = bootstrap["static_resources"]["listeners"][0]["address"]["socket_address"]
    probe["port_value"] = free_port()
    return bootstrap


@contextmanager
def pod_container(double, gateway, pod: str, bootstrap: dict):  # noqa: F811
    """A real Envoy run as the pod's container does (its command line): each line it writes
    to stdout (the access log) or stderr (its own log) goes into the pod's log in the double,
    stamped when it arrives."""
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "bootstrap.json")
        with open(config, "w") as handle:
            json.dump(bootstrap, handle)
        args = envoy_pod.envoy_args(gateway.key, 1)
        args[args.index(envoy_pod.BOOTSTRAP_PATH)] = config
        args = [a.replace("$(POD_NAME)", pod) for a in args] + ["--use-dynamic-base-id"]
        process = subprocess.Popen(
            [envoy_binary(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp
        )

        def pump(stream):
            for line in stream:
                double.write_log(gateway.namespace, pod, line.rstrip(b"\n"))

        pumps = [threading.Thread(target=pump, args=(s,), daemon=True)
                 for s in (process.stdout, process.stderr)]  # fmt: skip
        for thread in pumps:
            thread.start()
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            for thread in pumps:
                thread.join(timeout=5)


def json_lines(log, gateway, pod: str, which: str = "current") -> list[dict]:
    """The access log lines Envoy wrote to the pod's log (whole, with its keys)."""
    found = []
    for _, line in log.logs[(gateway.namespace, pod, "envoy")][which] or []:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if line.endswith(b"\n") and isinstance(record, dict) and sorted(record) == sorted(FIELDS):
            found.append(record)
    return found


def status_of(url: str) -> int | None:
    try:
        answer = requests.get(
            url, timeout=5, headers={"Connection": "close"}, allow_redirects=False
        )
        return answer.status_code
    except requests.RequestException:
        return None


def entries(org, gateway: str, **params) -> list[dict]:
    answer = org.client(Role.VIEWER).get(
        f"/api/v1/tenants/{org.tenant.slug}/gateways/{gateway}/access-logs/",
        {"page_size": 500, **params},
    )
    assert answer.status_code == 200, answer.content
    return answer.json()["results"]


def serve(url: str, key: str) -> dict:
    """Requests of each kind (through the real Envoy); the statuses they got."""
    secret = {"Authorization": f"Bearer {BEARER}", "Connection": "close"}
    got = {}
    for name, path in (("moved", "/moved/a"), ("keyed", f"/keys/a?apikey={key}"),
                       ("refused", f"/keys/b?apikey={WRONG_KEY}"), ("missing", "/nowhere"),
                       ("failed", "/fail")):  # fmt: skip
        answer = requests.get(url + path, headers=secret, timeout=5, allow_redirects=False)
        got[name] = answer.status_code
    return got


def setup_routes(org, gateway) -> str:
    """Routes answered by Envoy itself (a pod's backends are out of reach here), one behind
    an API key; the consumer's key."""
    row = gateway.row
    services.create_route(ACTOR, row, "moved", route("/moved", filters=[REDIRECT]))
    services.create_route(ACTOR, row, "keys", route("/keys", filters=[REDIRECT]))
    services.create_route(ACTOR, row, "fail", route("/fail", backendRefs=[{"name": "gone"}]))
    alice = services.create_consumer(ACTOR, org.tenant, "alice", {})
    key = services.create_credential(ACTOR, alice, {"type": "api-key"})[1]
    target = {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "keys"}
    services.create_policy(ACTOR, row, "keys", "SecurityPolicy", {
        "targetRefs": [target],
        "apiKeyAuth": {"credentialRefs": [{"kind": "Consumer", "name": "alice"}],
                       "extractFrom": [{"params": ["apikey"]}]},
    })  # fmt: skip
    assert reconcile(row.pk).result in ("created", "updated")
    return key


def test_pods_access_logs_are_collected_once_each_with_no_credential(xds, orgs, double):  # noqa: F811
    org, acme = orgs["acme"]
    key = setup_routes(org, acme)
    url = f"http://127.0.0.1:{acme.row.spec['listeners'][0]['port']}"
    first = acme.pod("envoy-edge-6f7c9-aaaaa")
    bootstrap = pod_bootstrap(xds, acme, first)
    expected = {"moved": 302, "keyed": 302, "refused": 401, "missing": 404, "failed": 500}

    with pod_container(double, acme, first, bootstrap):
        wait_for(lambda: status_of(url + "/fail") == 500, timeout=30, interval=0.1,
                 message="the routes served")  # fmt: skip
        assert serve(url, key) == expected
        wait_for(lambda: len(json_lines(double, acme, first)) == 6, timeout=10, interval=0.1,
                 message=lambda: f"6 lines: {json_lines(double, acme, first)}")  # fmt: skip
        # Noise in the pod's log: a torn JSON line, a line of another shape, and a last line
        # still being written (an entry like the real ones, for another path).
        double.write_log(acme.namespace, first, b'{"start": "2026-12-04T10:00:00.000Z", "st')
        double.write_log(acme.namespace, first, b'{"level": "info", "msg": "not an entry"}')
        whole = json.dumps({**json_lines(double, acme, first)[0], "path": "/partial"}).encode()
        double.write_log(acme.namespace, first, whole[:40], newline=False)
        result = pod_logs.collect()
        assert (result.pods, result.entries) == (1, 6)
        # Envoy's own lines (stderr) were in the same log, and were skipped.
        own = [x for _, x in double.logs[(acme.namespace, first, "envoy")]["current"]
               if x.startswith(b"[")]  # fmt: skip
        assert len(own) > 5 and result.skipped == len(own) + 2
        assert not AccessLogEntry.objects.filter(path="/partial").exists()
        double.finish_line(acme.namespace, first, whole[40:])
        assert pod_logs.collect().entries == 1

        # Read again: nothing new stored; new traffic: only the new lines.
        assert pod_logs.collect().entries == 0
        assert AccessLogEntry.objects.count() == 7
        assert status_of(url + "/moved/again") == 302
        wait_for(lambda: len(json_lines(double, acme, first)) == 8, timeout=10, interval=0.1)
        assert pod_logs.collect().entries == 1
        # A cursor lost (as if read from the start again): the same lines are stored once.
        PodLogCursor.objects.all().delete()
        pod_logs.collect()
        assert AccessLogEntry.objects.count() == 8

    listed = entries(org, "edge")
    assert len(listed) == 8
    assert sorted((e["route"], e["status"]) for e in listed if e["path"] != "/partial") == sorted([
        ("moved", 302), ("moved", 302), ("keys", 302), ("keys", 401), ("", 404), ("fail", 500),
        ("fail", 500),
    ])  # fmt: skip
    by_path = {e["path"]: e for e in listed}
    assert by_path["/keys/a"]["consumer"] == "alice" and by_path["/keys/b"]["consumer"] == ""
    assert by_path["/nowhere"]["responseFlags"] == "NR"
    assert [e["path"] for e in entries(org, "edge", status="401")] == ["/keys/b"]
    assert {e["path"] for e in entries(org, "edge", route="moved")} == {"/moved/a", "/moved/again"}
    rows = AccessLogEntry.objects.all()
    assert {(r.incarnation, r.segment, r.replica) for r in rows} == {
        (pod_incarnation(double.objects[("Pod", acme.namespace, first)]["metadata"]["uid"]), 0, 0)
    }
    # No credential anywhere: the API's answer, the rows.
    text = json.dumps(listed) + json.dumps(list(rows.values()), default=str)
    for secret in (key, WRONG_KEY, BEARER, "apikey"):
        assert secret not in text, secret
    pod_log = b"".join(x for _, x in double.logs[(acme.namespace, first, "envoy")]["current"])
    assert key.encode() not in pod_log and BEARER.encode() not in pod_log, "nor in the pod's log"


def pod_uid(double, gateway, pod: str) -> str:  # noqa: F811
    return double.objects[("Pod", gateway.namespace, pod)]["metadata"]["uid"]


def served(url: str, path: str, double, gateway, pod: str, count: int) -> None:  # noqa: F811
    assert status_of(url + path) == 302
    wait_for(lambda: len(json_lines(double, gateway, pod)) == count, timeout=10, interval=0.1,
             message=lambda: f"{count} lines: {json_lines(double, gateway, pod)}")  # fmt: skip


def stored_paths(**where) -> list[str]:
    return sorted(AccessLogEntry.objects.filter(**where).values_list("path", flat=True))


def test_a_restarted_container_is_read_to_its_end_and_a_replaced_pod_is_a_new_run(
    xds, orgs, double,  # noqa: F811
):  # fmt: skip
    org, acme = orgs["acme"]
    services.create_route(ACTOR, acme.row, "moved", route("/moved", filters=[REDIRECT]))
    assert reconcile(acme.row.pk).result in ("created", "updated")
    url = f"http://127.0.0.1:{acme.row.spec['listeners'][0]['port']}"
    first = acme.pod("envoy-edge-6f7c9-aaaaa")
    bootstrap = pod_bootstrap(xds, acme, first)
    with pod_container(double, acme, first, bootstrap):
        wait_for(lambda: status_of(url + "/moved/ready") == 302, timeout=30, interval=0.1,
                 message="the routes served")  # fmt: skip
        served(url, "/moved/0a", double, acme, first, 2)
        assert pod_logs.collect().entries == 2
        served(url, "/moved/0b", double, acme, first, 3)  # not read before the restart
    # The container exited; the kubelet starts it again (same pod, same bootstrap).
    double.restart_container(acme.namespace, first)
    with pod_container(double, acme, first, bootstrap):
        wait_for(lambda: status_of(url + "/moved/1a") == 302, timeout=30, interval=0.1)
        wait_for(lambda: len(json_lines(double, acme, first)) == 1, timeout=10, interval=0.1)
        assert pod_logs.collect().entries == 2  # the previous instance's last, this one's first
        assert pod_logs.collect().entries == 0
        served(url, "/moved/1b", double, acme, first, 2)  # never read: the pod goes first
    run = pod_incarnation(pod_uid(double, acme, first))
    assert stored_paths(incarnation=run, segment=0) == ["/moved/0a", "/moved/0b", "/moved/ready"]
    assert stored_paths(incarnation=run, segment=1) == ["/moved/1a"]

    # The pod is replaced by another: a new run; the old pod's unread lines are lost.
    double.delete("Pod", acme.namespace, first)
    second = acme.pod("envoy-edge-6f7c9-bbbbb")
    with pod_container(double, acme, second, pod_bootstrap(xds, acme, second)):
        wait_for(lambda: status_of(url + "/moved/2a") == 302, timeout=30, interval=0.1)
        wait_for(lambda: len(json_lines(double, acme, second)) == 1, timeout=10, interval=0.1)
        assert pod_logs.collect().entries == 1
    assert stored_paths(incarnation=pod_incarnation(pod_uid(double, acme, second))) == ["/moved/2a"]
    assert list(PodLogCursor.objects.values_list("pod_name", "restarts")) == [(second, 0)]
    assert len(entries(org, "edge")) == 5
    assert not AccessLogEntry.objects.filter(path="/moved/1b").exists()


def forged(double, gateway, pod: str, **fields) -> None:  # noqa: F811
    """A line the pod writes itself, shaped like an entry (a hostile tenant's Envoy can write
    anything to its stdout)."""
    record = {name: None for name in FIELDS}
    record.update(start="2026-12-04T10:00:00.000Z", method="GET", status=200, **fields)
    double.write_log(gateway.namespace, pod, json.dumps(record))


def test_a_pods_lines_are_only_ever_its_own_gateways_whatever_they_say(xds, orgs, double):  # noqa: F811
    acme_org, acme = orgs["acme"]
    globex_org, globex = orgs["globex"]
    web = globex.pod("envoy-web-5d4b8-ccccc")
    # globex's pod writes lines naming acme: a route of acme's, extra tenant/gateway keys.
    forged(double, globex, web, path="/as-acme-route", route="acme/edge/route/moved/rule/0/match/0")
    forged(double, globex, web, path="/own-route", route="globex/web/route/api/rule/0/match/0")
    record = {name: None for name in FIELDS}
    record.update(start="2026-12-04T10:00:00.000Z", status=200, path="/with-tenant",
                  tenant="acme", gateway="edge")  # fmt: skip
    double.write_log(globex.namespace, web, json.dumps(record))
    # A pod in globex's namespace carrying acme/edge's labels, and one in acme's namespace
    # carrying globex/web's: neither is either gateway's.
    double.add_pod(globex.namespace, "envoy-edge-fake", names_of(acme), globex.account)
    forged(double, globex, "envoy-edge-fake", path="/fake-edge")
    double.add_pod(acme.namespace, "envoy-web-fake", names_of(globex), acme.account)
    forged(double, acme, "envoy-web-fake", path="/fake-web")

    # A pass that starts while another runs (holding its lock, from another session) skips.
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [pod_logs.LOCK_KEY])
        assert pod_logs.collect().reads == 0 and not AccessLogEntry.objects.exists()
    finally:
        other.close()  # the lock goes with the session

    result = pod_logs.collect()
    assert result.entries == 2
    assert entries(acme_org, "edge") == []
    listed = {e["path"]: e["route"] for e in entries(globex_org, "web")}
    assert listed == {"/as-acme-route": "", "/own-route": "api"}
    assert set(AccessLogEntry.objects.values_list("tenant__slug", "gateway_name")) == {
        ("globex", "web")
    }
    # And another tenant's gateway's log is a 404.
    answer = acme_org.client(Role.OWNER).get("/api/v1/tenants/globex/gateways/web/access-logs/")
    assert answer.status_code == 404


def names_of(gateway) -> dict:
    from provisioning.runtimes.kubernetes import names

    return names.gateway_labels(gateway.tenant, gateway.name)
