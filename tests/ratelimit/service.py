"""``manage.py ratelimit_server`` as a real subprocess for tests, and a client of it."""

import os
import socket
import sys
import time
from pathlib import Path

import grpc
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from provisioning.ratelimit.tokens import HEADER
from tests.provisioning.harness import free_port
from tests.runtime.stack import Process


def start_service(directory: Path, redis_url: str | None = None, name="ratelimit") -> Process:
    """The service on a free port (``process.port``), counting in ``redis_url`` (default: the
    test run's Redis; "" for the in-memory counts)."""
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    command = [sys.executable, "manage.py", "ratelimit_server", "--address", "127.0.0.1",
               "--port", str(port)]  # fmt: skip
    process = Process(name, command, env, directory / f"{name}.log").start()
    process.port = port
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"the rate limit service exited:\n{process.output()}")
        if "ready on" in process.output():
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    return process
        time.sleep(0.05)
    process.stop()
    raise RuntimeError(f"the rate limit service did not start:\n{process.output()}")


def ask(port: int, domain: str, token: str | None, *descriptors: list[tuple[str, str]]):
    """One ShouldRateLimit call, as a gateway's Envoy makes it."""
    request = rls_pb2.RateLimitRequest(domain=domain)
    for entries in descriptors:
        descriptor = request.descriptors.add()
        for key, value in entries:
            descriptor.entries.add(key=key, value=value)
    metadata = [(HEADER, token)] if token is not None else []
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = rls_pb2_grpc.RateLimitServiceStub(channel)
        return stub.ShouldRateLimit(request, metadata=metadata, timeout=5)
