"""HTTPS listeners through real Envoy: TLS terminated, certificate chosen by SNI, HTTP/2 and
HTTP/1.1 offered by ALPN."""

import socket
import ssl

import pytest
from cryptography import x509

from provisioning.ir.build import DesiredState
from tests.provisioning.certs import self_signed
from tests.provisioning.harness import Upstream, running_envoy

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def https_gateway():
    upstream = Upstream("app")
    cert_a, cert_b = self_signed(["a.example.com"]), self_signed(["b.example.com"], kind="rsa")
    tls = {"a": cert_a, "b": cert_b}
    state = DesiredState(
        tenant="acme",
        gateway="edge",
        spec={"listeners": [
            {"name": "https-a", "protocol": "HTTPS", "port": 443, "hostname": "a.example.com",
             "tls": {"certificateRefs": [{"name": "a"}]}},
            {"name": "https-b", "protocol": "HTTPS", "port": 443, "hostname": "b.example.com",
             "tls": {"certificateRefs": [{"name": "b"}]}},
            {"name": "shared", "protocol": "HTTPS", "port": 8443,
             "tls": {"certificateRefs": [{"name": "a"}, {"name": "b"}]}},
        ]},
        routes=[{"name": "site", "spec": {"rules": [{"backendRefs": [{"name": "app"}]}]}}],
        backends={"app": upstream.backend()},
        certificates={
            name: {"certificatePem": chain, "privateKeyPem": key,
                   "dnsNames": [f"{name}.example.com"]}
            for name, (chain, key) in tls.items()
        },
    )  # fmt: skip
    with running_envoy(state) as ports:
        yield ports, tls
    upstream.close()


def handshake(port: int, server_name: str, alpn=("h2", "http/1.1")):
    """(certificate names, negotiated ALPN, HTTP/1.1 status line) over TLS with this SNI."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(list(alpn))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:  # noqa: SIM117
        with context.wrap_socket(raw, server_hostname=server_name) as tls:
            cert = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
            names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            status = None
            if tls.selected_alpn_protocol() == "http/1.1":
                tls.sendall(f"GET / HTTP/1.1\r\nHost: {server_name}\r\n\r\n".encode())
                status = tls.recv(4096).split(b"\r\n")[0].decode()
            return (
                names.value.get_values_for_type(x509.DNSName),
                tls.selected_alpn_protocol(),
                status,
            )


def test_each_listener_serves_its_certificate_by_sni(https_gateway):
    ports, _ = https_gateway
    assert handshake(ports[443], "a.example.com")[0] == ["a.example.com"]
    assert handshake(ports[443], "b.example.com")[0] == ["b.example.com"]


def test_two_certificates_on_one_listener_are_chosen_by_sni(https_gateway):
    ports, _ = https_gateway
    assert handshake(ports[8443], "a.example.com")[0] == ["a.example.com"]
    assert handshake(ports[8443], "b.example.com")[0] == ["b.example.com"]


def test_http2_and_http11_are_offered_and_requests_flow(https_gateway):
    ports, _ = https_gateway
    assert handshake(ports[443], "a.example.com")[1] == "h2"
    names, alpn, status = handshake(ports[443], "a.example.com", alpn=("http/1.1",))
    assert (alpn, status) == ("http/1.1", "HTTP/1.1 200 OK")


def test_an_unknown_server_name_gets_no_certificate(https_gateway):
    ports, _ = https_gateway
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        handshake(ports[443], "c.example.com")
