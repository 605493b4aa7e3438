"""Upstream TLS through real Envoy: the backend's certificate is verified, chain and name."""

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from provisioning.ir.build import DesiredState
from tests.provisioning.certs import self_signed
from tests.provisioning.harness import running_envoy

pytestmark = pytest.mark.slow


class Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = json.dumps({"tls": True, "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def https_backend(tmp_path_factory):
    chain, key = self_signed(["pay.internal"])
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_text(chain)
    (folder / "key.pem").write_text(key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], chain
    server.shutdown()


@pytest.fixture(scope="module")
def gateway(https_backend):
    port, ca = https_backend
    other_ca, _ = self_signed(["other-ca.example"])
    endpoint = [{"ip": {"address": "127.0.0.1", "port": port}}]

    def backend(sni, ca_name):
        return {
            "endpoints": endpoint,
            "tls": {"sni": sni, "caCertificateRefs": [{"name": ca_name}]},
        }

    state = DesiredState(
        tenant="acme",
        gateway="edge",
        spec={"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
        routes=[{"name": name, "spec": {"hostnames": [f"{name}.test"],
                                        "rules": [{"backendRefs": [{"name": name}]}]}}
                for name in ("good", "wrong-name", "wrong-ca", "system-ca")],
        backends={
            "good": backend("pay.internal", "ca"),
            "wrong-name": backend("evil.internal", "ca"),
            "wrong-ca": backend("pay.internal", "other"),
            "system-ca": {"endpoints": endpoint, "tls": {"sni": "pay.internal"}},
        },
        certificates={
            "ca": {"certificatePem": ca, "privateKeyPem": "", "dnsNames": ["pay.internal"]},
            "other": {"certificatePem": other_ca, "privateKeyPem": "", "dnsNames": []},
        },
    )  # fmt: skip
    with running_envoy(state) as ports:
        yield lambda host: requests.get(
            f"http://127.0.0.1:{ports[80]}/x", headers={"Host": host}, timeout=10
        )


def test_a_backend_with_a_trusted_certificate_is_reached_over_tls(gateway):
    answer = gateway("good.test")
    assert answer.status_code == 200
    assert answer.json() == {"tls": True, "path": "/x"}


@pytest.mark.parametrize("host", ["wrong-name.test", "wrong-ca.test", "system-ca.test"])
def test_an_unverifiable_backend_is_refused(gateway, host):
    assert gateway(host).status_code == 503
