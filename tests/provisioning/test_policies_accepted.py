"""No policy combination the API accepts produces config Envoy rejects.

Hypothesis writes SecurityPolicy, BackendTrafficPolicy and ClientTrafficPolicy specs (mostly
plausible, sometimes strange); those the API's validation accepts are compiled with routes,
backends and consumers (and HTTPS listeners with real certificates) and loaded into real Envoy.
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.errors import ValidationFailed
from gateways.validation.client_traffic import CIPHERS, ECDH_CURVES
from gateways.validation.policies import validate_policy_spec
from provisioning.compile import compile_gateway
from provisioning.envoy import validate
from provisioning.ir.build import DesiredState
from tests.provisioning.certs import self_signed
from tests.provisioning.jwts import Key, jwks

pytestmark = pytest.mark.slow

# Mostly valid values, now and then one the API must refuse.
DURATIONS = st.sampled_from(["1ms", "250ms", "1s", "3s", "1m30s", "99999h", "0s", "soon"])
COUNTS = st.sampled_from([0, 1, 2, 3, 5, 1024, 4_294_967_295, -1])
PERCENT = st.sampled_from([0, 0.0001, 12.5, 33.3, 100, 150])
TARGETS = st.lists(st.sampled_from([
    {"kind": "Gateway", "name": "edge"}, {"kind": "Gateway", "name": "edge", "sectionName": "http"},
    {"kind": "HTTPRoute", "name": "web"}, {"kind": "HTTPRoute", "name": "shop"},
    {"kind": "HTTPRoute", "name": "missing"},
    {"kind": "HTTPRoute", "name": "shop", "sectionName": "pay"}]),
    min_size=1, max_size=3, unique_by=str)  # fmt: skip
CONSUMERS = st.lists(st.fixed_dictionaries({"name": st.sampled_from(["alice", "bob", "ghost"])}),
                     min_size=1, max_size=3, unique_by=str)  # fmt: skip
ORIGINS = st.sampled_from(
    [
        "*",
        "https://a.example.com",
        "https://*.example.com",
        "http://*",
        "http://localhost:8080",
        "http://x:0",
        "ftp://x",
        "https://a b",
    ]
)
CIDRS = st.sampled_from(
    [
        "127.0.0.1/32",
        "10.0.0.0/8",
        "10.1.2.3/8",
        "::1/128",
        "fd00::/8",
        "0.0.0.0/0",
        "10.0.0.0/33",
        "10.0.0.1",
    ]
)
JWKS_URIS = st.sampled_from(
    [
        "https://idp.test/jwks.json",
        "http://10.0.0.9:8080/keys",
        "https://idp.test:8443/k",
        "http://[::1]:80/k",
        "ftp://idp.test/k",
        "https://idp.test:0/k",
        "https://bad host/k",
    ]
)
INLINE_JWKS = st.sampled_from(
    [
        jwks(Key("RSA", "r")),
        jwks(Key("EC", "e"), Key("RSA", "r2")),
        '{"keys": []}',
        "{",
        '{"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}',
    ]
)
HEADERS = st.sampled_from(["x-api-key", "Authorization", "x-user", "X-Key", "bad header"])
PAYLOADS = st.sampled_from([
    {"type": "Text", "text": "PING\r\n"}, {"type": "Text", "text": "ünï"},
    {"type": "Binary", "binary": "AAEC/w=="}, {"type": "Binary", "binary": "***"},
    {"type": "Text"}])  # fmt: skip
HEADER_VALUES = st.sampled_from(["ops", "a,b", "with space", '"quoted"', "ünïcode", " padded"])


def opt(**fields):
    return st.fixed_dictionaries({}, optional=fields)


def some(**fields):
    """At least one of the fields (an empty object is an error Hypothesis would find often)."""
    return st.sampled_from(sorted(fields)).flatmap(
        lambda first: st.fixed_dictionaries(
            {first: fields[first]}, optional={k: v for k, v in fields.items() if k != first}
        )
    )


SELECTORS = some(
    headers=st.lists(st.fixed_dictionaries(
        {"name": HEADERS},
        optional={"type": st.sampled_from(["Exact", "RegularExpression", "Distinct"]),
                  "value": st.sampled_from(["gold", "eu-.*", "(x", "it's \"q\""]),
                  "invert": st.booleans()}), max_size=2),
    sourceCIDR=st.fixed_dictionaries({"value": CIDRS},
                                     optional={"type": st.sampled_from(["Exact", "Distinct"])}),
    consumer=st.one_of(st.fixed_dictionaries({"type": st.just("Distinct")}),
                       st.fixed_dictionaries({"name": st.sampled_from(["alice", "zed"])})),
)  # fmt: skip


HTTP_CHECKS = st.fixed_dictionaries(
    {"type": st.just("HTTP"), "http": st.fixed_dictionaries(
        {"path": st.sampled_from(["/", "/healthz?x=1", "/a/b", "x"])},
        optional={"method": st.sampled_from(["GET", "HEAD", "OPTIONS"]),
                  "expectedStatuses": st.lists(st.integers(100, 600), max_size=3)})},
    optional={"timeout": DURATIONS, "interval": DURATIONS, "unhealthyThreshold": COUNTS,
              "healthyThreshold": COUNTS})  # fmt: skip


LIMIT_RULES = st.fixed_dictionaries({"limit": st.fixed_dictionaries({
    "requests": st.sampled_from([1, 100, 4_294_967_295, 0]),
    "unit": st.sampled_from(["Second", "Minute", "Hour", "Day", "Month"])})},
    optional={"clientSelectors": st.lists(SELECTORS, max_size=2)})  # fmt: skip
GLOBAL_RULES = st.fixed_dictionaries({"limit": st.fixed_dictionaries({
    "requests": st.sampled_from([1, 100, 4_294_967_295, 0]),
    "unit": st.sampled_from(["Second", "Minute", "Hour", "Day"])})},
    optional={"clientSelectors": st.lists(SELECTORS, max_size=2),
              "shared": st.booleans()})  # fmt: skip


def traffic():
    return some(
        retry=opt(numRetries=st.integers(0, 11), perRetry=opt(
            timeout=DURATIONS, backOff=opt(baseInterval=DURATIONS, maxInterval=DURATIONS)),
            retryOn=opt(triggers=st.lists(st.sampled_from(["5xx", "reset", "unavailable"])),
                        httpStatusCodes=st.lists(st.integers(99, 600), max_size=2))),
        timeout=opt(tcp=opt(connectTimeout=DURATIONS), http=opt(
            requestTimeout=DURATIONS, connectionIdleTimeout=DURATIONS,
            maxConnectionDuration=DURATIONS)),
        circuitBreaker=opt(maxConnections=COUNTS, maxPendingRequests=COUNTS,
                           maxParallelRequests=COUNTS, maxParallelRetries=COUNTS,
                           maxRequestsPerConnection=COUNTS),
        healthCheck=some(
            active=st.one_of(HTTP_CHECKS, st.fixed_dictionaries({"type": st.just("TCP")}, optional={
                "interval": DURATIONS, "tcp": opt(send=PAYLOADS, receive=PAYLOADS)})),
            passive=opt(interval=DURATIONS, baseEjectionTime=DURATIONS,
                        consecutive5XxErrors=COUNTS, consecutiveGatewayErrors=COUNTS,
                        consecutiveLocalOriginFailures=COUNTS,
                        maxEjectionPercent=st.integers(0, 101),
                        splitExternalLocalOriginErrors=st.booleans())),
        loadBalancer=st.one_of(
            st.fixed_dictionaries({"type": st.sampled_from(["RoundRobin", "LeastRequest"])},
                                  optional={"slowStart": opt(window=DURATIONS)}),
            st.fixed_dictionaries({"type": st.just("Random")}),
            st.fixed_dictionaries({"type": st.just("ConsistentHash"), "consistentHash": st.one_of(
                st.fixed_dictionaries({"type": st.just("SourceIP")},
                                      optional={"tableSize": st.sampled_from([2, 1031, 1000])}),
                st.fixed_dictionaries({"type": st.just("Header"),
                                       "header": st.fixed_dictionaries({"name": HEADERS})}),
                st.fixed_dictionaries({"type": st.just("Cookie"), "cookie": st.fixed_dictionaries(
                    {"name": st.sampled_from(["session", "id", "a b"])},
                    optional={"ttl": DURATIONS})}),
            )}),
        ),
        rateLimit=st.one_of(
            st.fixed_dictionaries({"type": st.just("Local"), "local": st.fixed_dictionaries(
                {"rules": st.lists(LIMIT_RULES, min_size=1, max_size=3)})}),
            st.fixed_dictionaries({"type": st.just("Global"), "global": st.fixed_dictionaries(
                {"rules": st.lists(GLOBAL_RULES, min_size=1, max_size=3)})},
                optional={"failClosed": st.booleans()})),
        faultInjection=opt(
            delay=st.fixed_dictionaries({"fixedDelay": DURATIONS},
                                        optional={"percentage": PERCENT}),
            abort=st.one_of(
                st.fixed_dictionaries({"httpStatus": st.integers(199, 600)},
                                      optional={"percentage": PERCENT}),
                st.fixed_dictionaries({"grpcStatus": st.integers(0, 17)},
                                      optional={"percentage": PERCENT}))),
    )  # fmt: skip


def jwt_provider():
    keys = st.one_of(
        st.fixed_dictionaries({"remoteJWKS": st.fixed_dictionaries({"uri": JWKS_URIS})}),
        st.fixed_dictionaries({"localJWKS": st.fixed_dictionaries({"inline": INLINE_JWKS})}),
    )
    rest = st.fixed_dictionaries(
        {"name": st.sampled_from(["idp", "other", "idp", "other", "Bad"])},
        optional={
            "issuer": st.sampled_from(["https://idp.test", "me"]),
            "audiences": st.lists(st.sampled_from(["api", "web"]), max_size=2),
            "claimToHeaders": st.lists(
                st.fixed_dictionaries(
                    {"header": HEADERS, "claim": st.sampled_from(["sub", "a.b", "x y"])}
                ),
                max_size=1,
            ),
            "extractFrom": some(
                headers=st.lists(
                    st.fixed_dictionaries(
                        {"name": HEADERS}, optional={"valuePrefix": st.just("Bearer ")}
                    ),
                    max_size=1,
                ),
                params=st.lists(st.sampled_from(["token", "k&"]), max_size=1),
                cookies=st.lists(st.sampled_from(["session"]), max_size=1),
            ),
            "forwardOriginalToken": st.booleans(),
        },
    )
    return st.builds(lambda a, b: {**a, **b}, rest, keys)


JWT_PRINCIPALS = st.fixed_dictionaries(
    {"provider": st.sampled_from(["idp", "other", "idp", "nope"]),
     "claims": st.lists(st.fixed_dictionaries(
        {"name": st.sampled_from(["sub", "org.roles", "https://x.test/r", "sub", "a..b"]),
         "values": st.lists(st.sampled_from(["x", "admin", "it's \"quoted\""]), min_size=1,
                            max_size=2)},
        optional={"valueType": st.sampled_from(["String", "StringArray", "String", "Int"])}),
        min_size=1, max_size=2)},
    optional={"scopes": st.lists(st.sampled_from(["read", "orders:write", "read", "two words"]),
                                 min_size=1, max_size=2)},
)  # fmt: skip


def security():
    sources = st.lists(some(headers=st.lists(HEADERS, max_size=2),
                           params=st.lists(st.sampled_from(["key", "api_key", "k&"]), max_size=1),
                           cookies=st.lists(st.sampled_from(["key"]), max_size=1)),
                       min_size=1, max_size=2)  # fmt: skip
    return some(
        apiKeyAuth=st.fixed_dictionaries({"credentialRefs": CONSUMERS, "extractFrom": sources},
            optional={"sanitize": st.booleans(), "forwardClientIDHeader": HEADERS}),
        basicAuth=st.fixed_dictionaries({"users": CONSUMERS},
                                        optional={"forwardUsernameHeader": HEADERS}),
        cors=st.fixed_dictionaries({"allowOrigins": st.lists(ORIGINS, max_size=3)}, optional={
            "allowMethods": st.lists(st.sampled_from(["GET", "POST", "*", "BAD METHOD"]),
                                     max_size=2),
            "allowHeaders": st.lists(HEADERS, max_size=2),
            "exposeHeaders": st.lists(HEADERS, max_size=2),
            "maxAge": DURATIONS, "allowCredentials": st.booleans()}),
        authorization=opt(
            defaultAction=st.sampled_from(["Allow", "Deny", "Maybe"]),
            rules=st.lists(st.fixed_dictionaries(
                {"action": st.sampled_from(["Allow", "Deny"]), "principal": opt(
                    clientCIDRs=st.lists(CIDRS, max_size=3), consumers=CONSUMERS,
                    jwt=JWT_PRINCIPALS, headers=st.lists(st.fixed_dictionaries(
                        {"name": HEADERS, "values": st.lists(HEADER_VALUES, max_size=3)}),
                        max_size=2))},
                optional={"name": st.sampled_from(["a", "b"]), "operation": opt(
                    methods=st.lists(st.sampled_from(["GET", "DELETE", "PATCH", "get"]),
                                     max_size=3))}), max_size=3)),
        jwt=st.fixed_dictionaries({"providers": st.lists(jwt_provider(), min_size=1,
                                                          max_size=3, unique_by=str)},
                                  optional={"optional": st.booleans()}),
        extAuth=ext_auth(),
        oidc=oidc(),
    )  # fmt: skip


ISSUERS = ["https://idp.test/realms/a", "http://127.0.0.1:8443", "https://down.test"]
OIDC_SECRETS = {"oidcClientSecret": "s3cret with spaces, \"quotes\" and ünïcode",
                "oidcHmacSecret": "aG1hYy1rZXk="}  # fmt: skip
# What the compile discovered of each issuer (one provider is down: its policies are Invalid).
DISCOVERED = {
    "https://idp.test/realms/a": {"authorizationEndpoint": "https://idp.test/realms/a/auth",
                                  "tokenEndpoint": "https://idp.test/realms/a/token",
                                  "authMethods": ["client_secret_post"]},
    "http://127.0.0.1:8443": {"authorizationEndpoint": "http://127.0.0.1:8443/authorize",
                              "tokenEndpoint": "http://127.0.0.1:8443/token",
                              "authMethods": ["client_secret_basic"]},
    "https://down.test": {"error": "https://down.test/.well-known/openid-configuration: "
                                   "cannot be read (ConnectionRefusedError)"},
}  # fmt: skip


def oidc():
    provider = st.fixed_dictionaries({"issuer": st.sampled_from(ISSUERS + ["ftp://x"])}, optional={
        "authorizationEndpoint": st.sampled_from(["https://login.test/a?x=1", "nope"]),
        "tokenEndpoint": st.sampled_from(["https://tokens.test:8443/t", "http://[::1]:9000/t"]),
    })  # fmt: skip
    return st.fixed_dictionaries(
        {"provider": provider,
         "clientID": st.sampled_from(["app", "it's \"q\" ünï", "", "x" * 300])},
        optional={
            "clientSecret": st.sampled_from(["s", ""]),
            "scopes": st.lists(st.sampled_from(["email", "openid", "a:b", "two words"]),
                               max_size=3),
            "redirectURL": st.sampled_from([
                "https://app.test:8443/oauth2/callback", "%REQ(:authority)%/cb",
                "%REQ(x-forwarded-proto)%://%REQ(:authority)%/login/done"]),
            "logoutPath": st.sampled_from(["/logout", "/a/b", "logout", "/oauth2/callback"]),
            "cookieDomain": st.sampled_from(["app.test", "bad domain"]),
            "forwardAccessToken": st.booleans(),
        },
    )  # fmt: skip


def rate_limits():
    """Local rate limit rules with client selectors (rarely valid among ``traffic``'s)."""
    rules = st.lists(st.fixed_dictionaries(
        {"limit": st.fixed_dictionaries({"requests": st.sampled_from([1, 4_294_967_295]),
                                         "unit": st.sampled_from(["Second", "Day"])})},
        optional={"clientSelectors": st.lists(SELECTORS, min_size=1, max_size=2)}),
        min_size=1, max_size=3)  # fmt: skip
    return st.fixed_dictionaries(
        {
            "rateLimit": st.fixed_dictionaries(
                {"type": st.just("Local"), "local": st.fixed_dictionaries({"rules": rules})}
            )
        }
    )


def claims_authorization():
    """JWT providers and rules on their claims (rarely both drawn by ``security``)."""
    rules = st.lists(st.fixed_dictionaries(
        {"action": st.sampled_from(["Allow", "Deny"]),
         "principal": st.fixed_dictionaries(
             {"jwt": JWT_PRINCIPALS}, optional={"clientCIDRs": st.lists(CIDRS, max_size=1)})}),
        min_size=1, max_size=3)  # fmt: skip
    providers = st.lists(st.fixed_dictionaries({
        "name": st.sampled_from(["idp", "other"]),
        "remoteJWKS": st.fixed_dictionaries({"uri": st.just("https://idp.test/jwks")}),
    }), min_size=1, max_size=2, unique_by=lambda p: p["name"])  # fmt: skip
    return st.fixed_dictionaries({
        "jwt": st.fixed_dictionaries({"providers": providers},
                                     optional={"optional": st.booleans()}),
        "authorization": st.fixed_dictionaries({"rules": rules}),
    })  # fmt: skip


def ext_auth():
    """Mostly accepted (one backend, an existing one or not); ``EXT_AUTH`` has the refused."""
    ref = st.fixed_dictionaries(
        {"name": st.sampled_from(["auth", "api", "secure", "ghost"])},
        optional={"kind": st.just("Backend"), "port": st.just(9000)},
    )
    headers = st.lists(
        st.sampled_from(["x-user", "Cookie", "X-Tenant", "bad header"]),
        max_size=2,
        unique_by=str.lower,
    )
    http = st.fixed_dictionaries(
        {"backendRefs": st.lists(ref, min_size=1, max_size=1)},
        optional={
            "path": st.sampled_from(["/check", "/a/b%20c", "/x/"]),
            "headersToBackend": headers,
        },
    )
    return st.fixed_dictionaries({"http": http}, optional={
        "headersToExtAuth": headers, "timeout": st.sampled_from(["1ms", "3s", "99999h", "0s"]),
        "failOpen": st.booleans()})  # fmt: skip


def policies():
    def with_targets(kind, spec):
        return st.builds(lambda targets, body: (kind, {"targetRefs": targets, **body}),
                         TARGETS, spec)  # fmt: skip

    one = st.one_of(with_targets("SecurityPolicy", security()),
                    with_targets("SecurityPolicy", claims_authorization()),
                    with_targets("BackendTrafficPolicy", rate_limits()),
                    with_targets("BackendTrafficPolicy", traffic()))  # fmt: skip
    return st.lists(one, min_size=1, max_size=4)


ROUTES = [
    {"name": "web", "spec": {"rules": [{"backendRefs": [{"name": "app"}]}]}},
    {"name": "shop", "spec": {"hostnames": ["shop.test"], "rules": [{"name": "pay", "backendRefs": [
        {"name": "app", "weight": 2}, {"name": "api"}, {"name": "gone"}],
        "timeouts": {"request": "2s"}}]}},
]  # fmt: skip
BACKENDS = {
    "app": {"endpoints": [{"ip": {"address": "127.0.0.1", "port": 8080}}]},
    "api": {"endpoints": [{"fqdn": {"hostname": "api.internal", "port": 80}}],
            "appProtocol": "h2c"},
    # Authorization services (extAuth) no route uses.
    "auth": {"endpoints": [{"ip": {"address": "::1", "port": 9000}}]},
    "secure": {"endpoints": [{"fqdn": {"hostname": "auth.internal", "port": 443}}],
               "tls": {"sni": "auth.internal"}},
}  # fmt: skip
CONSUMER_SECRETS = {
    "alice": {"apiKeys": ["gak_alice001_k"], "basicAuth": []},
    "bob": {"apiKeys": [], "basicAuth": [{"hash": "{SHA}LnNEJV8jKtmfFq9Xj5SGUhsNZSU="}]},
}


@settings(max_examples=80, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])  # fmt: skip
@given(policies())
def test_every_accepted_policy_compiles_to_config_envoy_loads(raw_policies):
    accepted = []
    for index, (kind, raw) in enumerate(raw_policies):
        try:
            spec = validate_policy_spec(kind, raw, "edge", ["http"])
        except ValidationFailed:
            continue
        accepted.append({"name": f"p{index}", "kind": kind, "spec": spec})
    if not accepted:
        return
    listeners = [{"name": "http", "protocol": "HTTP", "port": 80}]
    state = DesiredState("acme", "edge", {"listeners": listeners}, ROUTES, BACKENDS,
                         policies=accepted, consumers=CONSUMER_SECRETS,
                         policy_secrets={p["name"]: OIDC_SECRETS for p in accepted},
                         oidc_providers=DISCOVERED)  # fmt: skip
    result = validate(compile_gateway(state))
    assert result.ok, (result.message, accepted)


EXT_AUTH = [
    {"http": {"backendRefs": [{"name": "auth"}]}},
    {"http": {"backendRefs": [{"kind": "Backend", "name": "secure", "port": 443}],
              "path": "/a/b%20c", "headersToBackend": ["X-User", "x-tenant"]},
     "headersToExtAuth": ["Cookie", "x-request-id"], "timeout": "99999h", "failOpen": True},
    {"http": {"backendRefs": [{"name": "api"}], "path": "/check"}, "timeout": "1ms"},
    {"http": {"backendRefs": [{"name": "ghost"}]}},  # missing: its targets answer 500
    {"http": {"backendRefs": [{"name": "auth"}], "path": "/check"},
     "headersToExtAuth": ["authorization"]},
]  # fmt: skip
EXT_AUTH_TARGETS = [
    {"kind": "Gateway", "name": "edge"}, {"kind": "Gateway", "name": "edge", "sectionName": "http"},
    {"kind": "HTTPRoute", "name": "web"}, {"kind": "HTTPRoute", "name": "shop"},
    {"kind": "HTTPRoute", "name": "shop", "sectionName": "pay"},
]  # fmt: skip


def test_every_kind_of_ext_auth_service_loads_in_envoy():
    """Services by address (IPv6), by name over h2c and over TLS, a missing one, and extAuth
    with the other security features, each at another level of precedence."""
    policies = []
    for index, (target, ext_auth) in enumerate(zip(EXT_AUTH_TARGETS, EXT_AUTH, strict=True)):
        raw = {"targetRefs": [target], "extAuth": ext_auth}
        if index == 4:
            raw["apiKeyAuth"] = {"credentialRefs": [{"name": "alice"}],
                                 "extractFrom": [{"headers": ["x-api-key"]}]}  # fmt: skip
            raw["cors"] = {"allowOrigins": ["*"]}
        spec = validate_policy_spec("SecurityPolicy", raw, "edge", ["http"])
        policies.append({"name": f"x{index}", "kind": "SecurityPolicy", "spec": spec})
    listeners = [{"name": "http", "protocol": "HTTP", "port": 80}]
    state = DesiredState("acme", "edge", {"listeners": listeners}, ROUTES, BACKENDS,
                         policies=policies, consumers=CONSUMER_SECRETS)  # fmt: skip
    result = validate(compile_gateway(state))
    assert result.ok, result.message


def test_every_kind_of_oidc_policy_loads_in_envoy():
    """Providers discovered and given, by name over TLS and by address, one whose discovery
    failed, client secret basic and post, every optional field; several on one gateway, each
    on its own route (each its own filter, cookies and secrets)."""
    raw = [
        {"provider": {"issuer": ISSUERS[0]}, "clientID": "app", "scopes": ["email"],
         "forwardAccessToken": True, "cookieDomain": "app.test"},
        {"provider": {"issuer": ISSUERS[1]}, "clientID": "it's \"q\" ünï",
         "redirectURL": "https://app.test:8443/login/done", "logoutPath": "/bye"},
        {"provider": {"issuer": ISSUERS[2]}, "clientID": "down"},  # Invalid: answers 500
        {"provider": {"issuer": "https://given.test", "authorizationEndpoint":
                      "https://given.test/auth?prompt=login",
                      "tokenEndpoint": "https://tokens.test:8443/t"}, "clientID": "given"},
        {"provider": {"issuer": "https://given.test", "authorizationEndpoint":
                      "https://given.test/auth", "tokenEndpoint": "http://[::1]:9000/t"},
         "clientID": "v6"},
    ]  # fmt: skip
    policies = []
    routes = []
    for index, oidc in enumerate(raw):
        routes.append(
            {
                "name": f"r{index}",
                "spec": {
                    "hostnames": [f"r{index}.test"],
                    "rules": [{"backendRefs": [{"name": "app"}]}],
                },
            }
        )
        target = {"kind": "HTTPRoute", "name": f"r{index}"}
        spec = validate_policy_spec("SecurityPolicy", {"targetRefs": [target], "oidc": oidc},
                                    "edge", ["http"])  # fmt: skip
        policies.append({"name": f"o{index}", "kind": "SecurityPolicy", "spec": spec})
    listeners = [{"name": "http", "protocol": "HTTP", "port": 80}]
    state = DesiredState("acme", "edge", {"listeners": listeners}, routes, BACKENDS,
                         policies=policies, consumers=CONSUMER_SECRETS,
                         policy_secrets={p["name"]: OIDC_SECRETS for p in policies},
                         oidc_providers=DISCOVERED)  # fmt: skip
    resources = compile_gateway(state)
    assert len(resources.secrets) == 8  # o2's provider is down: no filter, no secrets
    result = validate(resources)
    assert result.ok, result.message


# ClientTrafficPolicy: on HTTP and HTTPS listeners (TLS settings need real certificates).
def mostly(valid: list, invalid: list):
    """Valid values four times as often as invalid ones (those the API must refuse)."""
    return st.sampled_from(valid * 4 + invalid)


SIZES = mostly(["65535", "64Ki", "1Mi", "2147483647", "32768"], ["1", "0", "2Gi", "1Qi"])
GOOD_DURATIONS = mostly(["0s", "1ms", "250ms", "1s", "1m30s", "99999h"], ["soon"])
CLIENT_TARGETS = st.lists(mostly([
    {"kind": "Gateway", "name": "edge"}, {"kind": "Gateway", "name": "edge", "sectionName": "http"},
    {"kind": "Gateway", "name": "edge", "sectionName": "a"},
    {"kind": "Gateway", "name": "edge", "sectionName": "b"}],
    [{"kind": "HTTPRoute", "name": "web"}]), min_size=1, max_size=2, unique_by=str)  # fmt: skip
TLS_VERSIONS = mostly(["Auto", "1.0", "1.1", "1.2", "1.3"], ["1.4"])


def client_traffic():
    return some(
        timeout=st.fixed_dictionaries({"http": some(requestReceivedTimeout=GOOD_DURATIONS,
                                                    idleTimeout=GOOD_DURATIONS)}),
        connection=some(connectionLimit=st.fixed_dictionaries(
            {"value": mostly([1, 2, 1024, 4_294_967_295], [0])},
            optional={"closeDelay": GOOD_DURATIONS}), bufferLimit=SIZES),
        clientIPDetection=st.fixed_dictionaries({"xForwardedFor": st.fixed_dictionaries(
            {"numTrustedHops": mostly([0, 1, 2, 4_294_967_295], [-1])})}),
        tls=some(minVersion=TLS_VERSIONS, maxVersion=TLS_VERSIONS,
                 ciphers=st.lists(mostly(CIPHERS, ["RC4-MD5"]), min_size=1, max_size=4,
                                  unique=True),
                 ecdhCurves=st.lists(mostly(ECDH_CURVES, ["P-224"]), min_size=1, max_size=3,
                                     unique=True),
                 alpnProtocols=st.lists(mostly(["h2", "http/1.1", "http/1.0"], ["h3"]),
                                        min_size=1, max_size=3, unique=True)),
        http2=some(initialStreamWindowSize=SIZES, initialConnectionWindowSize=SIZES,
                   maxConcurrentStreams=mostly([1, 100, 2_147_483_647], [0, 2**31])),
        headers=some(disableRateLimitHeaders=st.booleans(), preserveXRequestID=st.booleans()),
        path=some(escapedSlashesAction=st.sampled_from(
            ["KeepUnchanged", "RejectRequest", "UnescapeAndForward", "UnescapeAndRedirect", "No"]),
            disableMergeSlashes=st.booleans()),
        tcpKeepalive=st.fixed_dictionaries({}, optional={
            "probes": mostly([1, 3, 127], [0, 128]),
            "idleTime": mostly(["1s", "45s", "2h", "9h6m7s"], ["0s", "500ms", "9h6m8s"]),
            "interval": mostly(["1s", "10s", "1m"], ["1500ms", "10h"])}),
    )  # fmt: skip


def client_state(policies):
    chain, key = self_signed(["a.test", "b.test"])
    listeners = [{"name": "http", "protocol": "HTTP", "port": 80}] + [
        {"name": name, "protocol": "HTTPS", "port": 443, "hostname": f"{name}.test",
         "tls": {"certificateRefs": [{"name": "site"}]}} for name in ("a", "b")]  # fmt: skip
    certificates = {"site": {"certificatePem": chain, "privateKeyPem": key,
                             "dnsNames": ["a.test", "b.test"]}}  # fmt: skip
    return DesiredState("acme", "edge", {"listeners": listeners}, ROUTES, BACKENDS,
                        certificates=certificates, policies=policies)  # fmt: skip


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])  # fmt: skip
@given(st.lists(st.builds(lambda targets, body: {"targetRefs": targets, **body},
                          CLIENT_TARGETS, client_traffic()), min_size=1, max_size=3))  # fmt: skip
def test_every_accepted_client_traffic_policy_compiles_to_config_envoy_loads(raw_policies):
    accepted = []
    for index, raw in enumerate(raw_policies):
        try:
            spec = validate_policy_spec("ClientTrafficPolicy", raw, "edge", ["http", "a", "b"])
        except ValidationFailed:
            continue
        accepted.append({"name": f"p{index}", "kind": "ClientTrafficPolicy", "spec": spec})
    if not accepted:
        return
    # A rate limit on every route, for the settings that change it (headers).
    limit = {"targetRefs": [{"kind": "Gateway", "name": "edge"}], "rateLimit": {"type": "Local",
             "local": {"rules": [{"limit": {"requests": 10, "unit": "Second"}}]}}}  # fmt: skip
    spec = validate_policy_spec("BackendTrafficPolicy", limit, "edge", ["http", "a", "b"])
    limits = {"name": "limit", "kind": "BackendTrafficPolicy", "spec": spec}
    result = validate(compile_gateway(client_state([*accepted, limits])))
    assert result.ok, (result.message, accepted)


def test_every_accepted_cipher_and_curve_loads_in_envoy():
    """One HTTPS listener per cipher suite and per curve the API accepts, each alone."""
    chain, key = self_signed(["site.test"])
    values = [("ciphers", cipher) for cipher in CIPHERS] + [
        ("ecdhCurves", curve) for curve in ECDH_CURVES]  # fmt: skip
    listeners = [{"name": f"l{index}", "protocol": "HTTPS", "port": 1000 + index,
                  "tls": {"certificateRefs": [{"name": "site"}]}}
                 for index in range(len(values))]  # fmt: skip
    names = [listener["name"] for listener in listeners]
    policies = []
    for index, (field, value) in enumerate(values):
        raw = {"targetRefs": [{"kind": "Gateway", "name": "edge", "sectionName": f"l{index}"}],
               "tls": {"maxVersion": "1.2", field: [value]}}  # fmt: skip
        spec = validate_policy_spec("ClientTrafficPolicy", raw, "edge", names)
        policies.append({"name": f"p{index}", "kind": "ClientTrafficPolicy", "spec": spec})
    certificates = {"site": {"certificatePem": chain, "privateKeyPem": key,
                             "dnsNames": ["site.test"]}}  # fmt: skip
    state = DesiredState("acme", "edge", {"listeners": listeners}, ROUTES, BACKENDS,
                         certificates=certificates, policies=policies)  # fmt: skip
    resources = compile_gateway(state)
    assert len(resources.listeners) == len(values)
    result = validate(resources)
    assert result.ok, result.message
