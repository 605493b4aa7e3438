"""TCPRoutes and TLSRoutes through real Envoy: real TCP echo servers and real TLS servers with
their own self-signed certificates, a real client. Test names follow Gateway API's conformance
cases where one exists (TCPRouteParentRefAttachAll, TCPRouteWeightedRouting,
TLSRouteSimpleSameNamespace, TLSRouteHostnameIntersection, TLSRouteInvalidNoMatchingListener).

The TLS listeners pass TLS through: the client sees the backend's certificate (the gateway has
none), picked by the SNI it sends.
"""

import collections
import os
import socket
import ssl
import tempfile
import threading

import pytest
from cryptography import x509

from provisioning.ir.build import DesiredState
from tests.provisioning.certs import self_signed
from tests.provisioning.harness import running_envoy

pytestmark = pytest.mark.slow


class EchoServer:
    """A TCP server on a free loopback port: answers each line with ``<name>:<line>``; with
    ``certificate`` (chain, key) it speaks TLS first (its own certificate, any SNI)."""

    def __init__(self, name: str, certificate: tuple[str, str] | None = None):
        self.name = name
        self.connections = 0
        self.context = None
        if certificate is not None:
            self._files = tempfile.TemporaryDirectory()
            chain, key = (os.path.join(self._files.name, n) for n in ("chain.pem", "key.pem"))
            with open(chain, "w") as handle:
                handle.write(certificate[0])
            with open(key, "w") as handle:
                handle.write(certificate[1])
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(chain, key)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            if self.context is not None:
                conn = self.context.wrap_socket(conn, server_side=True)
            with conn, conn.makefile("rb") as lines:
                for line in lines:
                    conn.sendall(f"{self.name}:".encode() + line)
        except (OSError, ssl.SSLError):
            pass

    def backend(self) -> dict:
        return {"endpoints": [{"ip": {"address": "127.0.0.1", "port": self.port}}]}

    def close(self):
        self.sock.close()


def talk(port: int, text: str = "hello") -> str:
    """One line over plain TCP through the gateway; the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(text.encode() + b"\n")
        return _line(sock)


def _line(sock) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.decode()


def tls_talk(port: int, server_name: str | None) -> tuple[list[str], str]:
    """(the DNS names of the certificate the client got, the answer) over TLS with this SNI."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:  # noqa: SIM117
        with context.wrap_socket(raw, server_hostname=server_name) as tls:
            cert = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
            names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            tls.sendall(b"hello\n")
            return names.value.get_values_for_type(x509.DNSName), _line(tls)


def refused(port: int, server_name: str | None) -> bool:
    """Whether a TLS handshake with this SNI fails (the gateway closes the connection)."""
    try:
        tls_talk(port, server_name)
    except (OSError, ssl.SSLError):
        return True
    return False


def tcp_route(name: str, *backends, **spec) -> dict:
    refs = [{"name": b} if isinstance(b, str) else b for b in backends]
    return {"name": name, "kind": "TCPRoute", "spec": {"rules": [{"backendRefs": refs}], **spec}}


def tls_route(name: str, hostnames: list[str], *backends, **spec) -> dict:
    refs = [{"name": b} if isinstance(b, str) else b for b in backends]
    body = {"rules": [{"backendRefs": refs}], **spec}
    if hostnames:
        body["hostnames"] = hostnames
    return {"name": name, "kind": "TLSRoute", "spec": body}


PASSTHROUGH = {"mode": "Passthrough"}


@pytest.fixture(scope="module")
def gateway():
    plain = {name: EchoServer(name) for name in ("one", "two", "three")}
    tls = {
        "a": EchoServer("a", self_signed(["a.example"])),
        "b": EchoServer("b", self_signed(["b.example"], kind="rsa")),
        "w": EchoServer("w", self_signed(["*.wild.example"])),
        "s": EchoServer("s", self_signed(["shop.example"])),
    }
    listeners = [
        {"name": "echo", "protocol": "TCP", "port": 7000},
        {"name": "split", "protocol": "TCP", "port": 7001},
        {"name": "gone", "protocol": "TCP", "port": 7002},
        {"name": "tls", "protocol": "TLS", "port": 8443, "tls": PASSTHROUGH},
        {"name": "shop", "protocol": "TLS", "port": 9443, "hostname": "*.shop.example",
         "tls": PASSTHROUGH},
        {"name": "http", "protocol": "HTTP", "port": 8080},
        {"name": "any", "protocol": "TLS", "port": 10443, "tls": PASSTHROUGH},
    ]  # fmt: skip
    routes = [
        # Oldest first: a listener or SNI name goes to the oldest route that claims it.
        tcp_route("echo", "one", parentRefs=[{"sectionName": "echo"}]),
        tcp_route("split", {"name": "one", "weight": 3}, {"name": "two", "weight": 1},
                  parentRefs=[{"sectionName": "split"}]),
        tcp_route("gone", "missing", parentRefs=[{"sectionName": "gone"}]),
        tcp_route("late", "three", parentRefs=[{"sectionName": "echo"}]),  # loses "echo"
        tls_route("site-a", ["a.example"], "a"),
        tls_route("site-b", ["b.example"], "b"),
        tls_route("wild", ["*.wild.example"], "w"),
        tls_route("site-a-late", ["a.example"], "b"),  # loses a.example to site-a
        # On the "shop" listener (*.shop.example): one name inside it, one outside.
        tls_route("inside", ["www.shop.example", "other.example"], "s",
                  parentRefs=[{"sectionName": "shop"}]),
        # No hostnames on a listener without one: every other name, and no SNI at all.
        tls_route("fallback", [], "s", parentRefs=[{"sectionName": "any"}]),
    ]  # fmt: skip
    servers = {**plain, **tls}
    state = DesiredState(
        tenant="acme", gateway="edge", spec={"listeners": listeners}, routes=routes,
        backends={name: server.backend() for name, server in servers.items()},
    )  # fmt: skip
    with running_envoy(state) as ports:
        yield ports, servers
    for server in servers.values():
        server.close()


def test_tcproute_parent_ref_attach_all(gateway):
    """TCPRouteParentRefAttachAll's shape: a TCPRoute's listener forwards every connection."""
    ports, _ = gateway
    assert talk(ports[7000], "ping") == "one:ping\n"
    assert talk(ports[7000], "again") == "one:again\n"


def test_tcproute_an_older_route_keeps_its_listener(gateway):
    ports, servers = gateway
    before = servers["three"].connections
    for _ in range(5):
        assert talk(ports[7000]).startswith("one:")
    assert servers["three"].connections == before


def test_tcproute_weighted_routing(gateway):
    ports, _ = gateway
    counts = collections.Counter(talk(ports[7001]).split(":")[0] for _ in range(200))
    assert set(counts) == {"one", "two"}
    assert 0.62 <= counts["one"] / 200 <= 0.88, counts  # 75 % expected; ~5 standard deviations


def test_tcproute_a_missing_backend_closes_the_connection(gateway):
    ports, _ = gateway
    try:
        answer = talk(ports[7002])
    except ConnectionResetError:
        answer = ""
    assert answer == ""  # accepted, then closed (or reset) without a byte


def test_tlsroute_simple_same_namespace(gateway):
    """The backend's own certificate answers: the gateway passes TLS through."""
    ports, _ = gateway
    assert tls_talk(ports[8443], "a.example") == (["a.example"], "a:hello\n")


def test_tlsroute_sni_picks_the_backend(gateway):
    ports, _ = gateway
    assert tls_talk(ports[8443], "b.example") == (["b.example"], "b:hello\n")
    assert tls_talk(ports[8443], "a.example") == (["a.example"], "a:hello\n")


def test_tlsroute_an_unknown_or_missing_sni_is_refused(gateway):
    ports, _ = gateway
    assert refused(ports[8443], "c.example")
    assert refused(ports[8443], None)
    assert refused(ports[8443], "example")


def test_tlsroute_wildcard_hostname(gateway):
    ports, _ = gateway
    assert tls_talk(ports[8443], "x.wild.example")[1] == "w:hello\n"
    assert tls_talk(ports[8443], "a.b.wild.example")[1] == "w:hello\n"  # more labels too
    assert refused(ports[8443], "wild.example")  # never the bare domain


def test_tlsroute_the_older_route_keeps_a_hostname(gateway):
    ports, servers = gateway
    before = servers["b"].connections
    for _ in range(3):
        assert tls_talk(ports[8443], "a.example")[1] == "a:hello\n"
    assert servers["b"].connections == before


def test_tlsroute_hostname_intersection(gateway):
    """A TLSRoute on a listener with a hostname gets only the names both allow."""
    ports, _ = gateway
    assert tls_talk(ports[9443], "www.shop.example") == (["shop.example"], "s:hello\n")
    assert refused(ports[9443], "other.example")  # the route's, outside the listener's
    assert refused(ports[9443], "x.shop.example")  # the listener's, not the route's


def test_tls_and_tcp_routes_never_attach_to_http_listeners(gateway):
    """TLSRouteInvalidNoMatchingListener's traffic side: the HTTP listener has no route."""
    ports, _ = gateway
    with socket.create_connection(("127.0.0.1", ports[8080]), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n")
        assert sock.recv(4096).split(b"\r\n")[0] == b"HTTP/1.1 404 Not Found"


def test_tlsroute_without_hostnames_takes_every_other_name(gateway):
    """On a listener without a hostname, a TLSRoute without hostnames takes what no other
    route's name matches, clients without SNI included; exact and wildcard names win."""
    ports, _ = gateway
    assert tls_talk(ports[10443], "c.example")[1] == "s:hello\n"
    assert tls_talk(ports[10443], None)[1] == "s:hello\n"
    assert tls_talk(ports[10443], "a.example")[1] == "a:hello\n"
    assert tls_talk(ports[10443], "x.wild.example")[1] == "w:hello\n"
