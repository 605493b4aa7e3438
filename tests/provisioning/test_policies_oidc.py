"""SecurityPolicy oidc through a real Envoy fed by the real xDS server, against a real OpenID
provider (django-oauth-toolkit in its own process, ``oidc_provider.py``).

The gateway's config is compiled from a desired state whose provider endpoints come from the
provider's own discovery document (``provisioning.oidc_discovery``); its client secrets and
HMAC keys reach Envoy only as SDS Secrets over ADS. A browser-like client is redirected to the
provider, signs in there, comes back through Envoy's callback, and then reaches the backend
with the access token the provider issued; forged cookies, logging out, and a client secret the
provider refuses are covered too.
"""

import json
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.core.cache import cache

from gateways.egress import current_policy
from gateways.validation.policies import validate_policy_spec
from provisioning.compile import compile_gateway
from provisioning.desired import oidc_providers
from provisioning.envoy import validate
from provisioning.ir.build import DesiredState
from provisioning.oidc_discovery import CACHE_PREFIX
from provisioning.translate.types import SECRET
from tests.provisioning.harness import Upstream, free_port
from tests.provisioning.oidc_provider import OpenIDProvider, sign_in
from tests.xds.harness import LoopThread, XdsFixture, running_envoy, wait_for

pytestmark = pytest.mark.slow

CLIENT_ID, CLIENT_SECRET = "gantry-app", "correct-horse-battery-staple"
HMAC_KEY = "aG1hYy1rZXktZm9yLXRoZS10ZXN0cy1vbmx5LTAxMjM0NQ=="
GATEWAY, TOKEN = "acme/edge", "acme-edge-token"


def route(name: str, host: str) -> dict:
    return {"name": name, "spec": {"hostnames": [host],
                                   "rules": [{"backendRefs": [{"name": "app"}]}]}}  # fmt: skip


def policy(name: str, target: str, **oidc) -> dict:
    spec = {"targetRefs": [{"kind": "HTTPRoute", "name": target}], "oidc": oidc}
    return {"name": name, "kind": "SecurityPolicy",
            "spec": validate_policy_spec("SecurityPolicy", spec, "edge", ["http"])}  # fmt: skip


@dataclass
class World:
    provider: OpenIDProvider
    app: Upstream
    envoy: object
    port: int
    discovered: dict
    xds: XdsFixture

    def get(self, host: str, path: str, cookies: dict | None = None) -> requests.Response:
        headers = {"Host": host, "Accept": "text/html"}
        if cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        return requests.get(f"http://127.0.0.1:{self.port}{path}", headers=headers,
                            allow_redirects=False, timeout=15)  # fmt: skip

    def reached(self, host: str) -> list[dict]:
        return [r for r in self.app.requests if r["headers"].get("host") == host]


def set_cookies(response: requests.Response) -> dict[str, str]:
    """The cookies a response sets (any attributes: the test sends them back itself)."""
    return {cookie.name: cookie.value for cookie in response.cookies}


@pytest.fixture(scope="module")
def world():
    provider_port = free_port()
    hosts = ("app.test", "wrong.test", "plain.test")
    callbacks = [f"http://{host}/oauth2/callback" for host in hosts]
    provider = OpenIDProvider(provider_port, CLIENT_ID, CLIENT_SECRET, callbacks)
    app = Upstream("app")
    loop = LoopThread()
    xds = XdsFixture(loop, {TOKEN: GATEWAY})
    xds.start()
    try:
        cache.delete(CACHE_PREFIX + provider.issuer)
        policies = [
            policy("sso", "web", provider={"issuer": provider.issuer}, clientID=CLIENT_ID,
                   scopes=["email"], forwardAccessToken=True),
            policy("plain", "plain", provider={"issuer": provider.issuer}, clientID=CLIENT_ID),
            # Endpoints given, no discovery; the provider does not know this secret.
            policy("wrong", "wrong", clientID=CLIENT_ID, provider={
                "issuer": provider.issuer,
                "authorizationEndpoint": f"{provider.issuer}/authorize/",
                "tokenEndpoint": f"{provider.issuer}/token/"}),
        ]  # fmt: skip
        discovered = oidc_providers(policies, current_policy())
        state = DesiredState(
            tenant="acme", gateway="edge",
            spec={"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
            routes=[route("web", "app.test"), route("wrong", "wrong.test"),
                    route("plain", "plain.test"), route("open", "open.test")],
            backends={"app": app.backend()}, policies=policies,
            policy_secrets={
                "sso": {"oidcClientSecret": CLIENT_SECRET, "oidcHmacSecret": HMAC_KEY},
                "wrong": {"oidcClientSecret": "not-the-secret", "oidcHmacSecret": HMAC_KEY},
                "plain": {"oidcClientSecret": CLIENT_SECRET, "oidcHmacSecret": "b3RoZXIta2V5"},
            },
            oidc_providers=discovered,
        )  # fmt: skip
        port = free_port()
        resources = compile_gateway(state, address="127.0.0.1", port_map={80: port})
        verdict = validate(resources)
        assert verdict.ok, verdict.message
        xds.store.set(GATEWAY, "v1", resources)
        bootstrap = xds.bootstrap(GATEWAY, "r1", TOKEN, free_port())
        with running_envoy(bootstrap) as envoy:
            yield World(provider, app, envoy, port, discovered, xds)
    finally:
        xds.stop()
        loop.close()
        app.close()
        provider.close()


def sign_in_through(world: World, host: str, path: str = "/orders?x=1"):
    """The browser's way: Envoy's redirect, the provider's login, Envoy's callback. The
    callback's answer and every cookie Envoy set on the way."""
    first = world.get(host, path)
    assert first.status_code == 302, first.text
    jar = set_cookies(first)
    back = urlsplit(sign_in(requests.Session(), first.headers["Location"]))
    assert back.netloc == host and back.path == "/oauth2/callback"
    callback = world.get(host, f"{back.path}?{back.query}", jar)
    jar.update(set_cookies(callback))
    return callback, jar


def test_the_discovery_document_gives_the_endpoints(world):
    found = world.discovered[world.provider.issuer]
    assert found["authorizationEndpoint"] == f"{world.provider.issuer}/authorize/"
    assert found["tokenEndpoint"] == f"{world.provider.issuer}/token/"
    assert "client_secret_basic" in found["authMethods"]


def test_an_unauthenticated_request_is_sent_to_the_provider(world):
    before = len(world.reached("app.test"))
    answer = world.get("app.test", "/orders?x=1")
    assert answer.status_code == 302
    location = urlsplit(answer.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == (
        f"{world.provider.issuer}/authorize/"
    )
    query = {key: values[0] for key, values in parse_qs(location.query).items()}
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == "http://app.test/oauth2/callback"
    assert query["scope"] == "openid email"
    assert query["response_type"] == "code"
    assert query["code_challenge_method"] == "S256" and query["code_challenge"]
    assert query["state"]
    assert len(world.reached("app.test")) == before  # the backend never saw it


def test_after_signing_in_the_backend_gets_the_request_and_the_access_token(world):
    callback, jar = sign_in_through(world, "app.test")
    assert callback.status_code == 302, callback.text
    assert callback.headers["Location"] == "http://app.test/orders?x=1"
    assert any(name.startswith("BearerToken-") for name in jar)
    assert any(name.startswith("OauthHMAC-") for name in jar)
    answer = world.get("app.test", "/orders?x=1", jar)
    assert answer.status_code == 200, answer.text
    seen = answer.json()
    assert seen["path"] == "/orders?x=1"
    authorization = seen["headers"]["authorization"]
    assert authorization.startswith("Bearer ")
    # The token is the provider's own: its userinfo endpoint accepts it, for alice.
    info = requests.get(f"{world.provider.issuer}/userinfo/", timeout=10,
                        headers={"Authorization": authorization})  # fmt: skip
    assert info.status_code == 200, info.text
    assert info.json()["sub"]


def test_without_forward_access_token_no_authorization_goes_upstream(world):
    """No ``Authorization`` header; but Envoy's filter passes its own cookies on, the tokens
    decrypted (the browser only ever holds them encrypted with the policy's key): a documented
    limit (docs/policies.md#oidc)."""
    _, jar = sign_in_through(world, "plain.test")
    answer = world.get("plain.test", "/", {**jar, "theme": "dark"})
    assert answer.status_code == 200, answer.text
    seen = answer.json()["headers"]
    assert "authorization" not in seen
    upstream = dict(part.split("=", 1) for part in seen["cookie"].split("; "))
    assert upstream["theme"] == "dark"
    id_token = next(name for name in jar if name.startswith("IdToken-"))
    assert not jar[id_token].startswith("eyJ")  # encrypted in the browser
    assert upstream[id_token].startswith("eyJ")  # the provider's JWT upstream


def test_a_forged_or_foreign_cookie_is_sent_to_the_provider_again(world):
    _, jar = sign_in_through(world, "app.test")
    hmac_name = next(name for name in jar if name.startswith("OauthHMAC-"))
    bearer = next(name for name in jar if name.startswith("BearerToken-"))
    forged = [
        {**jar, hmac_name: "Zm9yZ2Vk"},  # a signature of someone else's making
        {**jar, bearer: "another-token"},  # the token changed under the signature
        {name: value for name, value in jar.items() if name != hmac_name},  # unsigned
        {bearer: jar[bearer]},
    ]
    before = len(world.reached("app.test"))
    for cookies in forged:
        answer = world.get("app.test", "/orders", cookies)
        assert answer.status_code == 302, cookies
        assert answer.headers["Location"].startswith(f"{world.provider.issuer}/authorize/")
    assert len(world.reached("app.test")) == before
    # The cookies of the same gateway's other policy are not this one's (another HMAC key
    # would not even be needed: the names differ per policy).
    assert world.get("wrong.test", "/", jar).status_code == 302


def test_logout_clears_the_cookies(world):
    _, jar = sign_in_through(world, "app.test")
    assert world.get("app.test", "/orders", jar).status_code == 200
    answer = world.get("app.test", "/logout", jar)
    assert answer.status_code == 302
    cleared = " ".join(answer.headers.get("set-cookie", "").split())
    for prefix in ("BearerToken-", "OauthHMAC-", "IdToken-"):
        name = next(name for name in jar if name.startswith(prefix))
        assert f"{name}=deleted" in cleared, cleared
    left = {name: value for name, value in jar.items()
            if f"{name}=deleted" not in cleared}  # fmt: skip
    assert world.get("app.test", "/orders", left).status_code == 302


def test_a_client_secret_the_provider_refuses_lets_nobody_through(world):
    before = len(world.reached("wrong.test"))
    callback, jar = sign_in_through(world, "wrong.test", "/")
    assert callback.status_code == 401, callback.text
    assert not any(name.startswith("BearerToken-") for name in jar)
    assert world.get("wrong.test", "/", jar).status_code == 302
    assert len(world.reached("wrong.test")) == before


def test_a_route_without_the_policy_is_untouched(world):
    answer = world.get("open.test", "/")
    assert answer.status_code == 200
    assert "authorization" not in answer.json()["headers"]


def test_the_secrets_reach_envoy_over_ads_only(world):
    dump = json.loads(world.envoy.admin("/config_dump?resource=dynamic_active_secrets"))
    names = {entry["name"] for entry in dump.get("configs", [])}
    assert names == {
        "acme/edge/oidc/sso/client-secret", "acme/edge/oidc/sso/hmac",
        "acme/edge/oidc/wrong/client-secret", "acme/edge/oidc/wrong/hmac",
        "acme/edge/oidc/plain/client-secret", "acme/edge/oidc/plain/hmac",
    }  # fmt: skip
    listeners = world.envoy.admin("/config_dump?resource=dynamic_listeners")
    assert CLIENT_SECRET not in listeners and HMAC_KEY not in listeners
    assert "acme/edge/oidc/sso/client-secret" in listeners  # named, by SDS
    # The xDS server sent them as Secret resources, and Envoy ACKed them.
    wait_for(lambda: any(a.type_url == SECRET and a.error is None for a in world.xds.acks))
