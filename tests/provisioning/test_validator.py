"""The warm validator: a long-lived Envoy in this process, fed over a private ADS stream, gives
the same verdicts as ``envoy --mode validate`` (with Envoy's message), binds no port, and comes
back if it dies."""

import dataclasses
import os
import signal
import socket

from provisioning import validator
from provisioning.compile import compile_gateway
from provisioning.envoy import envoy_binary, validate, validate_cold, validate_warm
from provisioning.ir.build import DesiredState
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
