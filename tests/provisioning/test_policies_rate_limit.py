"""BackendTrafficPolicy local rate limits with client selectors, through real Envoy: limits
per header value, per consumer, per client address range and per distinct value; 429 with
x-ratelimit headers past a limit; requests a rule does not select are not counted by it."""

import http.client

import pytest

from provisioning.ir.build import DesiredState
from tests.provisioning.harness import Upstream, running_envoy

pytestmark = pytest.mark.slow

ALICE_KEY, BOB_KEY = "gak_alice001_rate-one", "gak_bob00001_rate-two"


def route(name):
    return {"name": name, "spec": {"hostnames": [f"{name}.test"],
                                   "rules": [{"backendRefs": [{"name": "app"}]}]}}  # fmt: skip


def limits(name, *rules, kind="BackendTrafficPolicy", **spec):
    ref = {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": name}
    if rules:
        spec["rateLimit"] = {"type": "Local", "local": {"rules": list(rules)}}
    return {"name": f"{name}-{kind}", "kind": kind, "spec": {"targetRefs": [ref], **spec}}


def rule(requests, *selectors):
    limit = {"limit": {"requests": requests, "unit": "Minute"}}
    return {**limit, "clientSelectors": list(selectors)} if selectors else limit


@pytest.fixture(scope="module")
def gateway():
    app = Upstream("app")
    keys = {"credentialRefs": [{"kind": "Consumer", "name": "alice"},
                               {"kind": "Consumer", "name": "bob"}],
            "extractFrom": [{"headers": ["x-api-key"]}]}  # fmt: skip
    state = DesiredState(
        tenant="acme", gateway="edge",
        spec={"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
        routes=[route(name) for name in ("consumers", "users", "cidrs", "mixed", "plans")],
        backends={"app": app.backend()},
        policies=[
            limits("consumers", rule(2, {"consumer": {"name": "alice"}}),
                   rule(3, {"consumer": {"type": "Distinct"}})),
            limits("consumers", kind="SecurityPolicy", apiKeyAuth=keys),
            limits("users", rule(2, {"headers": [{"name": "x-user", "type": "Distinct"}]})),
            limits("cidrs", rule(2, {"sourceCIDR": {"value": "127.0.0.2/32"}}),
                   rule(1, {"sourceCIDR": {"type": "Distinct", "value": "127.0.1.0/24"}})),
            limits("mixed", rule(4), rule(1, {"headers": [{"name": "x-plan", "value": "free"}]})),
            limits("plans", rule(2, {"headers": [{"name": "x-plan", "value": "gold"}]},
                                 {"headers": [{"name": "x-region", "type": "RegularExpression",
                                               "value": "eu-.*"}]}),
                   rule(1, {"headers": [{"name": "x-internal", "value": "yes",
                                         "invert": True}]})),
        ],
        consumers={"alice": {"apiKeys": [ALICE_KEY], "basicAuth": []},
                   "bob": {"apiKeys": [BOB_KEY], "basicAuth": []}},
    )  # fmt: skip
    with running_envoy(state) as ports:

        def get(host, source="127.0.0.1", **headers):
            connection = http.client.HTTPConnection(
                "127.0.0.1", ports[80], timeout=10, source_address=(source, 0)
            )
            try:
                connection.request("GET", "/", headers={"Host": host, **headers})
                response = connection.getresponse()
                response.read()
                return response
            finally:
                connection.close()

        yield get
    app.close()


def codes(get, count, host, **kwargs):
    return [get(host, **kwargs).status for _ in range(count)]


def test_a_consumer_has_its_own_limit_and_each_consumer_a_bucket(gateway):
    alice = {"x-api-key": ALICE_KEY}
    assert codes(gateway, 3, "consumers.test", **alice) == [200, 200, 429]
    bob = {"x-api-key": BOB_KEY}  # only the Distinct rule: 3 of his own
    assert codes(gateway, 4, "consumers.test", **bob) == [200, 200, 200, 429]


def test_each_distinct_header_value_has_its_own_bucket(gateway):
    assert codes(gateway, 3, "users.test", **{"x-user": "ann"}) == [200, 200, 429]
    assert codes(gateway, 3, "users.test", **{"x-user": "ben"}) == [200, 200, 429]
    # Requests without the header are not selected by the rule: not limited.
    assert codes(gateway, 5, "users.test") == [200] * 5


def test_source_cidrs_select_clients_by_address(gateway):
    assert codes(gateway, 3, "cidrs.test", source="127.0.0.2") == [200, 200, 429]
    assert codes(gateway, 4, "cidrs.test", source="127.0.0.3") == [200] * 4  # in neither
    # Distinct: every address in 127.0.1.0/24 has its own bucket of one.
    assert codes(gateway, 2, "cidrs.test", source="127.0.1.1") == [200, 429]
    assert codes(gateway, 2, "cidrs.test", source="127.0.1.2") == [200, 429]


def test_a_rule_without_selectors_counts_every_request(gateway):
    assert codes(gateway, 2, "mixed.test", **{"x-plan": "free"}) == [200, 429]
    paid = codes(gateway, 5, "mixed.test", **{"x-plan": "paid"})
    assert paid.count(429) >= 2 and paid[-1] == 429  # the route's 4 a minute, shared
    assert gateway("mixed.test", **{"x-plan": "free"}).status == 429


def test_every_selector_of_a_rule_must_match(gateway):
    gold_eu = {"x-plan": "gold", "x-region": "eu-west", "x-internal": "yes"}
    assert codes(gateway, 3, "plans.test", **gold_eu) == [200, 200, 429]
    gold_us = {"x-plan": "gold", "x-region": "us-east", "x-internal": "yes"}
    assert codes(gateway, 3, "plans.test", **gold_us) == [200] * 3
    # An inverted header: requests that do not say x-internal: yes share one request a minute.
    assert codes(gateway, 2, "plans.test", **{"x-region": "us-east"}) == [200, 429]


def test_limited_answers_carry_rate_limit_headers(gateway):
    first = gateway("users.test", **{"x-user": "cat"})
    assert first.status == 200
    assert first.getheader("x-ratelimit-limit") == "2"
    assert first.getheader("x-ratelimit-remaining") == "1"
    gateway("users.test", **{"x-user": "cat"})
    refused = gateway("users.test", **{"x-user": "cat"})
    assert refused.status == 429
    assert refused.getheader("x-ratelimit-remaining") == "0"
    assert int(refused.getheader("x-ratelimit-reset")) <= 60


def test_requests_no_rule_selects_are_not_limited(gateway):
    answer = gateway("users.test")  # no x-user: the only rule does not select it
    assert answer.status == 200
    assert answer.getheader("x-ratelimit-limit") == "4294967295"  # the unlimited default
