"""Real grpcio servers for traffic tests: each answers every method of every service with what it
saw, and keeps the calls it received (loopback only)."""

import threading
import time
from concurrent import futures

import grpc

HEALTH_CHECK = "/grpc.health.v1.Health/Check"
# grpc.health.v1.HealthCheckResponse {status = 1}, protobuf wire format: field 1, varint.
SERVING, NOT_SERVING = 1, 2


class EchoServer:
    """Answers any unary call with ``<name>|<method>|<x-echo header>|<request>``; records calls.

    A method named ``Ticks`` streams instead: the request ``b"<count>,<milliseconds>"`` is
    answered with ``count`` messages (``<name>|tick|<i>``), one every ``milliseconds``.

    It also serves the standard health service (``grpc.health.v1.Health/Check``): ``serving``
    says what it answers; the requests it got are in ``health_checks``."""

    def __init__(self, name: str):
        self.name = name
        self.serving = SERVING
        self.health_checks: list[bytes] = []
        self.calls: list[dict] = []
        self._lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self.server.add_generic_rpc_handlers((_AnyMethod(self),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def record(self, method: str, metadata: dict) -> None:
        with self._lock:
            self.calls.append({"method": method, "metadata": metadata})

    def backend(self) -> dict:
        """A Gantry backend spec reaching this server over HTTP/2."""
        return {
            "endpoints": [{"ip": {"address": "127.0.0.1", "port": self.port}}],
            "appProtocol": "gRPC",
        }

    def close(self) -> None:
        self.server.stop(None)


class _AnyMethod(grpc.GenericRpcHandler):
    def __init__(self, owner: EchoServer):
        self.owner = owner

    def service(self, details):
        method = details.method
        if method == HEALTH_CHECK:

            def check(request: bytes, context) -> bytes:
                self.owner.health_checks.append(request)
                return bytes([0x08, self.owner.serving])

            return grpc.unary_unary_rpc_method_handler(check)

        if method.endswith("/Ticks"):

            def ticks(request: bytes, context):
                count, interval = (int(part) for part in request.decode().split(","))
                for index in range(count):
                    if index:
                        time.sleep(interval / 1000)
                    yield f"{self.owner.name}|tick|{index}".encode()

            return grpc.unary_stream_rpc_method_handler(ticks)

        def answer(request: bytes, context) -> bytes:
            metadata = {key: value for key, value in context.invocation_metadata()}
            self.owner.record(method, metadata)
            echo = metadata.get("x-echo", "")
            return f"{self.owner.name}|{method}|{echo}|".encode() + request

        return grpc.unary_unary_rpc_method_handler(answer)


def call(port: int, authority: str, method: str, metadata=(), payload: bytes = b"hi"):
    """One unary call through the gateway: (answer bytes, initial metadata dict)."""
    options = [("grpc.default_authority", authority)]
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        answer, rpc = channel.unary_unary(method).with_call(
            payload, metadata=tuple(metadata), timeout=5
        )
        return answer, dict(rpc.initial_metadata())


def backend_of(answer: bytes) -> str:
    return answer.decode().split("|")[0]
