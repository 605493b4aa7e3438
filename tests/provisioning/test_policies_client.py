"""ClientTrafficPolicy through real Envoy and real upstreams: a slow client's request timed
out with 408, an idle keep-alive connection closed, the connection past the limit closed while
the others stay served, the client address taken from X-Forwarded-For (and authorization
rules matching it), TLS versions, ciphers and ALPN per HTTPS listener, and the HTTP/2
settings Envoy announces."""

import contextlib
import socket
import ssl
import struct
import time

import pytest
import requests

from gateways.validation.policies import validate_policy_spec
from provisioning.compile import compile_gateway
from provisioning.desired import load_desired_state
from provisioning.ir.build import DesiredState
from tenants.roles import Role
from tests.provisioning.certs import self_signed
from tests.provisioning.harness import Upstream, running_envoy

pytestmark = pytest.mark.slow

GROUP = "gateway.networking.k8s.io"
HOSTS = ["modern.example.com", "legacy.example.com", "cipher.example.com"]
LISTENERS = [
    {"name": "timeouts", "protocol": "HTTP", "port": 80},
    {"name": "limited", "protocol": "HTTP", "port": 81},
    {"name": "forwarded", "protocol": "HTTP", "port": 82},
    {"name": "h2", "protocol": "HTTP", "port": 83},
    {"name": "delayed", "protocol": "HTTP", "port": 84},
    *({"name": host.split(".")[0], "protocol": "HTTPS", "port": 443, "hostname": host,
       "tls": {"certificateRefs": [{"name": "site"}]}} for host in HOSTS),
]  # fmt: skip


def policy(name, kind="ClientTrafficPolicy", **spec):
    raw = {"targetRefs": [{"group": GROUP, "kind": "Gateway", "name": "edge",
                           "sectionName": name}], **spec}  # fmt: skip
    listener_names = [listener["name"] for listener in LISTENERS]
    return {"name": name, "kind": kind,
            "spec": validate_policy_spec(kind, raw, "edge", listener_names)}  # fmt: skip


@pytest.fixture(scope="module")
def gateway():
    upstream = Upstream("app")
    chain, key = self_signed(HOSTS)  # an EC key: ECDSA cipher suites
    state = DesiredState(
        tenant="acme",
        gateway="edge",
        spec={"listeners": LISTENERS},
        routes=[{"name": "site", "spec": {"rules": [{"backendRefs": [{"name": "app"}]}]}}],
        backends={"app": upstream.backend()},
        certificates={"site": {"certificatePem": chain, "privateKeyPem": key,
                               "dnsNames": HOSTS}},
        policies=[
            policy("timeouts", timeout={"http": {"requestReceivedTimeout": "500ms",
                                                 "idleTimeout": "1s"}}),
            policy("limited", connection={"connectionLimit": {"value": 2}}),
            policy("delayed", connection={"connectionLimit": {"value": 1, "closeDelay": "700ms"}}),
            policy("forwarded", clientIPDetection={"xForwardedFor": {"numTrustedHops": 1}}),
            policy("forwarded", kind="SecurityPolicy", authorization={
                "defaultAction": "Deny",
                "rules": [{"action": "Allow", "principal": {"clientCIDRs": ["203.0.113.0/24"]}}]}),
            policy("h2", http2={"maxConcurrentStreams": 7, "initialStreamWindowSize": "128Ki",
                                "initialConnectionWindowSize": "1Mi"}),
            policy("modern", tls={"minVersion": "1.3", "alpnProtocols": ["http/1.1"]}),
            policy("cipher", tls={"maxVersion": "1.2",
                                  "ciphers": ["ECDHE-ECDSA-AES256-GCM-SHA384"]}),
        ],
    )  # fmt: skip
    with running_envoy(state) as ports:
        yield ports, upstream
    upstream.close()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def read_response(sock: socket.socket) -> bytes:
    """One HTTP/1.1 response with a Content-Length (b"" if the connection closed first)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)  # fmt: skip
    while len(body) < length:
        body += sock.recv(4096)
    return head


def closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def get(sock: socket.socket, host: str = "x.test") -> bytes:
    sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return read_response(sock)


def test_a_client_sending_its_request_slowly_gets_408(gateway):
    ports, _ = gateway
    with connect(ports[80]) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x.test\r\n")  # the headers never end
        started = time.monotonic()
        answer = read_response(sock)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert 0.4 < time.monotonic() - started < 3


def test_an_idle_keep_alive_connection_is_closed(gateway):
    ports, _ = gateway
    with connect(ports[80]) as idle, connect(ports[81]) as default:
        assert get(idle).startswith(b"HTTP/1.1 200")
        assert get(default).startswith(b"HTTP/1.1 200")  # without the policy: one hour
        idle.settimeout(15)
        started = time.monotonic()
        # Idle for 1s, then Envoy's drain sequence (drain_timeout 5s, delayed close 1s).
        assert closed(idle)
        assert 0.9 < time.monotonic() - started < 12
        default.settimeout(0.2)
        with pytest.raises(TimeoutError):
            default.recv(1)
        assert get(default).startswith(b"HTTP/1.1 200")


def test_the_connection_past_the_limit_is_closed_and_the_others_stay_served(gateway):
    ports, _ = gateway
    first, second = connect(ports[81]), connect(ports[81])
    try:
        assert get(first).startswith(b"HTTP/1.1 200")
        assert get(second).startswith(b"HTTP/1.1 200")
        with connect(ports[81]) as third:
            third.settimeout(5)
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                third.sendall(b"GET / HTTP/1.1\r\nHost: x.test\r\n\r\n")
            assert closed(third)
        assert get(first).startswith(b"HTTP/1.1 200")
        assert get(second).startswith(b"HTTP/1.1 200")
    finally:
        first.close()
        second.close()
    time.sleep(0.3)  # Envoy sees the two close; a new connection fits again
    with connect(ports[81]) as again:
        assert get(again).startswith(b"HTTP/1.1 200")


def test_a_close_delay_holds_the_connection_past_the_limit_before_closing_it(gateway):
    ports, _ = gateway
    with connect(ports[84]) as first:
        assert get(first).startswith(b"HTTP/1.1 200")
        with connect(ports[84]) as second:
            second.settimeout(5)
            started = time.monotonic()
            assert closed(second)
            assert 0.6 < time.monotonic() - started < 4
        assert get(first).startswith(b"HTTP/1.1 200")


def test_the_client_address_comes_from_x_forwarded_for_with_a_trusted_hop(gateway):
    ports, upstream = gateway
    url = f"http://127.0.0.1:{ports[82]}/"
    answer = requests.get(url, headers={"X-Forwarded-For": "203.0.113.7"}, timeout=5)
    assert answer.status_code == 200  # authorization allows 203.0.113.0/24 only
    seen = answer.json()["headers"]
    assert seen["x-envoy-external-address"] == "203.0.113.7"
    assert seen["x-forwarded-for"].startswith("203.0.113.7,")  # then the peer's address
    other = requests.get(url, headers={"X-Forwarded-For": "198.51.100.1"}, timeout=5)
    assert other.status_code == 403
    assert requests.get(url, timeout=5).status_code == 403  # the peer itself
    # Without the policy the header is not trusted: the peer is the client.
    plain = requests.get(f"http://127.0.0.1:{ports[81]}/",
                         headers={"X-Forwarded-For": "203.0.113.7"}, timeout=5)  # fmt: skip
    assert plain.json()["headers"].get("x-envoy-external-address") != "203.0.113.7"


def tls_client(maximum=None, minimum=None, ciphers=None, alpn=("h2", "http/1.1")):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if maximum:
        context.maximum_version = maximum
    if minimum:
        context.minimum_version = minimum
    if ciphers:
        context.set_ciphers(ciphers)
    context.set_alpn_protocols(list(alpn))
    return context


def handshake(port: int, host: str, context: ssl.SSLContext) -> tuple[str, str, str]:
    """(TLS version, cipher, ALPN) negotiated with ``host`` by SNI."""
    with connect(port) as raw, context.wrap_socket(raw, server_hostname=host) as tls:
        return tls.version(), tls.cipher()[0], tls.selected_alpn_protocol()


def test_a_tls_1_2_client_is_refused_by_a_listener_requiring_1_3(gateway):
    ports, _ = gateway
    old = tls_client(maximum=ssl.TLSVersion.TLSv1_2)
    with pytest.raises(ssl.SSLError):
        handshake(ports[443], "modern.example.com", old)
    # The same port, another listener without the policy: TLS 1.2 is fine there.
    assert handshake(ports[443], "legacy.example.com", old)[0] == "TLSv1.2"
    version, _, alpn = handshake(ports[443], "modern.example.com", tls_client())
    assert (version, alpn) == ("TLSv1.3", "http/1.1")  # alpnProtocols: HTTP/1.1 only
    assert handshake(ports[443], "legacy.example.com", tls_client())[2] == "h2"


def test_only_the_configured_ciphers_are_negotiated(gateway):
    ports, _ = gateway
    wanted = tls_client(ciphers="ECDHE-ECDSA-AES256-GCM-SHA384")
    assert handshake(ports[443], "cipher.example.com", wanted)[:2] == (
        "TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384")  # fmt: skip
    other = tls_client(ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
    with pytest.raises(ssl.SSLError):
        handshake(ports[443], "cipher.example.com", other)
    # maxVersion 1.2: a client that wants TLS 1.3 only cannot connect.
    with pytest.raises(ssl.SSLError):
        handshake(ports[443], "cipher.example.com", tls_client(minimum=ssl.TLSVersion.TLSv1_3))
    # The same port, another listener without the policy: Envoy's default ciphers.
    old_other = tls_client(maximum=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
    assert handshake(ports[443], "legacy.example.com", old_other)[:2] == (
        "TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256")  # fmt: skip


def frames(sock: socket.socket):
    """HTTP/2 frames as (type, flags, stream, payload) until the connection goes quiet."""
    buffer = b""
    while True:
        while len(buffer) >= 9 and len(buffer) >= 9 + int.from_bytes(buffer[:3], "big"):
            length = int.from_bytes(buffer[:3], "big")
            stream = struct.unpack(">I", buffer[5:9])[0] & 0x7FFFFFFF
            yield buffer[3], buffer[4], stream, buffer[9 : 9 + length]
            buffer = buffer[9 + length :]
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            return
        if not chunk:
            return
        buffer += chunk


def server_settings(port: int) -> tuple[dict[int, int], int]:
    """The SETTINGS Envoy sends an HTTP/2 client (h2c, prior knowledge), and the increment of
    its connection-level WINDOW_UPDATE (0 if none)."""
    settings: dict[int, int] = {}
    window = 0
    with connect(port) as sock:
        empty_settings = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + empty_settings)
        sock.settimeout(1)
        for kind, flags, stream, payload in frames(sock):
            if kind == 0x4 and not flags & 0x1:  # SETTINGS, not an ACK
                for offset in range(0, len(payload), 6):
                    key, value = struct.unpack(">HI", payload[offset : offset + 6])
                    settings[key] = value
            elif kind == 0x8 and stream == 0:  # WINDOW_UPDATE of the connection
                window = struct.unpack(">I", payload)[0] & 0x7FFFFFFF
            if settings and window:
                break
    return settings, window


MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE = 0x3, 0x4


def test_http2_settings_are_announced_to_clients(gateway):
    ports, _ = gateway
    settings, window = server_settings(ports[83])
    assert settings[MAX_CONCURRENT_STREAMS] == 7
    assert settings[INITIAL_WINDOW_SIZE] == 128 * 1024
    assert window == 1024 * 1024 - 65_535  # the connection window grows to 1Mi
    defaults, default_window = server_settings(ports[81])  # without the policy: Envoy's own
    assert defaults[MAX_CONCURRENT_STREAMS] != 7
    assert defaults[INITIAL_WINDOW_SIZE] != 128 * 1024
    assert default_window != window


def test_a_policy_written_through_the_api_is_what_envoy_serves(org):
    """Status and compiler agree: a listener policy Conflicted on a shared port changes nothing
    in the config; the gateway's connection limit is served."""
    editor = org.client(Role.EDITOR)
    upstream = Upstream("app")
    base = "/api/v1/tenants/acme/"
    listeners = [
        {"name": "http", "protocol": "HTTP", "port": 80},
        {"name": "alt", "protocol": "HTTP", "port": 80, "hostname": "alt.test"},
    ]
    editor.post(base + "gateways/", {"name": "edge", "spec": {"listeners": listeners}},
                format="json")  # fmt: skip
    editor.post(base + "backends/", {"name": "app", "spec": upstream.backend()}, format="json")
    editor.post(base + "gateways/edge/routes/", {"name": "web", "spec": {"rules": [
        {"backendRefs": [{"name": "app"}]}]}}, format="json")  # fmt: skip
    policies = base + "gateways/edge/policies/"
    gateway_wide = {"name": "limit", "kind": "ClientTrafficPolicy", "spec": {
        "targetRefs": [{"kind": "Gateway", "name": "edge"}],
        "connection": {"connectionLimit": {"value": 1}}}}  # fmt: skip
    assert editor.post(policies, gateway_wide, format="json").status_code == 202
    alt_only = {"name": "alt", "kind": "ClientTrafficPolicy", "spec": {
        "targetRefs": [{"kind": "Gateway", "name": "edge", "sectionName": "alt"}],
        "timeout": {"http": {"requestReceivedTimeout": "1s"}}}}  # fmt: skip
    body = editor.post(policies, alt_only, format="json").json()
    assert body["status"]["ancestors"][0]["conditions"][0]["reason"] == "Conflicted"
    try:
        state = load_desired_state(org.tenant.gateways.get(name="edge").pk)
        hcm = compile_gateway(state).listeners[0]["filter_chains"][0]["filters"][-1]
        assert "request_timeout" not in hcm["typed_config"]
        with running_envoy(state) as ports, connect(ports[80]) as first:
            assert get(first).startswith(b"HTTP/1.1 200")
            with connect(ports[80]) as second:
                second.settimeout(5)
                assert closed(second)
            assert get(first, "alt.test").startswith(b"HTTP/1.1 200")
    finally:
        upstream.close()


def refused(port: int, host: str, context: ssl.SSLContext) -> bool:
    """Whether the gateway closes a new TLS connection (during or right after the handshake)."""
    try:
        with connect(port) as raw, context.wrap_socket(raw, server_hostname=host) as tls:
            return get(tls, host) == b""
    except OSError:  # ssl.SSLError included
        return True


def test_each_https_listener_of_a_port_counts_its_own_connections():
    upstream = Upstream("app")
    hosts = ["one.example.com", "two.example.com"]
    chain, key = self_signed(hosts)
    listeners = [{"name": host.split(".")[0], "protocol": "HTTPS", "port": 443, "hostname": host,
                  "tls": {"certificateRefs": [{"name": "site"}]}} for host in hosts]  # fmt: skip
    raw = {"targetRefs": [{"kind": "Gateway", "name": "edge"}],
           "connection": {"connectionLimit": {"value": 1}}}  # fmt: skip
    spec = validate_policy_spec("ClientTrafficPolicy", raw, "edge", ["one", "two"])
    state = DesiredState(
        tenant="acme", gateway="edge", spec={"listeners": listeners},
        routes=[{"name": "site", "spec": {"rules": [{"backendRefs": [{"name": "app"}]}]}}],
        backends={"app": upstream.backend()},
        certificates={"site": {"certificatePem": chain, "privateKeyPem": key, "dnsNames": hosts}},
        policies=[{"name": "limit", "kind": "ClientTrafficPolicy", "spec": spec}],
    )  # fmt: skip
    context = tls_client(alpn=("http/1.1",))
    try:
        with running_envoy(state) as ports:
            raw_one = connect(ports[443])
            with context.wrap_socket(raw_one, server_hostname=hosts[0]) as first:
                assert get(first, hosts[0]).startswith(b"HTTP/1.1 200")
                assert refused(ports[443], hosts[0], context)  # over listener "one"'s limit
                # Listener "two", on the same port, has its own counter.
                with (
                    connect(ports[443]) as raw,
                    context.wrap_socket(raw, server_hostname=hosts[1]) as other,
                ):
                    assert get(other, hosts[1]).startswith(b"HTTP/1.1 200")
                assert get(first, hosts[0]).startswith(b"HTTP/1.1 200")
    finally:
        upstream.close()


def test_header_settings_drop_rate_limit_headers_and_keep_the_clients_request_id():
    """``headers`` on one listener: its 200s and 429s carry no ``x-ratelimit-*`` headers and
    the client's ``x-request-id`` reaches the backend; the other listener keeps Envoy's
    defaults (headers on every answer, a fresh request id for a request from outside)."""
    upstream = Upstream("app")
    listeners = [{"name": "plain", "protocol": "HTTP", "port": 80},
                 {"name": "quiet", "protocol": "HTTP", "port": 81}]  # fmt: skip
    names = [listener["name"] for listener in listeners]
    gateway_ref = {"group": GROUP, "kind": "Gateway", "name": "edge"}
    limit = {"targetRefs": [gateway_ref], "rateLimit": {"type": "Local", "local": {
        "rules": [{"limit": {"requests": 2, "unit": "Hour"}}]}}}  # fmt: skip
    quiet = {"targetRefs": [{**gateway_ref, "sectionName": "quiet"}],
             "headers": {"disableRateLimitHeaders": True, "preserveXRequestID": True}}  # fmt: skip
    state = DesiredState(
        tenant="acme", gateway="edge", spec={"listeners": listeners},
        routes=[{"name": "site", "spec": {"rules": [{"backendRefs": [{"name": "app"}]}]}}],
        backends={"app": upstream.backend()},
        policies=[
            {"name": "limit", "kind": "BackendTrafficPolicy",
             "spec": validate_policy_spec("BackendTrafficPolicy", limit, "edge", names)},
            {"name": "quiet", "kind": "ClientTrafficPolicy",
             "spec": validate_policy_spec("ClientTrafficPolicy", quiet, "edge", names)},
        ],
    )  # fmt: skip
    request_id = "7d2c5e1a-0000-4000-8000-00000000abcd"
    try:
        with running_envoy(state) as ports:
            answers = {}
            for port in (80, 81):
                answers[port] = [
                    requests.get(f"http://127.0.0.1:{ports[port]}/", timeout=5,
                                 headers={"x-request-id": request_id})
                    for _ in range(3)
                ]  # fmt: skip
                assert [a.status_code for a in answers[port]] == [200, 200, 429]
            assert answers[80][0].headers["x-ratelimit-limit"] == "2"
            assert answers[80][2].headers["x-ratelimit-remaining"] == "0"
            for answer in answers[81]:
                assert not [h for h in answer.headers if h.lower().startswith("x-ratelimit")]
            seen = [r["headers"].get("x-request-id") for r in upstream.requests]
            assert len(seen) == 4
            assert seen[0] != request_id and seen[1] != request_id  # port 80: replaced
            assert seen[2:] == [request_id, request_id]  # port 81: the client's own
    finally:
        upstream.close()
