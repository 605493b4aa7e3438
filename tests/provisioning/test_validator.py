"""The warm validator: a long-lived Envoy in this process, fed over a private ADS stream, gives
the same verdicts as ``envoy --mode validate`` (with Envoy's message), binds no port, admits
no other client, and comes back if it dies."""

import asyncio
import dataclasses
import os
import signal
import socket

import grpc
from envoy.service.discovery.v3.ads_pb2_grpc import AggregatedDiscoveryServiceStub
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest
from grpc import aio

from provisioning import validator
from provisioning.compile import compile_gateway
from provisioning.envoy import envoy_binary, validate, validate_cold, validate_warm
from provisioning.ir.build import DesiredState
from provisioning.translate.types import LISTENER
from tests.provisioning.harness import free_port


def resources(port: int = 8080):
    state = DesiredState(
        tenant="acme", gateway="edge",
        spec={"listeners": [{"name": "http", "protocol": "HTTP", "port": port}]},
        routes=[{"name": "r", "spec": {"rules": [{"backendRefs": [{"name": "b"}]}]}}],
        backends={"b": {"endpoints": [{"ip": {"address": "127.0.0.1", "port": 9}}]}},
    )  # fmt: skip
    return compile_gateway(state, address="127.0.0.1")


def with_route_regex(compiled, regex: str):
    route = compiled.routes[0]
    host = dict(route["virtual_hosts"][0])
    host["routes"] = [
        {"match": {"safe_regex": {"regex": regex}}, "direct_response": {"status": 200}}
    ]
    return dataclasses.replace(compiled, routes=({**route, "virtual_hosts": [host]},))


def test_warm_and_cold_agree_on_good_and_bad_config_and_a_rejection_does_not_stick():
    good = resources()
    bad = with_route_regex(good, "(")
    assert validate_cold(good).ok and validate_warm(good).ok
    cold, warm = validate_cold(bad), validate_warm(bad)
    assert not cold.ok and not warm.ok
    assert "missing )" in cold.message and "missing )" in warm.message
    assert validate_warm(good).ok  # the next check starts from a clean verdict
    assert validate(bad).ok is False and validate(good).ok  # validate() takes the warm path


def test_the_warm_validator_never_binds_the_listener_ports():
    port = free_port()
    taken = socket.create_server(("127.0.0.1", port))  # no SO_REUSEPORT: any bind would fail
    try:
        assert validate_warm(resources(port)).ok
        with socket.socket() as probe:
            probe.settimeout(1)
            probe.connect(("127.0.0.1", port))
            connection, _ = taken.accept()  # it is our socket that answers, nobody else's
            connection.close()
    finally:
        taken.close()


def test_a_dead_validating_envoy_is_replaced():
    assert validate_warm(resources()).ok
    warm = validator.warm_validator(envoy_binary())
    os.kill(warm._process.pid, signal.SIGKILL)
    warm._process.wait(10)
    assert validate_warm(resources(8081)).ok
    assert warm._process.poll() is None


async def _open_stream(target: str, token: str, node_id: str):
    """Opens an ADS stream and, if it is answered, NACKs whatever it is sent."""
    async with aio.insecure_channel(target) as channel:
        call = AggregatedDiscoveryServiceStub(channel).DeltaAggregatedResources(
            metadata=(("authorization", f"Bearer {token}"),)
        )
        request = DeltaDiscoveryRequest(type_url=LISTENER)
        request.node.id = node_id
        try:
            await call.write(request)
            response = await asyncio.wait_for(call.read(), 5)
            if response is aio.EOF:
                return await call.code()
            nack = DeltaDiscoveryRequest(type_url=LISTENER, response_nonce=response.nonce)
            nack.error_detail.message = "forged rejection"
            await call.write(nack)
            return "served"
        except aio.AioRpcError as error:
            return error.code()
        except asyncio.InvalidStateError:
            return await call.code()
        finally:
            call.cancel()


def test_a_second_client_with_the_validators_token_is_refused_and_changes_no_verdict():
    warm = validator.warm_validator(envoy_binary())
    assert validate_warm(resources()).ok
    socket_path = warm._directory / "xds.sock"
    assert oct(warm._directory.stat().st_mode & 0o777) == "0o700"
    assert socket_path.is_socket()
    for node_id in (warm._node_id, "gantry/validator/0"):
        code = asyncio.run(_open_stream(f"unix:{socket_path}", warm._token, node_id))
        assert code == grpc.StatusCode.UNAUTHENTICATED
    good, bad = resources(8082), with_route_regex(resources(8083), "(")
    assert validate_warm(good).ok and validate_cold(good).ok
    assert not validate_warm(bad).ok and not validate_cold(bad).ok


def test_each_validating_envoy_start_gets_a_fresh_token_and_node_id():
    warm = validator.warm_validator(envoy_binary())
    assert validate_warm(resources()).ok
    before = (warm._token, warm._node_id, warm._directory)
    os.kill(warm._process.pid, signal.SIGKILL)
    warm._process.wait(10)
    assert validate_warm(resources(8084)).ok
    after = (warm._token, warm._node_id, warm._directory)
    assert all(old != new for old, new in zip(before, after, strict=True))
    assert not before[2].exists()  # the old private directory is gone with its token


def test_an_invalid_route_is_rejected_whatever_was_checked_just_before():
    """Route names differ from one check to the next (another gateway, another port): the
    removal of the previous check's routes was once taken for an ACK of the new ones."""
    for port in (8090, 8091, 8092):
        assert validate_warm(resources(port)).ok
        bad = validate_warm(with_route_regex(resources(port + 10), "("))
        assert not bad.ok and "missing )" in bad.message
