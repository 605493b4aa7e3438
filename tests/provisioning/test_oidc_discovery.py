"""Reading an OpenID provider's discovery document at compile time: the egress policy applied
to the platform's own connection, no redirects followed, the issuer checked, bounded in size
and time, failures cached briefly and returned as a reason (never raised)."""

import json
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.cache import cache

from gateways.egress import current_policy
from provisioning import oidc_discovery
from provisioning.oidc_discovery import CACHE_PREFIX, discover


class Provider:
    """An HTTP server answering the discovery path with ``answer(issuer)`` → (status, headers,
    body); counts the requests it got."""

    def __init__(self, answer):
        self.hits = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                owner.hits += 1
                status, headers, body = answer(owner.issuer)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        self.issuer = f"http://127.0.0.1:{self.http.server_address[1]}/realm"
        cache.delete(CACHE_PREFIX + self.issuer)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self):
        self.http.shutdown()
        self.http.server_close()


def document(issuer, **extra):
    return {"issuer": issuer, "authorization_endpoint": f"{issuer}/auth",
            "token_endpoint": f"{issuer}/token", **extra}  # fmt: skip


def serving(body_of, status=200, headers=None):
    return lambda issuer: (status, headers or {}, body_of(issuer))


@pytest.fixture
def provider_with():
    started = []

    def start(answer):
        started.append(Provider(answer))
        return started[-1]

    yield start
    for provider in started:
        provider.close()


def test_a_good_document_gives_the_endpoints_and_is_cached(provider_with):
    methods = {"token_endpoint_auth_methods_supported": ["client_secret_post"]}
    provider = provider_with(
        serving(lambda issuer: json.dumps(document(issuer, **methods)).encode())
    )
    found = discover(provider.issuer, current_policy())
    assert found == {"authorizationEndpoint": f"{provider.issuer}/auth",
                     "tokenEndpoint": f"{provider.issuer}/token",
                     "authMethods": ["client_secret_post"]}  # fmt: skip
    assert discover(provider.issuer, current_policy()) == found
    assert provider.hits == 1  # the second answer came from the cache


BAD = [
    (serving(lambda issuer: b"", status=302, headers={"Location": "http://169.254.169.254/"}),
     "answered 302 (redirects are not followed)"),
    (serving(lambda issuer: json.dumps(document("https://evil.test")).encode()),
     "the document's issuer is 'https://evil.test'"),
    (serving(lambda issuer: b"<html>"), "is not JSON"),
    (serving(lambda issuer: json.dumps(document(issuer, token_endpoint="ftp://x")).encode()),
     "token_endpoint is missing or not an http(s) URI"),
    (serving(lambda issuer: json.dumps(document(
        issuer, token_endpoint="http://169.254.169.254/token")).encode()),
     "token_endpoint is refused by the egress policy"),
    (serving(lambda issuer: b" " * (oidc_discovery.MAX_BYTES + 1)), "is larger than"),
]  # fmt: skip


@pytest.mark.parametrize(("answer", "reason"), BAD)
def test_a_bad_document_is_a_reason_not_an_exception(provider_with, answer, reason):
    provider = provider_with(answer)
    found = discover(provider.issuer, current_policy())
    assert set(found) == {"error"}
    assert found["error"].startswith(f"{provider.issuer}/.well-known/openid-configuration: ")
    assert reason in found["error"]


def test_the_egress_policy_applies_to_the_platform_itself(provider_with):
    provider = provider_with(serving(lambda issuer: json.dumps(document(issuer)).encode()))
    strict = replace(current_policy(), allow_loopback=False)
    found = discover(provider.issuer, strict)
    assert "refused by the egress policy" in found["error"]
    assert provider.hits == 0  # never connected


def test_a_provider_that_does_not_answer_is_given_up_in_time(provider_with, settings):
    settings.GANTRY_OIDC_DISCOVERY_TIMEOUT_SECONDS = 0.5

    def slow(issuer):
        time.sleep(3)
        return 200, {}, b"{}"

    provider = provider_with(slow)
    started = time.monotonic()
    found = discover(provider.issuer, current_policy())
    assert time.monotonic() - started < 2.5
    assert "cannot be read (TimeoutError" in found["error"]
