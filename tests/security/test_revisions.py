"""A hostile tenant (or a viewer) against config revisions: forged NACKs, rollbacks that would
revive revoked credentials, fingerprints checked against guessed passwords, and revisions
grown large enough to stall everyone's API calls.

The xDS server is wired as ``manage.py xds_server`` wires it (database snapshot source, ACK
recorder) and serves a real Envoy; the forged replica is a hand-played gRPC client holding the
gateway's xDS token.
"""

import asyncio
import base64
import hashlib
import logging
import time

import pytest
import requests
from envoy.service.discovery.v3.ads_pb2_grpc import AggregatedDiscoveryServiceStub
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest
from google.rpc.status_pb2 import Status
from grpc import aio

from gateways import services
from gateways.models import Credential, Route
from provisioning import revisions, tasks
from provisioning.desired import load_desired_state
from provisioning.models import ConfigRevision, LocalPort
from provisioning.reconcile import reconcile
from provisioning.translate.types import CLUSTER, LISTENER
from provisioning.xds.credentials import issue_replica_token
from provisioning.xds.replicas import AckRecorder, NackLimiter
from tenants.roles import Role
from tests.api import pki
from tests.conftest import make_org
from tests.delivery.helpers import ACTOR, gateway_with_route
from tests.provisioning.harness import Upstream
from tests.xds.harness import LoopThread, running_envoy, wait_for
from tests.xds.test_db_envoy import DatabaseXds, route_to

BASE = "/api/v1/tenants/acme/gateways/edge/"
GATEWAY_REF = {"kind": "Gateway", "name": "edge"}


@pytest.fixture
def loop():
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture
def upstreams():
    servers = {name: Upstream(name) for name in ("a", "b")}
    yield servers
    for server in servers.values():
        server.close()


@pytest.fixture
def no_enqueue(monkeypatch):
    """Reconciles run here by hand, as a worker would run them."""
    monkeypatch.setattr(tasks, "send_reconcile", lambda *args, **kwargs: None)


def api_key_policy(*consumers) -> dict:
    refs = [{"kind": "Consumer", "name": name} for name in consumers]
    extract = [{"headers": ["x-api-key"]}]
    return {"targetRefs": [GATEWAY_REF],
            "apiKeyAuth": {"credentialRefs": refs, "extractFrom": extract}}  # fmt: skip


def keyed_gateway(upstreams, consumers=("alice",)):
    """acme/edge routing x.test to backend a; consumers with one API key each (returned)."""
    org = make_org("acme")
    gateway = services.create_gateway(ACTOR, org.tenant, "edge", {})
    for name, upstream in upstreams.items():
        services.create_backend(ACTOR, org.tenant, name, upstream.backend())
    services.create_route(ACTOR, gateway, "all", route_to("a"))
    keys = {}
    for name in consumers:
        consumer = services.create_consumer(ACTOR, org.tenant, name, {})
        keys[name] = services.create_credential(ACTOR, consumer, {"type": "api-key"})[1]
    gateway.org = org
    return gateway, keys


def answer(port: int, key: str | None = None) -> tuple[int, str | None]:
    """(status, backend) of a request to x.test through the gateway."""
    headers = {"Host": "x.test", **({"x-api-key": key} if key else {})}
    response = requests.get(f"http://127.0.0.1:{port}/", headers=headers, timeout=5)
    backend = response.json().get("backend") if response.status_code == 200 else None
    return response.status_code, backend


def programmed(gateway) -> dict:
    gateway.refresh_from_db()
    return next(c for c in gateway.status["conditions"] if c["type"] == "Programmed")


class ForgedReplica:
    """A gRPC client with the gateway's xDS token and a node id of its choosing: it NACKs the
    clusters and listeners it is sent at ``version`` (the revision it wants gone), and keeps
    its stream open until closed."""

    def __init__(self, loop: LoopThread, port: int, token: str, node_id: str, version: str):
        self.loop, self.port, self.token, self.node_id = loop, port, token, node_id
        self.version = version
        self.channel = self.call = None

    async def _nack(self, message: str) -> int:
        self.channel = aio.insecure_channel(f"127.0.0.1:{self.port}")
        stub = AggregatedDiscoveryServiceStub(self.channel)
        self.call = stub.DeltaAggregatedResources(
            metadata=(("authorization", f"Bearer {self.token}"),)
        )
        sent = 0
        for type_url in (CLUSTER, LISTENER):
            request = DeltaDiscoveryRequest(type_url=type_url)
            request.node.id = self.node_id
            await self.call.write(request)
            try:
                response = await asyncio.wait_for(self.call.read(), 5)
                while response.type_url != type_url:
                    response = await asyncio.wait_for(self.call.read(), 5)
            except TimeoutError:  # nothing to NACK (the gateway serves nothing any more)
                break
            if response.system_version_info != self.version:
                continue
            error = Status(code=3, message=message)
            await self.call.write(DeltaDiscoveryRequest(
                type_url=type_url, response_nonce=response.nonce, error_detail=error))  # fmt: skip
            sent += 1
        return sent

    def nack(self, message: str = "forged: invalid config") -> int:
        return self.loop.run(self._nack(message))

    async def _close(self):
        self.call.cancel()
        await self.channel.close()

    def close(self):
        if self.call is not None:
            self.loop.run(self._close())


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_forged_nacks_never_roll_back_the_auth_policy(loop, upstreams, no_enqueue):
    gateway, keys = keyed_gateway(upstreams)
    assert reconcile(gateway.pk).result == "created"  # revision 1: no auth policy
    services.create_policy(ACTOR, gateway, "keys", "SecurityPolicy", api_key_policy("alice"))
    assert reconcile(gateway.pk).revision.number == 2  # revision 2: an API key is required
    port = LocalPort.objects.get(gateway=gateway, listener_port=80).host_port
    xds = DatabaseXds(loop, None, poll_interval=0.2)
    xds.start()
    forged = []
    try:
        with running_envoy(xds.bootstrap(issue_replica_token(gateway, 0))):
            wait_for(lambda: answer(port) == (401, None), message="the key required")
            assert answer(port, keys["alice"]) == (200, "a")
            sent, version = 0, gateway.revisions.get(number=2).content_hash
            for index in range(3):
                node = f"acme/edge/{7 + index}"
                token = issue_replica_token(gateway, 7 + index)  # a token of each replica
                replica = ForgedReplica(loop, xds.server.port, token, node, version)
                forged.append(replica)
                sent += replica.nack()
            time.sleep(1)  # five polls of the xDS server: time to push anything it would
            assert answer(port) == (401, None)  # the key is still required
            assert answer(port, keys["alice"]) == (200, "a")
            current = ConfigRevision.objects.get(gateway=gateway, current=True)
            assert (current.number, current.state) == (2, "valid")
            assert sent == 6  # each forged replica NACKed clusters and listeners
            wait_for(lambda: programmed(gateway)["reason"] == "Rejected", message="Rejected")
            condition = programmed(gateway)
            assert condition["status"] == "False"
            assert "acme/edge/7 rejected revision 2" in condition["message"]
            assert "forged: invalid config" in condition["message"]
            assert reconcile(gateway.pk).result == "unchanged"
    finally:
        for replica in forged:
            replica.close()
        xds.stop()


class CountingDatabase:
    def __init__(self):
        self.calls = 0

    async def run(self, function, *args):
        self.calls += 1


def test_a_flood_of_nacks_costs_bounded_writes_and_log_lines(loop, caplog):
    database = CountingDatabase()
    now = [0.0]
    limiter = NackLimiter(burst=5, gateway_burst=20, window=60, clock=lambda: now[0])
    recorder = AckRecorder(database, limiter)
    caplog.set_level(logging.WARNING, logger="provisioning.xds.replicas")

    async def flood(count, node="acme/edge/0"):
        for _ in range(count):
            await recorder("acme/edge", node, LISTENER, "v2", "forged")

    loop.run(flood(10_000))
    assert database.calls == 5
    assert len(caplog.records) == 6  # five NACKs logged, and once that the rest are ignored
    loop.run(flood(10, node="acme/edge/1"))  # another node has its own allowance
    assert database.calls == 10
    for index in range(1000):  # but made-up node ids share the gateway's
        loop.run(flood(10, node=f"acme/edge/x{index}"))
    assert database.calls == 20
    assert len(caplog.records) == 6 + 5 + 10  # 20 NACKs logged, and the excess once
    now[0] = 61.0  # a new window
    loop.run(flood(10_000))
    assert database.calls == 25
    loop.run(recorder("acme/edge", "acme/edge/0", LISTENER, "v2", None))  # ACKs always count
    assert database.calls == 26


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_rollback_never_revives_a_revoked_api_key(loop, upstreams, no_enqueue):
    gateway, keys = keyed_gateway(upstreams, consumers=("alice", "bob"))
    services.create_policy(ACTOR, gateway, "keys", "SecurityPolicy", api_key_policy("alice", "bob"))
    assert reconcile(gateway.pk).revision.number == 1  # both keys, routed to a
    route = Route.objects.get(gateway=gateway)
    services.patch_route_spec(ACTOR, route, route_to("b"))
    assert reconcile(gateway.pk).revision.number == 2  # routed to b
    services.delete_credential(ACTOR, Credential.objects.get(consumer__name="alice"))
    assert reconcile(gateway.pk).revision.number == 3  # alice's key revoked
    port = LocalPort.objects.get(gateway=gateway, listener_port=80).host_port
    xds = DatabaseXds(loop, None, poll_interval=0.2)
    xds.start()
    try:
        with running_envoy(xds.bootstrap(issue_replica_token(gateway, 0))):
            wait_for(lambda: answer(port, keys["bob"]) == (200, "b"), message="revision 3")
            assert answer(port, keys["alice"]) == (401, None)

            response = gateway.org.client(Role.EDITOR).post(BASE + "revisions/1/rollback/")
            assert response.status_code == 202, response.content
            wait_for(lambda: answer(port, keys["bob"]) == (200, "a"), message="routed to a")
            assert answer(port, keys["alice"]) == (401, None)  # still revoked
            assert answer(port) == (401, None)
            assert response.json()["revision"] == 4
        restored = ConfigRevision.objects.get(gateway=gateway, current=True)
        assert (restored.number, restored.restored_from) == (4, 1)
        assert keys["alice"] not in revisions.text_of(restored)
        assert keys["bob"] in revisions.text_of(restored)
    finally:
        xds.stop()


def test_a_rollback_that_cannot_be_rebuilt_is_refused_and_changes_nothing(org, monkeypatch):
    monkeypatch.setattr(tasks, "send_reconcile", lambda *args, **kwargs: None)
    chain, key = pki.certificate(["app.example.com"])
    services.create_certificate(
        ACTOR, org.tenant, "app", {"certificatePem": chain, "privateKeyPem": key}
    )
    https = {"name": "https", "protocol": "HTTPS", "port": 443,
             "tls": {"certificateRefs": [{"name": "app"}]}}  # fmt: skip
    gateway = services.create_gateway(ACTOR, org.tenant, "edge", {"listeners": [https]})
    assert reconcile(gateway.pk).revision.number == 1
    services.patch_gateway_spec(
        ACTOR, gateway, {"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]}
    )
    assert reconcile(gateway.pk).revision.number == 2
    services.delete_certificate(ACTOR, org.tenant.certificates.get(name="app"))
    response = org.client(Role.EDITOR).post(BASE + "revisions/1/rollback/")
    assert response.status_code == 409
    assert "certificate(s) app" in response.json()["error"]["message"]
    # An old revision stored without the parts a rollback needs is refused the same way.
    old = ConfigRevision.objects.get(gateway=gateway, number=2)
    ConfigRevision.objects.filter(pk=old.pk).update(desired_state={"spec": {}})
    response = org.client(Role.EDITOR).post(BASE + "revisions/2/rollback/")
    assert response.status_code == 409 and "routes" in response.json()["error"]["message"]
    assert list(gateway.revisions.values_list("number", "current")) == [(2, True), (1, False)]
    assert not gateway.operations.filter(kind="rollback").exists()


def unkeyed_hashes(password: str) -> set[str]:
    """Every plain digest (hex and base64) of the password and of its stored {SHA} forms."""
    sha1 = base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()  # noqa: S324
    texts = {password, sha1, "{SHA}" + sha1, f"carol:{{SHA}}{sha1}"}
    found = set()
    for text in texts:
        for name in ("md5", "sha1", "sha224", "sha256", "sha384", "sha512", "blake2b", "sha3_256"):
            digest = hashlib.new(name, text.encode()).digest()
            found |= {digest.hex(), base64.b64encode(digest).decode()}
    return found


def test_a_password_cannot_be_checked_against_a_revisions_fingerprints(org, settings):
    password = "sunshine123"  # in every dictionary
    consumer = services.create_consumer(ACTOR, org.tenant, "carol", {})
    services.create_credential(ACTOR, consumer, {"type": "basic-auth", "password": password})
    gateway = gateway_with_route(org.tenant)
    services.create_policy(ACTOR, gateway, "basic", "SecurityPolicy", {
        "targetRefs": [GATEWAY_REF],
        "basicAuth": {"users": [{"kind": "Consumer", "name": "carol"}]}})  # fmt: skip
    assert reconcile(gateway.pk).result == "created"
    viewer = org.client(Role.VIEWER)
    shown = viewer.get(BASE + "revisions/1/").json()
    stored = shown["desiredState"]["consumers"]["carol"]["basicAuth"][0]
    masked = shown["resources"].split("<redacted ")[1].split(">")[0]
    body = viewer.get(BASE + "revisions/1/").content.decode()
    for fingerprint in (stored, masked):
        assert fingerprint.startswith("hmac-sha256:")
        value = fingerprint.removeprefix("hmac-sha256:")
        for digest in unkeyed_hashes(password):
            assert value[:12] not in digest and digest[:12] not in body
    # Nor can the revision's hash (over the whole config, whose rest the YAML shows).
    revision = gateway.revisions.get(number=1)
    shown_hash = viewer.get(BASE + "revisions/").json()["results"][0]["hash"]
    assert shown_hash == revision.content_hash
    assert shown_hash != hashlib.sha256(revisions.text_of(revision).encode()).hexdigest()
    # Under another server secret the same password has another fingerprint.
    settings.SECRET_KEY = "another-installation-" + "x" * 40
    again = viewer.get(BASE + "revisions/1/").json()["resources"]
    assert masked not in again and "<redacted hmac-sha256:" in again
    snapshot = revisions.desired_snapshot(load_desired_state(gateway.pk))
    assert snapshot["consumers"]["carol"]["basicAuth"][0] != stored


def test_a_compiled_config_over_the_limit_is_refused_and_nothing_is_stored(org, settings):
    gateway = gateway_with_route(org.tenant)
    settings.GANTRY_MAX_COMPILED_BYTES = 1000
    outcome = reconcile(gateway.pk)
    assert outcome.result == "failed"
    assert not gateway.revisions.exists()
    operation = org.client(Role.VIEWER).get(BASE + "operations/").json()["results"][0]
    assert operation["state"] == "failed"
    assert "over the limit of 1000 bytes (GANTRY_MAX_COMPILED_BYTES)" in operation["message"]
    size = int(operation["message"].split(" is ")[1].split(" bytes")[0])
    assert size > 1000


def big_routes() -> list[dict]:
    """About 300 KB of routes, each under the 64 KiB a route may hold: 8 routes of 8 matches ×
    16 header matches, on 16 hostnames. Each hostname is its own virtual host with every rule,
    so together they compile to about 5 MB."""
    return [
        {"hostnames": [f"h{i}.example.com" for i in range(16)],
         "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": f"/r{r}/m{m}"},
                                 "headers": [{"name": f"x-h{h}", "value": "v" * 256}
                                             for h in range(16)]}
                                for m in range(8)],
                    "backendRefs": [{"name": "api"}]}]}
        for r in range(8)
    ]  # fmt: skip


@pytest.mark.slow
def test_reading_a_huge_revision_is_cheap_and_bounded(org, settings, monkeypatch):
    """Listing, showing and diffing a revision over the read limit never joins its compiled
    config (nor renders it): the size is checked first, from the stored figure."""
    gateway = gateway_with_route(org.tenant)
    for index, spec in enumerate(big_routes()):
        services.create_route(ACTOR, gateway, f"big-{index}", spec)
    revision = reconcile(gateway.pk).revision
    assert revision.size > 4_000_000, revision.size
    viewer = org.client(Role.VIEWER)
    joined = []
    real_text_of = revisions.text_of
    monkeypatch.setattr(revisions, "text_of", lambda r: joined.append(r.pk) or real_text_of(r))
    listed = viewer.get(BASE + "revisions/")
    shown = viewer.get(BASE + "revisions/1/")
    diffed = viewer.get(BASE + "revisions/1/diff/?against=1")
    assert joined == []
    assert listed.status_code == 200 and listed.json()["results"][0]["size"] == revision.size
    assert shown.status_code == 200 and shown.json()["resources"] is None
    omitted = shown.json()["resourcesOmitted"]
    assert f"{revision.size} bytes" in omitted and "GANTRY_REVISION_READ_MAX_BYTES" in omitted
    assert diffed.status_code == 422
    error = diffed.json()["error"]
    assert (error["code"], error["limit"]) == ("too_large", settings.GANTRY_REVISION_READ_MAX_BYTES)
    # Under the limit the YAML is shown as before (joined from its parts, once).
    settings.GANTRY_REVISION_READ_MAX_BYTES = revision.size
    assert "h15.example.com" in viewer.get(BASE + "revisions/1/").json()["resources"]
    assert joined == [revision.pk]
