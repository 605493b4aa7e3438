"""TCPRoutes and TLSRoutes through the API: TCP and TLS listeners, specs validated at their
JSON paths with nothing saved, names and the route quota shared with the other kinds, which
listeners each kind attaches to (Gateway API reasons), SNI conflicts, egress, isolation between
tenants, and a stored gateway compiled from the database and accepted by Envoy."""

import json

import pytest

from gateways import services
from gateways.models import Backend, Gateway, Route
from provisioning.compile import compile_gateway
from provisioning.desired import load_desired_state
from provisioning.envoy import validate
from tenants.audit import Actor
from tenants.models import AuditEvent, Plan
from tenants.roles import Role

BASE = "/api/v1/tenants/acme/"
GW = BASE + "gateways/edge/"
TCP = GW + "tcproutes/"
TLS = GW + "tlsroutes/"
HTTP = GW + "routes/"
PASSTHROUGH = {"mode": "Passthrough"}
LISTENERS = [
    {"name": "http", "protocol": "HTTP", "port": 80},
    {"name": "db", "protocol": "TCP", "port": 5432},
    {"name": "tls", "protocol": "TLS", "port": 443, "tls": PASSTHROUGH},
    {"name": "shop", "protocol": "TLS", "port": 8443, "hostname": "*.shop.example",
     "tls": PASSTHROUGH},
]  # fmt: skip


def ip(address: str, port: int) -> dict:
    return {"endpoints": [{"ip": {"address": address, "port": port}}]}


@pytest.fixture
def editor(org):
    actor = Actor.system("tests")
    services.create_gateway(actor, org.tenant, "edge", {"listeners": LISTENERS})
    services.create_backend(actor, org.tenant, "pg", ip("10.0.0.5", 5432))
    services.create_backend(actor, org.tenant, "site", ip("10.0.0.6", 8443))
    return org.client(Role.EDITOR)


def create(client, url, name, **spec):
    return client.post(url, {"name": name, "spec": spec}, format="json")


def rules(*names, weight=None):
    refs = [{"name": n} if weight is None else {"name": n, "weight": weight} for n in names]
    return [{"backendRefs": refs}]


def conditions(body: dict) -> dict:
    return {c["type"]: c for c in body["status"]["conditions"]}


def listener_status(client) -> dict:
    body = client.get(GW).json()
    return {entry["name"]: entry for entry in body["status"]["listeners"]}


def errors(response) -> dict:
    assert response.status_code == 400, response.content
    return {f["path"]: f["message"] for f in response.json()["error"]["fields"]}


# Listeners


def test_listeners_report_the_route_kinds_they_take(editor):
    """TLSRouteListenerPassthroughSupportedKinds: a Passthrough listener takes TLSRoutes."""
    kinds = {name: [k["kind"] for k in entry["supportedKinds"]]
             for name, entry in listener_status(editor).items()}  # fmt: skip
    assert kinds == {"http": ["HTTPRoute", "GRPCRoute"], "db": ["TCPRoute"],
                     "tls": ["TLSRoute"], "shop": ["TLSRoute"]}  # fmt: skip
    group = listener_status(editor)["tls"]["supportedKinds"][0]["group"]
    assert group == "gateway.networking.k8s.io"


@pytest.mark.parametrize(
    ("listener", "path", "words"),
    [
        ({"name": "t", "protocol": "TLS", "port": 443}, "spec.listeners[0].tls", "required"),
        ({"name": "t", "protocol": "TLS", "port": 443,
          "tls": {"certificateRefs": [{"name": "c"}]}},
         "spec.listeners[0].tls.mode", "Passthrough only"),
        ({"name": "t", "protocol": "TLS", "port": 443,
          "tls": {"mode": "Passthrough", "certificateRefs": [{"name": "c"}]}},
         "spec.listeners[0].tls.certificateRefs", "not allowed"),
        ({"name": "t", "protocol": "HTTPS", "port": 443, "tls": PASSTHROUGH},
         "spec.listeners[0].tls.mode", "use protocol TLS"),
        ({"name": "t", "protocol": "HTTPS", "port": 443, "tls": {"mode": "Terminate"}},
         "spec.listeners[0].tls.certificateRefs", "required"),
        ({"name": "t", "protocol": "TCP", "port": 9000, "tls": PASSTHROUGH},
         "spec.listeners[0].tls", "not allowed"),
        ({"name": "t", "protocol": "TCP", "port": 9000, "hostname": "db.example"},
         "spec.listeners[0].hostname", "not allowed"),
    ],
)  # fmt: skip
def test_bad_listeners_name_their_json_path_and_change_nothing(editor, listener, path, words):
    before = Gateway.objects.get(name="edge").spec
    response = editor.put(GW, {"spec": {"listeners": [listener]}}, format="json")
    message = errors(response)
    assert path in message, message
    assert words in message[path]
    assert Gateway.objects.get(name="edge").spec == before


def test_a_tcp_listener_has_its_port_to_itself(editor):
    two = [{"name": "a", "protocol": "TCP", "port": 9000},
           {"name": "b", "protocol": "TCP", "port": 9000}]  # fmt: skip
    assert "spec.listeners[1].port" in errors(editor.put(GW, {"spec": {"listeners": two}},
                                                         format="json"))  # fmt: skip
    mixed = [{"name": "a", "protocol": "TCP", "port": 9000},
             {"name": "b", "protocol": "TLS", "port": 9000, "tls": PASSTHROUGH}]  # fmt: skip
    assert "spec.listeners[1].protocol" in errors(
        editor.put(GW, {"spec": {"listeners": mixed}}, format="json")
    )


# TCPRoute


def test_a_tcp_route_is_created_attached_and_audited(editor):
    response = create(editor, TCP, "postgres", rules=rules("pg"))
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["spec"] == {"rules": [{"backendRefs": [{"name": "pg", "weight": 1}]}]}
    assert body["status"]["attachedListeners"] == ["db"]
    assert conditions(body)["Accepted"]["status"] == "True"
    assert conditions(body)["ResolvedRefs"]["status"] == "True"
    assert conditions(body)["Conflicted"]["status"] == "False"
    assert Route.objects.get(name="postgres").kind == "TCPRoute"
    assert AuditEvent.objects.filter(object_type="tcproute", action="create").count() == 1


@pytest.mark.parametrize(
    ("url", "spec", "path"),
    [
        (TCP, {}, "spec.rules"),
        (TCP, {"rules": []}, "spec.rules"),
        (TCP, {"rules": [{"backendRefs": [{"name": "pg"}]}] * 2}, "spec.rules"),
        (TCP, {"rules": [{}]}, "spec.rules[0].backendRefs"),
        (TCP, {"rules": [{"backendRefs": [{"name": "pg", "weight": -1}]}]},
         "spec.rules[0].backendRefs[0].weight"),
        (TCP, {"rules": [{"backendRefs": [{"name": "Not_A_Name"}]}]},
         "spec.rules[0].backendRefs[0].name"),
        (TCP, {"rules": [{"backendRefs": [{"name": "pg", "filters": []}]}]},
         "spec.rules[0].backendRefs[0].filters"),
        (TCP, {"rules": [{"matches": [{}], "backendRefs": [{"name": "pg"}]}]},
         "spec.rules[0].matches"),
        (TCP, {"hostnames": ["db.example"], "rules": rules("pg")}, "spec.hostnames"),
        (TCP, {"parentRefs": [{"sectionName": "nope"}], "rules": rules("pg")},
         "spec.parentRefs[0].sectionName"),
        (TLS, {"hostnames": ["10.0.0.1"], "rules": rules("site")}, "spec.hostnames[0]"),
        (TLS, {"hostnames": ["Bad Name"], "rules": rules("site")}, "spec.hostnames[0]"),
        (TLS, {"hostnames": ["a.example", "a.example"], "rules": rules("site")},
         "spec.hostnames[1]"),
        (TLS, {"hostnames": ["a.example"], "rules": [{"backendRefs": []}]},
         "spec.rules[0].backendRefs"),
        (TLS, {"rules": [{"filters": [], "backendRefs": [{"name": "site"}]}]},
         "spec.rules[0].filters"),
    ],
)  # fmt: skip
def test_bad_routes_name_their_json_path_and_save_nothing(editor, url, spec, path):
    message = errors(create(editor, url, "bad", **spec))
    assert path in message, message
    assert not Route.objects.exists()


def test_kinds_have_their_own_urls_and_share_names(editor):
    assert create(editor, TCP, "one", rules=rules("pg")).status_code == 202
    for url in (TLS, HTTP, GW + "grpcroutes/"):
        assert editor.get(f"{url}one/").status_code == 404
        assert create(editor, url, "one", rules=rules("site")).status_code == 409
    assert create(editor, TLS, "two", rules=rules("site")).status_code == 202
    assert [r["name"] for r in editor.get(TLS).json()["results"]] == ["two"]
    assert [r["name"] for r in editor.get(TCP).json()["results"]] == ["one"]
    assert editor.delete(f"{TCP}two/").status_code == 404
    assert editor.delete(f"{TLS}two/").status_code == 204


def test_patch_keeps_the_kind_and_validates_it(editor):
    create(editor, TLS, "site", hostnames=["a.example"], rules=rules("site"))
    bad = editor.patch(f"{TLS}site/", {"spec": {"hostnames": ["*"]}}, format="json")
    assert "spec.hostnames[0]" in errors(bad)
    good = editor.patch(f"{TLS}site/", {"spec": {"hostnames": ["*.example"]}}, format="json")
    assert good.status_code == 202, good.content
    assert good.json()["spec"]["hostnames"] == ["*.example"]
    assert Route.objects.get(name="site").kind == "TLSRoute"


def test_the_route_quota_counts_every_kind(editor, org):
    Plan.objects.filter(pk=org.tenant.plan_id).update(max_routes_per_gateway=2)
    assert create(editor, HTTP, "web").status_code == 202
    assert create(editor, TCP, "db", rules=rules("pg")).status_code == 202
    for url in (TLS, TCP):
        response = create(editor, url, "more", rules=rules("site"))
        assert response.status_code == 403, response.content
        assert response.json()["error"]["code"] == "quota_exceeded"
    assert Route.objects.count() == 2


# Attachment: which listeners take which kinds


def test_a_route_naming_a_listener_of_another_protocol_is_not_allowed(editor):
    """TLSRouteInvalidNoMatchingListener and Gateway API's NotAllowedByListeners."""
    body = create(editor, TLS, "on-db", parentRefs=[{"sectionName": "db"}],
                  rules=rules("site")).json()  # fmt: skip
    accepted = conditions(body)["Accepted"]
    assert (accepted["status"], accepted["reason"]) == ("False", "NotAllowedByListeners")
    assert "listener 'db' (protocol TCP) takes TCPRoute, not TLSRoute" in accepted["message"]
    assert body["status"]["attachedListeners"] == []

    body = create(editor, HTTP, "web", parentRefs=[{"sectionName": "tls"}]).json()
    accepted = conditions(body)["Accepted"]
    assert (accepted["status"], accepted["reason"]) == ("False", "NotAllowedByListeners")
    assert "takes TLSRoute, not HTTPRoute" in accepted["message"]

    body = create(editor, TCP, "on-http", parentRefs=[{"sectionName": "http"}],
                  rules=rules("pg")).json()  # fmt: skip
    assert conditions(body)["Accepted"]["reason"] == "NotAllowedByListeners"


def test_routes_without_parent_refs_attach_to_the_listeners_of_their_kind(editor):
    assert create(editor, HTTP, "web").json()["status"]["attachedListeners"] == ["http"]
    body = create(editor, TCP, "pg", rules=rules("pg")).json()
    assert body["status"]["attachedListeners"] == ["db"]
    body = create(editor, TLS, "any", rules=rules("site")).json()
    assert body["status"]["attachedListeners"] == ["tls", "shop"]
    body = create(editor, TLS, "named", hostnames=["a.example"], rules=rules("site")).json()
    assert body["status"]["attachedListeners"] == ["tls"]  # not *.shop.example


def test_a_tls_route_outside_every_listener_hostname_is_not_accepted(editor):
    """TLSRouteHostnameIntersection: no listener's hostname intersects the route's."""
    body = create(editor, TLS, "off", parentRefs=[{"sectionName": "shop"}],
                  hostnames=["a.example"], rules=rules("site")).json()  # fmt: skip
    assert conditions(body)["Accepted"]["reason"] == "NoMatchingListenerHostname"


def test_a_gateway_without_listeners_of_the_kind_says_so(editor):
    editor.patch(GW, {"spec": {"listeners": [LISTENERS[0]]}}, format="json")
    body = create(editor, TCP, "pg", rules=rules("pg")).json()
    accepted = conditions(body)["Accepted"]
    assert (accepted["status"], accepted["reason"]) == ("False", "NotAllowedByListeners")
    assert "no listener that takes TCPRoutes" in accepted["message"]


def test_listener_changes_move_the_route_status(editor):
    body = create(editor, TCP, "pg", rules=rules("pg")).json()
    assert conditions(body)["Accepted"]["status"] == "True"
    editor.patch(GW, {"spec": {"listeners": [LISTENERS[0]]}}, format="json")
    assert conditions(editor.get(f"{TCP}pg/").json())["Accepted"]["status"] == "False"
    editor.patch(GW, {"spec": {"listeners": LISTENERS}}, format="json")
    assert conditions(editor.get(f"{TCP}pg/").json())["Accepted"]["status"] == "True"


# Conflicts


def test_two_tls_routes_claiming_a_hostname_the_older_wins(editor):
    create(editor, TLS, "first", hostnames=["a.example"], rules=rules("site"))
    body = create(editor, TLS, "second", hostnames=["a.example", "b.example"],
                  rules=rules("pg")).json()  # fmt: skip
    conflicted = conditions(body)["Conflicted"]
    assert (conflicted["status"], conflicted["reason"]) == ("True", "RouteConflict")
    assert (
        "hostname a.example on port 443 is already claimed by TLSRoute 'first'"
        in (conflicted["message"])
    )
    assert conditions(editor.get(f"{TLS}first/").json())["Conflicted"]["status"] == "False"
    assert editor.delete(f"{TLS}first/").status_code == 204
    assert conditions(editor.get(f"{TLS}second/").json())["Conflicted"]["status"] == "False"


def test_two_tcp_routes_on_one_listener_the_older_wins(editor):
    create(editor, TCP, "first", rules=rules("pg"))
    body = create(editor, TCP, "second", rules=rules("site")).json()
    conflicted = conditions(body)["Conflicted"]
    assert conflicted["status"] == "True"
    assert (
        "listener 'db' (port 5432) is already claimed by TCPRoute 'first'"
        in (conflicted["message"])
    )


# Backends: missing, refused by the egress policy, another tenant's


def test_a_missing_backend_is_reported(editor):
    body = create(editor, TCP, "pg", rules=rules("nowhere")).json()
    resolved = conditions(body)["ResolvedRefs"]
    assert (resolved["status"], resolved["reason"]) == ("False", "BackendNotFound")


def test_a_backend_at_a_refused_address_is_refused_for_tcp_too(editor, org):
    """The egress policy is the same for TCP and TLS backends as for HTTP ones."""
    response = editor.post(BASE + "backends/", {"name": "meta",
                           "spec": ip("169.254.169.254", 80)}, format="json")  # fmt: skip
    assert "spec.endpoints[0].ip.address" in errors(response)
    # A row stored before the policy: the route says so, and Envoy never gets the address.
    Backend.objects.create(tenant=org.tenant, name="meta", spec=ip("169.254.169.254", 80))
    body = create(editor, TCP, "pg", rules=rules("meta")).json()
    resolved = conditions(body)["ResolvedRefs"]
    assert (resolved["status"], resolved["reason"]) == ("False", "RefNotPermitted")
    state = load_desired_state(Gateway.objects.get(name="edge").pk)
    assert "169.254.169.254" not in json.dumps(compile_gateway(state).as_dict())


def test_another_tenants_gateway_and_backends_are_out_of_reach(editor, org, other_org):
    other = other_org.client(Role.OWNER)
    assert create(editor, TCP, "pg", rules=rules("pg")).status_code == 202
    assert other.get(f"{TCP}pg/").status_code == 404
    assert create(other, TCP, "mine", rules=rules("pg")).status_code == 404
    assert create(other, TLS, "mine", rules=rules("site")).status_code == 404
    assert other.delete(f"{TCP}pg/").status_code == 404
    # The other tenant's own gateway, naming acme's backend "pg": a backend of its own tenant
    # is all a name can mean; acme's never reaches its config.
    actor = Actor.system("tests")
    services.create_gateway(actor, other_org.tenant, "edge", {"listeners": LISTENERS[1:2]})
    url = f"/api/v1/tenants/{other_org.tenant.slug}/gateways/edge/tcproutes/"
    body = create(other, url, "steal", rules=rules("pg")).json()
    assert conditions(body)["ResolvedRefs"]["reason"] == "BackendNotFound"
    gateway = Gateway.objects.get(tenant=other_org.tenant, name="edge")
    text = json.dumps(compile_gateway(load_desired_state(gateway.pk)).as_dict())
    assert "10.0.0.5" not in text


@pytest.mark.slow
def test_a_stored_gateway_compiles_and_envoy_accepts_it(editor, org):
    create(editor, HTTP, "web")
    create(editor, TCP, "pg", rules=[{"backendRefs": [{"name": "pg", "weight": 3},
                                                      {"name": "site", "weight": 1}]}])  # fmt: skip
    create(editor, TLS, "a", hostnames=["a.example"], rules=rules("site"))
    create(editor, TLS, "shop", parentRefs=[{"sectionName": "shop"}], rules=rules("site"))
    state = load_desired_state(Gateway.objects.get(name="edge").pk)
    resources = compile_gateway(state)
    by_name = {listener["name"]: listener for listener in resources.listeners}
    tcp = by_name["acme/edge/port/5432"]["filter_chains"][0]["filters"][0]["typed_config"]
    assert [c["weight"] for c in tcp["weighted_clusters"]["clusters"]] == [3, 1]
    chains = by_name["acme/edge/port/8443"]["filter_chains"]
    assert [c["filter_chain_match"]["server_names"] for c in chains] == [["*.shop.example"]]
    assert len(resources.routes) == 1  # the HTTP port's only
    assert validate(resources).ok


def test_policies_do_not_target_tcp_or_tls_routes(editor):
    """Policies act on HTTP requests: a TCPRoute named as a target is not found, and one
    naming the kind TCPRoute is refused at its JSON path."""
    create(editor, TCP, "pg", rules=rules("pg"))
    policy = {"name": "retries", "kind": "BackendTrafficPolicy",
              "spec": {"targetRefs": [{"kind": "HTTPRoute", "name": "pg"}],
                       "retry": {"numRetries": 2}}}  # fmt: skip
    response = editor.post(GW + "policies/", policy, format="json")
    assert response.status_code == 202, response.content
    accepted = conditions(response.json())["Accepted"]
    assert (accepted["status"], accepted["reason"]) == ("False", "TargetNotFound")
    policy["name"] = "other"
    policy["spec"]["targetRefs"][0]["kind"] = "TCPRoute"
    assert "spec.targetRefs[0].kind" in errors(editor.post(GW + "policies/", policy,
                                                           format="json"))  # fmt: skip


def test_a_client_traffic_policy_says_it_is_not_applied_to_tcp_or_tls_listeners(editor):
    policy = {"name": "conn", "kind": "ClientTrafficPolicy",
              "spec": {"targetRefs": [{"kind": "Gateway", "name": "edge"}],
                       "timeout": {"http": {"idleTimeout": "30s"}}}}  # fmt: skip
    response = editor.post(GW + "policies/", policy, format="json")
    assert response.status_code == 202, response.content
    ancestor = response.json()["status"]["ancestors"][0]["conditions"]
    accepted = {c["type"]: c for c in ancestor}["Accepted"]
    assert accepted["status"] == "True"
    assert "not applied to TCP/TLS listener(s) 'db', 'tls', 'shop'" in accepted["message"]
