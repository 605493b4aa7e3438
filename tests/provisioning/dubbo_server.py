"""A Dubbo 2 protocol server and client the tests own (loopback only), Hessian2 serialization.

Framing (Dubbo's ``ExchangeCodec``): a 16-byte header — magic ``0xdabb``; a flag byte (0x80
request, 0x40 two-way, 0x20 event, the low five bits the serialization: 2 is Hessian2); the
response status (20 OK, 60 service not found, …); the request id (8 bytes); the body length (4
bytes) — then the body. A request's body is, in Hessian2: the Dubbo version, the interface
(service path), the service version, the method, the parameter types (a JVM descriptor such as
``Ljava/lang/String;I``), the arguments, and the attachments (a map; the group is its ``group``
entry). A response's body is the response type (1: a value, 0: an exception, 2: null; 3 to 5
the same with attachments after) and the value; a failed call's body (another status) is the
error message.
"""

import contextlib
import socket
import struct
import threading
from dataclasses import dataclass, field

from tests.provisioning import hessian2

MAGIC = 0xDABB
HEADER = struct.Struct(">HBBqi")  # magic, flag, status, request id, body length
REQUEST, TWO_WAY, EVENT = 0x80, 0x40, 0x20
HESSIAN2 = 2
OK, SERVICE_NOT_FOUND, SERVER_ERROR = 20, 60, 80
RESPONSE_WITH_EXCEPTION, RESPONSE_VALUE, RESPONSE_NULL_VALUE = 0, 1, 2
RESPONSE_WITH_EXCEPTION_WITH_ATTACHMENTS = 3
RESPONSE_VALUE_WITH_ATTACHMENTS, RESPONSE_NULL_VALUE_WITH_ATTACHMENTS = 4, 5
DUBBO_VERSION = "2.0.2"
MAX_BODY = 8 * 1024 * 1024


def descriptor(value) -> str:
    """The JVM type descriptor Dubbo sends for an argument."""
    if isinstance(value, bool):
        return "Z"
    if isinstance(value, hessian2.Long):
        return "J"
    if isinstance(value, int):
        return "I"
    if isinstance(value, dict):
        return "Ljava/util/Map;"
    return "Ljava/lang/String;"


def read_frame(sock: socket.socket) -> tuple[int, int, int, bytes] | None:
    """(flag, status, request id, body) of the next frame, or None when the peer closed."""
    head = _read_exactly(sock, HEADER.size)
    if head is None:
        return None
    magic, flag, status, request_id, length = HEADER.unpack(head)
    if magic != MAGIC or not 0 <= length <= MAX_BODY:
        raise ValueError(f"not a Dubbo frame: magic {magic:#x}, body length {length}")
    body = _read_exactly(sock, length) if length else b""
    if body is None:
        raise ValueError("the peer closed in the middle of a frame")
    return flag, status, request_id, body


def _read_exactly(sock: socket.socket, count: int) -> bytes | None:
    chunks, wanted = [], count
    while wanted:
        chunk = sock.recv(wanted)
        if not chunk:
            if wanted == count:
                return None
            raise ValueError("the peer closed in the middle of a frame")
        chunks.append(chunk)
        wanted -= len(chunk)
    return b"".join(chunks)


def frame(flag: int, status: int, request_id: int, body: bytes) -> bytes:
    return HEADER.pack(MAGIC, flag, status, request_id, len(body)) + body


def request_body(service, method, args=(), version="0.0.0", attachments=None) -> bytes:
    attachments = {"path": service, "interface": service, "version": version,
                   **(attachments or {})}  # fmt: skip
    types = "".join(descriptor(arg) for arg in args)
    return hessian2.encode_all(DUBBO_VERSION, service, version, method, types, *args, attachments)


@dataclass
class Invocation:
    """A call as the server decoded it."""

    service: str
    version: str
    method: str
    types: str
    args: list
    attachments: dict

    @property
    def group(self) -> str | None:
        return self.attachments.get("group")


def parse_request(body: bytes) -> Invocation:
    decoder = hessian2.Decoder(body)
    _dubbo_version, service, version, method, types = (decoder.read() for _ in range(5))
    args = [decoder.read() for _ in range(_count_types(types))]
    attachments = decoder.read() if not decoder.at_end() else {}
    return Invocation(service, version, method, types, args, attachments or {})


def _count_types(types: str) -> int:
    count, index = 0, 0
    while index < len(types):
        while types[index] == "[":
            index += 1
        index = types.index(";", index) + 1 if types[index] == "L" else index + 1
        count += 1
    return count


class DubboServer:
    """Answers every call with the string ``<name>|<service>|<version>|<group>|<method>|<args>``
    (the arguments joined with commas) and records it in ``calls``; answers heartbeats."""

    def __init__(self, name: str):
        self.name = name
        self.calls: list[Invocation] = []
        self._lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._closed = False
        self._connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def backend(self) -> dict:
        return {"endpoints": [{"ip": {"address": "127.0.0.1", "port": self.port}}],
                "appProtocol": "dubbo"}  # fmt: skip

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._connections.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            while True:
                try:
                    got = read_frame(conn)
                except (OSError, ValueError):
                    return
                if got is None:
                    return
                flag, _, request_id, body = got
                if not flag & REQUEST:
                    continue  # an answer to a heartbeat of ours (we send none)
                answer_flag = HESSIAN2 | (flag & EVENT)
                if flag & EVENT:  # a heartbeat: answered with null
                    reply = frame(answer_flag, OK, request_id, hessian2.encode(None))
                else:
                    reply = self._answer(answer_flag, request_id, body)
                if flag & TWO_WAY:
                    try:
                        conn.sendall(reply)
                    except OSError:
                        return

    def _answer(self, flag: int, request_id: int, body: bytes) -> bytes:
        try:
            call = parse_request(body)
        except (hessian2.HessianError, ValueError, IndexError) as error:
            return frame(flag, 40, request_id, hessian2.encode(f"bad request: {error}"))
        with self._lock:
            self.calls.append(call)
        args = ",".join(str(arg) for arg in call.args)
        text = f"{self.name}|{call.service}|{call.version}|{call.group or ''}|{call.method}|{args}"
        return frame(flag, OK, request_id, hessian2.encode_all(RESPONSE_VALUE, text))

    def close(self) -> None:
        self._closed = True
        self._sock.close()
        with self._lock:
            for conn in self._connections:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)


@dataclass
class Response:
    status: int
    request_id: int
    value: object = None  # the returned value (status 20), or the error message
    attachments: dict = field(default_factory=dict)

    @property
    def backend(self) -> str:
        return str(self.value).split("|")[0]


def parse_response(status: int, request_id: int, body: bytes) -> Response:
    values = hessian2.decode_all(body)
    if status != OK:
        # A Dubbo server sends the message alone; Envoy's own answers put a response type
        # (0, an exception) before it.
        message = values[-1] if values else None
        return Response(status, request_id, message)
    kind, rest = values[0], values[1:]
    with_attachments = kind in (RESPONSE_WITH_EXCEPTION_WITH_ATTACHMENTS,
                                RESPONSE_VALUE_WITH_ATTACHMENTS,
                                RESPONSE_NULL_VALUE_WITH_ATTACHMENTS)  # fmt: skip
    attachments = rest.pop() if with_attachments and rest else {}
    return Response(status, request_id, rest[0] if rest else None, attachments)


class DubboClient:
    """One connection; ``call`` sends a two-way request and waits (at most ``timeout``) for
    the answer with its request id."""

    def __init__(self, port: int, timeout: float = 5):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._next_id = 1

    def call(self, service, method, *args, version="0.0.0", group=None, attachments=None):
        extra = dict(attachments or {})
        if group is not None:
            extra["group"] = group
        request_id = self._next_id
        self._next_id += 1
        body = request_body(service, method, args, version, extra)
        self.sock.sendall(frame(REQUEST | TWO_WAY | HESSIAN2, 0, request_id, body))
        while True:
            got = read_frame(self.sock)
            if got is None:
                raise ConnectionError("the gateway closed the connection without answering")
            flag, status, answered, body = got
            if answered == request_id and not flag & REQUEST:
                return parse_response(status, answered, body)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
