"""An OpenID provider's endpoints, read from its discovery document when a compile needs them
(a SecurityPolicy ``oidc`` that does not give both endpoints).

The platform itself connects here, so the egress policy applies to it as to gateways: the
issuer's host is resolved once, every address it resolves to is checked, and the document is
read from a checked address (the name is only the Host header and the TLS server name, so a
DNS answer that changes after the check reaches nothing). No redirects are followed, the
answer is bounded (64 KiB) and timed (``GANTRY_OIDC_DISCOVERY_TIMEOUT_SECONDS``). The
document's ``issuer`` must be the policy's (OpenID Connect Discovery 1.0, 4.3), and its token
endpoint, which Envoy will call, must pass the egress policy too.

A result is kept in the cache (5 minutes; a failure 30 seconds), so reconciles do not ask the
provider every time. A failure is not an exception: it is ``{"error": why}``, which makes the
policy ``Invalid`` (its status says why; its routes answer 500) — never a config Envoy would
reject.
"""

import http.client
import ipaddress
import json
import logging
import socket
import ssl
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache

from gateways.egress import EgressPolicy

log = logging.getLogger(__name__)

DISCOVERY_PATH = "/.well-known/openid-configuration"
MAX_BYTES = 64 * 1024
CACHE_SECONDS, FAILURE_CACHE_SECONDS = 300, 30
CACHE_PREFIX = "oidc-discovery:"


def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + DISCOVERY_PATH


def known(issuer: str) -> dict | None:
    """The cached result for ``issuer``, without asking the provider (None: not known)."""
    return cache.get(CACHE_PREFIX + issuer)


def discover(issuer: str, egress: EgressPolicy | None) -> dict:
    """``{"authorizationEndpoint", "tokenEndpoint", "authMethods"}``, or ``{"error": why}``."""
    found = known(issuer)
    if found is not None:
        return found
    try:
        found = _endpoints(issuer, _fetch(discovery_url(issuer), egress), egress)
    except DiscoveryFailed as error:
        found = {"error": f"{discovery_url(issuer)}: {error}"}
        log.info("OpenID discovery failed: %s", found["error"])
    cache.set(CACHE_PREFIX + issuer, found,
              FAILURE_CACHE_SECONDS if "error" in found else CACHE_SECONDS)  # fmt: skip
    return found


class DiscoveryFailed(Exception):
    pass


def _endpoints(issuer: str, document: dict, egress: EgressPolicy | None) -> dict:
    if document.get("issuer") != issuer:
        raise DiscoveryFailed(f"the document's issuer is {document.get('issuer')!r}, not the "
                              "policy's (OpenID Connect Discovery 4.3)")  # fmt: skip
    found = {}
    for key, name in (("authorization_endpoint", "authorizationEndpoint"),
                      ("token_endpoint", "tokenEndpoint")):  # fmt: skip
        value = document.get(key)
        if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https"):
            raise DiscoveryFailed(f"{key} is missing or not an http(s) URI")
        if any(ord(c) < 33 for c in value) or len(value) > 2048:
            raise DiscoveryFailed(f"{key} is not a plain URI")
        found[name] = value
    reason = egress.check_uri(found["tokenEndpoint"]) if egress else None
    if reason:
        raise DiscoveryFailed(f"token_endpoint is refused by the egress policy ({reason})")
    methods = document.get("token_endpoint_auth_methods_supported")
    if not isinstance(methods, list) or not methods:
        methods = ["client_secret_basic"]  # the default the specification gives
    found["authMethods"] = [m for m in methods if isinstance(m, str)]
    return found


def _addresses(host: str, port: int, egress: EgressPolicy | None) -> list[str]:
    """The host's addresses, each allowed by the egress policy (else DiscoveryFailed)."""
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as error:
            raise DiscoveryFailed(f"{host} does not resolve ({error})") from None
        addresses = list(dict.fromkeys(answer[4][0] for answer in answers))
    for address in addresses:
        reason = egress.check(address, port) if egress else None
        if reason:
            raise DiscoveryFailed(f"refused by the egress policy ({host} is {address}: {reason})")
    return addresses


class _Pinned:
    """Connects to a checked address; ``host`` is only the Host header and the TLS name."""

    def __init__(self, address: str, *args, **kwargs):
        self._address = address
        super().__init__(*args, **kwargs)

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        if isinstance(self, http.client.HTTPSConnection):
            sock = self._context.wrap_socket(sock, server_hostname=self.host)
        self.sock = sock


class _PinnedHTTP(_Pinned, http.client.HTTPConnection):
    pass


class _PinnedHTTPS(_Pinned, http.client.HTTPSConnection):
    pass


def _fetch(url: str, egress: EgressPolicy | None) -> dict:
    parsed = urlsplit(url)
    https = parsed.scheme == "https"
    port = parsed.port or (443 if https else 80)
    reason = egress.check_uri(url) if egress else None
    if reason:
        raise DiscoveryFailed(f"refused by the egress policy ({reason})")
    address = _addresses(parsed.hostname, port, egress)[0]
    timeout = settings.GANTRY_OIDC_DISCOVERY_TIMEOUT_SECONDS
    if https:
        connection = _PinnedHTTPS(address, parsed.hostname, port, timeout=timeout,
                                  context=ssl.create_default_context())  # fmt: skip
    else:
        connection = _PinnedHTTP(address, parsed.hostname, port, timeout=timeout)
    try:
        connection.request("GET", parsed.path, headers={"Accept": "application/json"})
        response = connection.getresponse()
        body = response.read(MAX_BYTES + 1)
    except (OSError, http.client.HTTPException, ssl.SSLError) as error:
        raise DiscoveryFailed(f"cannot be read ({error.__class__.__name__}: {error})") from None
    finally:
        connection.close()
    if response.status != 200:
        raise DiscoveryFailed(f"answered {response.status} (redirects are not followed)")
    if len(body) > MAX_BYTES:
        raise DiscoveryFailed(f"is larger than {MAX_BYTES} bytes")
    try:
        document = json.loads(body)
    except ValueError:
        raise DiscoveryFailed("is not JSON") from None
    if not isinstance(document, dict):
        raise DiscoveryFailed("is not a JSON object")
    return document
