"""SecurityPolicy jwt through real Envoy: tokens signed with real RSA and EC keys, a JWKS
served over HTTP by a local server (remoteJWKS) or inline (localJWKS); claims forwarded as
headers; expired, foreign, tampered or missing tokens refused."""

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from provisioning.ir.build import DesiredState
from tests.provisioning.harness import Upstream, running_envoy
from tests.provisioning.jwts import Key, b64url, claims, jwks

pytestmark = pytest.mark.slow

ISSUER, AUDIENCE = "https://issuer.test", "gantry-api"
RSA_KEY, EC_KEY, STRANGER = Key("RSA", "rsa-1"), Key("EC", "ec-1"), Key("RSA", "other")


class JWKSServer:
    """Serves one JWKS document over plain HTTP, counting the fetches."""

    def __init__(self, document: str):
        self.fetches = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.fetches += 1
                body = document.encode()
                self.send_response(200 if self.path == "/jwks.json" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.http.server_address[1]}/jwks.json"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self):
        self.http.shutdown()
        self.http.server_close()


def route(name):
    return {"name": name, "spec": {"hostnames": [f"{name}.test"],
                                   "rules": [{"backendRefs": [{"name": "app"}]}]}}  # fmt: skip


def policy(name, **provider):
    ref = {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": name}
    forwarded = [{"header": "x-user", "claim": "sub"}, {"header": "x-tier", "claim": "plan.tier"}]
    provider = {"name": "main", "issuer": ISSUER, "audiences": [AUDIENCE],
                "claimToHeaders": forwarded, **provider}  # fmt: skip
    spec = {"targetRefs": [ref], "jwt": {"providers": [provider]}}
    return {"name": name, "kind": "SecurityPolicy", "spec": spec}


def claims_policy():
    """Authorization by the claims of the verified token: the first matching rule decides."""
    spec = policy("claims", localJWKS={"inline": jwks(RSA_KEY, EC_KEY)})

    def jwt(**match):
        return {"jwt": {"provider": "main", **match}}

    spec["spec"]["authorization"] = {"defaultAction": "Deny", "rules": [
        {"name": "no-mallory", "action": "Deny",
         "principal": jwt(claims=[{"name": "sub", "values": ["mallory"]}])},
        {"name": "admins", "action": "Allow", "principal": jwt(
            claims=[{"name": "roles", "valueType": "StringArray", "values": ["admin", "ops"]}])},
        {"name": "readers", "action": "Allow", "principal": jwt(
            scopes=["orders:read"],
            claims=[{"name": "plan.tier", "values": ["gold", "platinum"]}])},
    ]}  # fmt: skip
    return spec


def optional_policy():
    """``optional``: no token passes; a token must still be valid."""
    spec = policy("optional", localJWKS={"inline": jwks(RSA_KEY)})
    spec["spec"]["jwt"]["optional"] = True
    return spec


@pytest.fixture(scope="module")
def gateway():
    app, served = Upstream("app"), JWKSServer(jwks(RSA_KEY, EC_KEY))
    state = DesiredState(
        tenant="acme", gateway="edge",
        spec={"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
        routes=[route("remote"), route("inline"), route("cookie"), route("open"),
                route("claims"), route("optional")],
        backends={"app": app.backend()},
        policies=[
            policy("remote", remoteJWKS={"uri": served.uri}),
            policy("inline", localJWKS={"inline": jwks(EC_KEY)}),
            policy("cookie", localJWKS={"inline": jwks(RSA_KEY)},
                   extractFrom={"cookies": ["session"]}),
            claims_policy(),
            optional_policy(),
        ],
    )  # fmt: skip
    with running_envoy(state) as ports:
        session = requests.Session()

        def get(host, token=None, **kwargs):
            headers = {"Host": host, **kwargs.pop("headers", {})}
            if token:
                headers["Authorization"] = f"Bearer {token}"
            url = f"http://127.0.0.1:{ports[80]}/"
            return session.get(url, headers=headers, timeout=10, **kwargs)

        get.served = served
        yield get
    app.close()
    served.close()


def good(**extra):
    return claims(ISSUER, AUDIENCE, sub="alice", plan={"tier": "gold"}, **extra)


@pytest.mark.parametrize(("host", "key"), [
    ("remote.test", RSA_KEY), ("remote.test", EC_KEY), ("inline.test", EC_KEY)])  # fmt: skip
def test_a_valid_token_reaches_the_upstream_with_its_claims(gateway, host, key):
    response = gateway(host, key.sign(good()))
    assert response.status_code == 200, response.text
    seen = response.json()["headers"]
    assert seen["x-user"] == "alice"
    assert seen["x-tier"] == "gold"
    assert "authorization" not in seen  # forwardOriginalToken: false


def test_the_remote_jwks_is_fetched_from_its_server(gateway):
    assert gateway("remote.test", RSA_KEY.sign(good())).status_code == 200
    assert gateway.served.fetches >= 1


def tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=="))
    body["sub"] = "mallory"
    return ".".join([header, b64url(json.dumps(body).encode()), signature])


BAD_TOKENS = {
    "expired": RSA_KEY.sign(claims(ISSUER, AUDIENCE, lifetime=-120, sub="alice")),
    "wrong issuer": RSA_KEY.sign(claims("https://elsewhere.test", AUDIENCE, sub="alice")),
    "wrong audience": RSA_KEY.sign(claims(ISSUER, "someone-else", sub="alice")),
    "tampered": tampered(RSA_KEY.sign(good())),
    "unknown key": STRANGER.sign(good()),
    "garbage": "not.a.token",
}


@pytest.mark.parametrize("host", ["remote.test", "inline.test"])
@pytest.mark.parametrize("problem", [*BAD_TOKENS, "missing"])
def test_bad_or_missing_tokens_are_refused(gateway, host, problem):
    response = gateway(host, BAD_TOKENS.get(problem))
    # Envoy's jwt_authn answers a token for another audience 403; Gantry makes it 401 too.
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_inline_keys_are_the_only_ones_trusted(gateway):
    # The RSA key is in the remote JWKS, not in the inline route's.
    assert gateway("inline.test", RSA_KEY.sign(good())).status_code == 401


def test_tokens_are_read_where_extract_from_says(gateway):
    token = RSA_KEY.sign(good())
    assert gateway("cookie.test", cookies={"session": token}).status_code == 200
    assert gateway("cookie.test", token).status_code == 401  # not in the header


def test_routes_without_the_policy_need_no_token(gateway):
    assert gateway("open.test").status_code == 200


def test_a_client_cannot_forge_a_claim_header(gateway):
    token = RSA_KEY.sign(good())
    response = gateway("remote.test", token, headers={"x-user": "mallory"})
    assert response.status_code == 200
    assert response.json()["headers"]["x-user"] == "alice"
    # A token without the claim: the client's header does not pass for it either.
    token = RSA_KEY.sign(claims(ISSUER, AUDIENCE))
    response = gateway("remote.test", token, headers={"x-user": "mallory"})
    assert response.status_code == 200
    assert "x-user" not in response.json()["headers"]


CLAIM_CASES = {
    "an admin": ({"roles": ["viewer", "admin"]}, 200),
    "ops": ({"roles": ["ops"]}, 200),
    "a role that is not listed": ({"roles": ["viewer"]}, 403),
    "a role as a plain string is not an array": ({"roles": "admin"}, 403),
    "gold with the scope": ({"plan": {"tier": "gold"}, "scope": "orders:write orders:read"}, 200),
    "platinum with the scope": ({"plan": {"tier": "platinum"}, "scope": "orders:read"}, 200),
    "gold without the scope": ({"plan": {"tier": "gold"}, "scope": "orders:write"}, 403),
    "silver with the scope": ({"plan": {"tier": "silver"}, "scope": "orders:read"}, 403),
    "no claims at all": ({}, 403),
    "a denied subject, even as admin": ({"sub": "mallory", "roles": ["admin"]}, 403),
}


@pytest.mark.parametrize("case", CLAIM_CASES)
def test_authorization_rules_match_the_claims_of_the_verified_token(gateway, case):
    extra, status = CLAIM_CASES[case]
    token = EC_KEY.sign(claims(ISSUER, AUDIENCE, **{"sub": "alice", **extra}))
    assert gateway("claims.test", token).status_code == status


def test_claims_cannot_be_claimed_without_a_valid_token(gateway):
    forged = tampered(EC_KEY.sign(claims(ISSUER, AUDIENCE, sub="alice", roles=["viewer"])))
    header, payload, signature = forged.split(".")
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "roles": ["admin"]}
    forged = ".".join([header, b64url(json.dumps(body).encode()), signature])
    assert gateway("claims.test", forged).status_code == 401
    assert gateway("claims.test", headers={"x-user": "alice"}).status_code == 401


def test_an_optional_token_may_be_missing_but_not_invalid(gateway):
    anonymous = gateway("optional.test", headers={"x-user": "mallory"})
    assert anonymous.status_code == 200
    assert "x-user" not in anonymous.json()["headers"]  # nobody vouched for a claim
    signed_in = gateway("optional.test", RSA_KEY.sign(good()))
    assert signed_in.status_code == 200
    assert signed_in.json()["headers"]["x-user"] == "alice"
    for problem in BAD_TOKENS:
        response = gateway("optional.test", BAD_TOKENS[problem])
        assert response.status_code == 401, problem
