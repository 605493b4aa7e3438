"""A hostile tenant holding an xDS token (read from a bootstrap, a log, a dump) against the real
``xds_server``: local replicas' tokens are bound to their node id, rotate at every start and
are revoked when the replica stops, so a token never streams as another replica, another
gateway, or after its replica is gone.
"""

import asyncio
import json
import os
import signal

import grpc
import pytest
from envoy.service.discovery.v3.ads_pb2_grpc import AggregatedDiscoveryServiceStub
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest
from grpc import aio

from gateways import services
from provisioning.models import PodCredential, ReplicaCredential
from provisioning.reconcile import reconcile
from provisioning.translate.types import CLUSTER
from provisioning.xds.credentials import identify, issue_pod_token
from tests.conftest import make_org
from tests.delivery.helpers import ACTOR
from tests.runtime.test_local_runtime import alive, phase_is, pids
from tests.xds.harness import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REFUSED = grpc.StatusCode.UNAUTHENTICATED


async def _open(target: str, token: str, node_id: str, timeout: float = 5):
    async with aio.insecure_channel(target) as channel:
        call = AggregatedDiscoveryServiceStub(channel).DeltaAggregatedResources(
            metadata=(("authorization", f"Bearer {token}"),)
        )
        request = DeltaDiscoveryRequest(type_url=CLUSTER)
        request.node.id = node_id
        try:
            await call.write(request)
            response = await asyncio.wait_for(call.read(), timeout)
            if response is aio.EOF:
                return await call.code()
            return "served"
        except aio.AioRpcError as error:
            return error.code()
        except asyncio.InvalidStateError:  # the server ended the call before our write
            return await call.code()
        finally:
            call.cancel()


def stream(target: str, token: str, node_id: str):
    """``"served"`` when the server answers the stream's first request, else its status code."""
    return asyncio.run(_open(target, token, node_id))


def make_gateway(tenant, name, replicas, upstream):
    gateway = services.create_gateway(ACTOR, tenant, name, {"replicas": replicas})
    services.create_backend(ACTOR, tenant, f"{name}-app", upstream.backend())
    services.create_route(
        ACTOR, gateway, "all", {"rules": [{"backendRefs": [{"name": f"{name}-app"}]}]}
    )
    assert reconcile(gateway.pk).result == "created"
    return gateway


def token_of(stack, gateway, index: int) -> str:
    """The token in the replica's bootstrap, as whoever reads that file gets it."""
    tenant = gateway.tenant.slug
    path = stack.directory / "runtime" / tenant / f"{gateway.name}-{gateway.pk}"
    bootstrap = json.loads((path / f"bootstrap-{index}.json").read_text())
    service = bootstrap["dynamic_resources"]["ads_config"]["grpc_services"][0]
    return service["initial_metadata"][0]["value"].removeprefix("Bearer ")


@pytest.fixture
def two_gateways(stack, upstream):
    acme = make_gateway(make_org("acme").tenant, "edge", 2, upstream)
    globex = make_gateway(make_org("globex").tenant, "web", 1, upstream)
    for gateway, replicas in ((acme, 2), (globex, 1)):
        wait_for(lambda g=gateway, r=replicas: phase_is(g, "Ready", r), timeout=30,
                 interval=0.05, message=lambda: f"Ready\n{stack.logs()}")  # fmt: skip
    return acme, globex


def test_a_replicas_token_streams_only_as_that_replica(stack, two_gateways):
    acme, globex = two_gateways
    target = f"127.0.0.1:{stack.xds_port}"
    first, second = token_of(stack, acme, 0), token_of(stack, acme, 1)
    assert first != second
    assert stream(target, first, "acme/edge/0") == "served"
    assert stream(target, first, "acme/edge/1") == REFUSED  # another replica of its gateway
    assert stream(target, second, "acme/edge/0") == REFUSED
    assert stream(target, first, "globex/web/0") == REFUSED  # another tenant's gateway
    assert stream(target, token_of(stack, globex, 0), "acme/edge/0") == REFUSED
    assert stream(target, first, "acme/edge/0/x") == REFUSED  # not even a longer node id
    # Only hashes are kept, and a local gateway has no pod tokens.
    stored = json.dumps(list(ReplicaCredential.objects.values()), default=str)
    assert first not in stored and second not in stored
    assert not PodCredential.objects.exists()


def test_a_stopped_or_restarted_replicas_token_is_refused(stack, two_gateways):
    acme, globex = two_gateways
    target = f"127.0.0.1:{stack.xds_port}"
    first, second = token_of(stack, acme, 0), token_of(stack, acme, 1)
    # Scaled down: replica 1's token goes with it.
    _, leaving = pids(acme)
    acme = services.patch_gateway_spec(ACTOR, acme, {"replicas": 1})
    reconcile(acme.pk)
    wait_for(lambda: not alive(leaving), timeout=15, message="the scaled-down replica stops")
    wait_for(lambda: not ReplicaCredential.objects.filter(gateway=acme, index=1).exists(),
             timeout=5, message="its credential revoked")  # fmt: skip
    assert stream(target, second, "acme/edge/1") == REFUSED
    # Restarted after a crash: the new process has a new token, the old one is dead.
    os.kill(pids(acme)[0], signal.SIGKILL)
    wait_for(lambda: token_of(stack, acme, 0) != first, timeout=10, message="a new token")
    wait_for(lambda: phase_is(acme, "Ready", 1), timeout=15, message="Ready again")
    assert stream(target, first, "acme/edge/0") == REFUSED
    assert stream(target, token_of(stack, acme, 0), "acme/edge/0") == "served"
    # The gateway deleted: none of its tokens is worth anything.
    last = token_of(stack, globex, 0)
    services.delete_gateway(ACTOR, globex)
    assert stream(target, last, "globex/web/0") == REFUSED


@pytest.mark.django_db
def test_no_token_admits_more_than_one_node_id():
    """A Kubernetes pod's token (from its enrollment) is bound to its pod's node id too."""
    edge = services.create_gateway(ACTOR, make_org("acme").tenant, "edge", {})
    principal = identify(issue_pod_token(edge, "envoy-edge-7d9f-abcde", "uid-1"))
    assert principal.admits("acme/edge/envoy-edge-7d9f-abcde")
    assert not principal.admits("acme/edge/envoy-edge-7d9f-fghij")
    assert not principal.admits("acme/other/envoy-edge-7d9f-abcde")
