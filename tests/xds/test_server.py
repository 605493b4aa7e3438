"""The ADS server over real gRPC, with a hand-played client: who gets refused, who gets what."""

import asyncio

import grpc
import pytest
from envoy.service.discovery.v3.ads_pb2_grpc import AggregatedDiscoveryServiceStub
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest, DiscoveryRequest
from grpc import aio

from provisioning.translate.types import CLUSTER
from provisioning.xds.server import (
    AggregatedDiscoveryService,
    Principal,
    bearer_token,
    gateway_of,
)
from tests.xds.conftest import compiled
from tests.xds.harness import XdsFixture

BACKENDS = {"a": {"endpoints": [{"ip": {"address": "127.0.0.1", "port": 9}}]}}


async def first_answer(port, token, node_id, delta=True, timeout=5):
    """Opens a stream, asks for clusters; returns (status code or None, first response)."""
    async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = AggregatedDiscoveryServiceStub(channel)
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
        if delta:
            call = stub.DeltaAggregatedResources(metadata=metadata)
            request = DeltaDiscoveryRequest(type_url=CLUSTER)
        else:
            call = stub.StreamAggregatedResources(metadata=metadata)
            request = DiscoveryRequest(type_url=CLUSTER)
        request.node.id = node_id
        try:
            await call.write(request)
            response = await asyncio.wait_for(call.read(), timeout)
            if response is aio.EOF:  # the server ended the stream before we read: its status
                return await call.code(), None
            return None, response
        except aio.AioRpcError as error:
            return error.code(), None
        except asyncio.InvalidStateError:  # writing after the server already ended the call
            return await call.code(), None
        finally:
            call.cancel()


@pytest.fixture
def served(xds):
    xds.store.set("acme/edge", "v1", compiled("acme", "edge", "a", BACKENDS, 8080))
    xds.store.set("globex/web", "g1", compiled("globex", "web", "a", BACKENDS, 8081))
    return xds


@pytest.mark.parametrize("delta", [True, False], ids=["delta", "sotw"])
def test_it_serves_a_replica_its_own_gateways_clusters(served, delta):
    code, response = served.loop.run(
        first_answer(served.port, "acme-edge-token", "acme/edge/0", delta)
    )
    assert code is None
    assert len(response.resources) == 1
    assert served.store.get("acme/edge").resources[CLUSTER]["acme/backend/a"]


@pytest.mark.parametrize(
    "token, node_id",
    [
        (None, "acme/edge/0"),
        ("wrong-token", "acme/edge/0"),
        ("globex-web-token", "acme/edge/0"),  # a real token, for another gateway
        ("acme-edge-token", "globex/web/0"),
        ("acme-edge-token", "acme/edge"),  # no replica part: names gateway "acme"
        ("acme-edge-token", ""),
    ],
)
@pytest.mark.parametrize("delta", [True, False], ids=["delta", "sotw"])
def test_it_refuses_a_stream_without_the_gateways_token(served, token, node_id, delta):
    code, response = served.loop.run(first_answer(served.port, token, node_id, delta))
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert response is None
    assert served.connected("acme/edge") == served.connected("globex/web") == set()


def test_a_refusal_is_unauthenticated_every_time(served):
    """Refusing while the stream's first message is still on its way once ended some streams
    with a transport error (INTERNAL), which Envoy and operators would misread."""
    codes = {
        served.loop.run(first_answer(served.port, None, "acme/edge/0", delta))[0]
        for _ in range(50)
        for delta in (True, False)
    }
    assert codes == {grpc.StatusCode.UNAUTHENTICATED}


def test_a_failing_token_check_is_unavailable_not_unauthenticated(loop_thread):
    def broken(token):
        raise ConnectionError("database is down")

    fixture = XdsFixture(loop_thread, {})
    fixture.service = AggregatedDiscoveryService(fixture.store, broken)
    fixture.start()
    try:
        code, _ = loop_thread.run(first_answer(fixture.port, "t", "acme/edge/0"))
    finally:
        fixture.stop()
    assert code == grpc.StatusCode.UNAVAILABLE  # Envoy retries; it keeps its config meanwhile


def test_token_check_and_ack_recording_may_be_coroutines(loop_thread):
    seen = []

    async def authenticate(token):
        return Principal("acme/edge", "acme/edge/0") if token == "t" else None

    async def on_ack(*args):
        seen.append(args)

    fixture = XdsFixture(loop_thread, {})
    fixture.service = AggregatedDiscoveryService(fixture.store, authenticate, on_ack)
    fixture.store.set("acme/edge", "v1", compiled("acme", "edge", "a", BACKENDS, 8080))
    fixture.start()
    try:
        loop_thread.run(answer_and_ack(fixture.port, "t", "acme/edge/0"))
    finally:
        fixture.stop()
    assert seen == [("acme/edge", "acme/edge/0", CLUSTER, "v1", None)]


async def answer_and_ack(port, token, node_id):
    async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = AggregatedDiscoveryServiceStub(channel)
        call = stub.DeltaAggregatedResources(metadata=(("authorization", f"Bearer {token}"),))
        request = DeltaDiscoveryRequest(type_url=CLUSTER)
        request.node.id = node_id
        await call.write(request)
        response = await asyncio.wait_for(call.read(), 5)
        await call.write(DeltaDiscoveryRequest(type_url=CLUSTER, response_nonce=response.nonce))
        await call.done_writing()
        assert await asyncio.wait_for(call.read(), 5) is aio.EOF


def test_bearer_token_and_gateway_of_node_ids():
    assert bearer_token([("authorization", "Bearer abc")]) == "abc"
    assert bearer_token([("Authorization", "bearer  abc ")]) == "abc"
    assert bearer_token([("authorization", "Basic abc")]) is None
    assert bearer_token([("authorization", "Bearer ")]) is None
    assert bearer_token(None) is None
    assert gateway_of("acme/edge/0") == "acme/edge"
    assert gateway_of("acme/edge/") is None
    assert gateway_of("edge") is None
