"""ClientTrafficPolicy through the API: Envoy Gateway's fields accepted as sent, everything else
refused naming the JSON path (routes as targets, fields not translated yet, values Envoy would
reject), and the status per target: listener over gateway, conflicts, listeners sharing a port.
"""

import pytest

from gateways.models import Policy
from tenants.roles import Role

BASE = "/api/v1/tenants/acme/"
URL = BASE + "gateways/edge/policies/"
GATEWAY = {"kind": "Gateway", "name": "edge"}
LISTENERS = [
    {"name": "http", "protocol": "HTTP", "port": 80},
    {"name": "alt", "protocol": "HTTP", "port": 80, "hostname": "alt.example.com"},
    {"name": "admin", "protocol": "HTTP", "port": 8080},
]
FULL = {
    "timeout": {"http": {"requestReceivedTimeout": "10s", "idleTimeout": "5m"}},
    "connection": {"connectionLimit": {"value": 1000, "closeDelay": "1s"},
                   "bufferLimit": "32Ki"},
    "clientIPDetection": {"xForwardedFor": {"numTrustedHops": 2}},
    "tls": {"minVersion": "1.2", "maxVersion": "1.3", "ciphers": ["ECDHE-RSA-AES128-GCM-SHA256"],
            "ecdhCurves": ["X25519", "P-256"], "alpnProtocols": ["h2", "http/1.1"]},
    "http2": {"initialStreamWindowSize": "64Ki", "initialConnectionWindowSize": "1Mi",
              "maxConcurrentStreams": 100},
    "headers": {"disableRateLimitHeaders": True, "preserveXRequestID": False},
    "path": {"escapedSlashesAction": "KeepUnchanged", "disableMergeSlashes": True},
    "tcpKeepalive": {"probes": 3, "idleTime": "45s", "interval": "5s"},
}  # fmt: skip


@pytest.fixture
def editor(org):
    client = org.client(Role.EDITOR)
    gateway = {"name": "edge", "spec": {"listeners": LISTENERS}}
    assert client.post(BASE + "gateways/", gateway, format="json").status_code == 202
    return client


def create(client, name, targets=(GATEWAY,), **spec):
    spec = spec or {"timeout": {"http": {"idleTimeout": "1m"}}}
    body = {"name": name, "kind": "ClientTrafficPolicy",
            "spec": {"targetRefs": list(targets), **spec}}  # fmt: skip
    return client.post(URL, body, format="json")


def listener(name):
    return {**GATEWAY, "sectionName": name}


def ancestors(body: dict) -> list[tuple]:
    """(target name/section, Accepted reason) per target."""
    result = []
    for ancestor in body["status"]["ancestors"]:
        accepted = {c["type"]: c for c in ancestor["conditions"]}["Accepted"]
        ref = ancestor["ancestorRef"]
        result.append((ref.get("sectionName") or ref["name"], accepted["reason"]))
    return result


def test_every_supported_field_is_accepted_and_shown_as_sent(editor):
    response = create(editor, "clients", **FULL)
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["kind"] == "ClientTrafficPolicy"
    assert {k: v for k, v in body["spec"].items() if k != "targetRefs"} == FULL
    assert ancestors(body) == [("edge", "Accepted")]
    assert editor.get(URL + "clients/").json()["spec"] == body["spec"]
    assert Policy.objects.get().kind == "ClientTrafficPolicy"


BAD = [
    ({"targetRefs": [{"kind": "HTTPRoute", "name": "web"}]}, "spec.targetRefs[0].kind",
     "targets a Gateway or its listeners"),
    ({"targetRefs": [GATEWAY, {"kind": "HTTPRoute", "name": "web", "sectionName": "a"}]},
     "spec.targetRefs[1].kind", "Gateway"),
    ({"targetRefs": [{"kind": "Gateway", "name": "other"}]}, "spec.targetRefs[0].name",
     "own gateway"),
    ({"targetRefs": [listener("nope")]}, "spec.targetRefs[0].sectionName", "no listener"),
    ({"tls": {"minVersion": "1.4"}}, "spec.tls.minVersion", ""),
    ({"tls": {"minVersion": "1.3", "maxVersion": "1.2"}}, "spec.tls.minVersion",
     "must not be above maxVersion"),
    ({"tls": {"maxVersion": "1.1"}}, "spec.tls.minVersion", "above maxVersion (TLS 1.1)"),
    ({"tls": {"ciphers": ["ECDHE-RSA-AES128-GCM-SHA256", "RC4-MD5"]}}, "spec.tls.ciphers[1]",
     ""),
    ({"tls": {"ciphers": ["AES128-SHA", "AES128-SHA"]}}, "spec.tls.ciphers[1]", "duplicates"),
    ({"tls": {"ciphers": []}}, "spec.tls.ciphers", ""),
    ({"tls": {"ecdhCurves": ["P-224"]}}, "spec.tls.ecdhCurves[0]", ""),
    ({"tls": {"alpnProtocols": ["h3"]}}, "spec.tls.alpnProtocols[0]", ""),
    ({"tls": {}}, "spec.tls", "at least one"),
    ({"connection": {"bufferLimit": "0"}}, "spec.connection.bufferLimit", "size"),
    ({"connection": {"bufferLimit": "1Qi"}}, "spec.connection.bufferLimit", "size"),
    ({"connection": {"bufferLimit": "4Gi"}}, "spec.connection.bufferLimit", "4294967295"),
    ({"connection": {"connectionLimit": {"value": 0}}},
     "spec.connection.connectionLimit.value", ""),
    ({"connection": {"connectionLimit": {"value": 5, "closeDelay": "soon"}}},
     "spec.connection.connectionLimit.closeDelay", "duration"),
    ({"clientIPDetection": {"xForwardedFor": {"numTrustedHops": -1}}},
     "spec.clientIPDetection.xForwardedFor.numTrustedHops", ""),
    ({"http2": {"initialStreamWindowSize": "1Ki"}}, "spec.http2.initialStreamWindowSize",
     "between 65535 and 2147483647"),
    ({"http2": {"initialConnectionWindowSize": "2Gi"}},
     "spec.http2.initialConnectionWindowSize", "2147483647"),
    ({"http2": {"maxConcurrentStreams": 0}}, "spec.http2.maxConcurrentStreams", ""),
    ({"timeout": {"http": {"requestReceivedTimeout": "1d"}}},
     "spec.timeout.http.requestReceivedTimeout", "duration"),
    ({"timeout": {"tcp": {"idleTimeout": "1h"}}}, "spec.timeout.tcp", "not supported yet"),
    ({"tls": {"clientValidation": {}}}, "spec.tls.clientValidation", "not supported yet"),
    ({"clientIPDetection": {"customHeader": {"name": "x-real-ip"}}},
     "spec.clientIPDetection.customHeader", "not supported yet"),
    ({"clientIPDetection": {"xForwardedFor": {"trustedCIDRs": ["10.0.0.0/8"]}}},
     "spec.clientIPDetection.xForwardedFor.trustedCIDRs", "not supported yet"),
    ({"http2": {"onInvalidMessage": "TerminateStream"}}, "spec.http2.onInvalidMessage",
     "not supported yet"),
    ({"headers": {}}, "spec.headers", "at least one"),
    ({"path": {}}, "spec.path", "at least one"),
    ({"path": {"escapedSlashesAction": "Decode"}}, "spec.path.escapedSlashesAction", ""),
    ({"headers": {"disableRateLimitHeaders": "sometimes"}},
     "spec.headers.disableRateLimitHeaders", "boolean"),
    ({"headers": {"requestID": "Disable"}}, "spec.headers.requestID", "not supported yet"),
    ({"headers": {"enableEnvoyHeaders": True}}, "spec.headers.enableEnvoyHeaders",
     "not supported yet"),
    ({"retry": {}}, "spec.retry", "unknown field"),
    ({"tcpKeepalive": {"probes": 0}}, "spec.tcpKeepalive.probes", "greater than or equal to 1"),
    ({"tcpKeepalive": {"probes": 128}}, "spec.tcpKeepalive.probes", "less than or equal to 127"),
    ({"tcpKeepalive": {"idleTime": "1500ms"}}, "spec.tcpKeepalive.idleTime",
     "whole seconds, from 1s to 32767s"),
    ({"tcpKeepalive": {"interval": "0s"}}, "spec.tcpKeepalive.interval", "whole seconds"),
    ({"tcpKeepalive": {"idleTime": "10h"}}, "spec.tcpKeepalive.idleTime", "32767s"),
    ({"tcpKeepalive": {"interval": "often"}}, "spec.tcpKeepalive.interval", "duration"),
    ({"tcpKeepalive": {"time": "1s"}}, "spec.tcpKeepalive.time", "unknown field"),
]  # fmt: skip
LATER = ["enableProxyProtocol", "proxyProtocol",
         "earlyRequestHeaders", "http1", "http3", "healthCheck"]  # fmt: skip


@pytest.mark.parametrize(("spec", "path", "message"), BAD)
def test_bad_client_traffic_policies_name_the_field_and_change_nothing(editor, spec, path, message):
    spec = {"targetRefs": [GATEWAY], "http2": {"maxConcurrentStreams": 10}, **spec}
    body = {"name": "bad", "kind": "ClientTrafficPolicy", "spec": spec}
    response = editor.post(URL, body, format="json")
    assert response.status_code == 400, response.content
    fields = response.json()["error"]["fields"]
    assert [f["path"] for f in fields] == [path]
    assert message in fields[0]["message"]
    assert not Policy.objects.exists()


@pytest.mark.parametrize("field", LATER)
def test_envoy_gateway_fields_not_translated_yet_are_refused_by_name(editor, field):
    response = create(editor, "later", **{field: {}, "http2": {"maxConcurrentStreams": 10}})
    assert response.status_code == 400, response.content
    fields = response.json()["error"]["fields"]
    assert fields == [{"path": f"spec.{field}", "message": f"{field} is not supported yet",
                       "code": fields[0]["code"]}]  # fmt: skip
    assert not Policy.objects.exists()


def test_a_policy_without_features_is_refused(editor):
    body = {"name": "empty", "kind": "ClientTrafficPolicy", "spec": {"targetRefs": [GATEWAY]}}
    response = editor.post(URL, body, format="json")
    assert response.status_code == 400
    assert "must set at least one of timeout" in response.json()["error"]["message"]


def test_a_listener_policy_overrides_the_gateways(editor):
    create(editor, "everywhere")
    body = create(editor, "admin-only", targets=[listener("admin")]).json()
    assert ancestors(body) == [("admin", "Accepted")]
    wide = editor.get(URL + "everywhere/").json()
    conditions = {c["type"]: c for c in wide["status"]["ancestors"][0]["conditions"]}
    assert conditions["Accepted"]["status"] == "True"
    assert conditions["Overridden"]["status"] == "True"
    assert "listener 'admin'" in conditions["Overridden"]["message"]


def test_the_older_policy_wins_a_conflict_and_kinds_are_independent(editor):
    create(editor, "first")
    second = create(editor, "second").json()
    assert ancestors(second) == [("edge", "Conflicted")]
    assert (
        "ClientTrafficPolicy 'first' already targets the gateway"
        in (second["status"]["conditions"][0]["message"])
    )
    traffic = {"name": "t", "kind": "BackendTrafficPolicy",
               "spec": {"targetRefs": [GATEWAY], "retry": {}}}  # fmt: skip
    assert ancestors(editor.post(URL, traffic, format="json").json()) == [("edge", "Accepted")]
    editor.delete(URL + "first/")
    assert ancestors(editor.get(URL + "second/").json()) == [("edge", "Accepted")]


def test_http_listeners_sharing_a_port_must_agree(editor):
    create(editor, "everywhere")
    body = create(editor, "alt-only", targets=[listener("alt"), listener("admin")],
                  timeout={"http": {"idleTimeout": "2m"}}).json()  # fmt: skip
    assert ancestors(body) == [("alt", "Conflicted"), ("admin", "Accepted")]
    message = body["status"]["ancestors"][0]["conditions"][0]["message"]
    assert "shares port 80 with 'http'" in message
    assert "share one connection manager" in message
    # The same settings for both listeners of the port: accepted.
    both = create(editor, "port-80", targets=[listener("http"), listener("alt")],
                  timeout={"http": {"idleTimeout": "3m"}}).json()  # fmt: skip
    assert ancestors(both) == [("http", "Accepted"), ("alt", "Accepted")]
    assert ancestors(editor.get(URL + "alt-only/").json())[0] == ("alt", "Conflicted")
    # Settings equal to the gateway's policy are no disagreement either.
    editor.delete(URL + "port-80/")
    same = create(editor, "same", targets=[listener("http")]).json()
    assert ancestors(same) == [("http", "Accepted")]


def test_https_listeners_sharing_a_port_agree_on_buffer_limit_and_keepalive_only(org):
    client = org.client(Role.EDITOR)
    listeners = [{"name": name, "protocol": "HTTPS", "port": 443, "hostname": f"{name}.example.com",
                  "tls": {"certificateRefs": [{"name": name}]}} for name in ("a", "b")]  # fmt: skip
    gateway = {"name": "edge", "spec": {"listeners": listeners}}
    assert client.post(BASE + "gateways/", gateway, format="json").status_code == 202
    tls = create(client, "a-tls", targets=[listener("a")], tls={"minVersion": "1.3"}).json()
    assert ancestors(tls) == [("a", "Accepted")]
    buffers = create(client, "b-buffer", targets=[listener("b")],
                     connection={"bufferLimit": "1Mi"}).json()  # fmt: skip
    assert ancestors(buffers) == [("b", "Conflicted")]
    assert "connection.bufferLimit" in buffers["status"]["ancestors"][0]["conditions"][0]["message"]
    keepalive = create(client, "b-keepalive", targets=[listener("b")], tcpKeepalive={}).json()
    assert ancestors(keepalive) == [("b", "Conflicted")]
    assert "tcpKeepalive" in keepalive["status"]["ancestors"][0]["conditions"][0]["message"]


def test_the_other_kinds_still_refuse_client_traffic_fields(editor):
    body = {"name": "p", "kind": "BackendTrafficPolicy",
            "spec": {"targetRefs": [GATEWAY], "tls": {"minVersion": "1.3"}}}  # fmt: skip
    response = editor.post(URL, body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"][0]["path"] == "spec.tls"


def test_moving_a_listener_to_its_own_port_ends_the_disagreement(editor):
    create(editor, "everywhere")
    body = create(editor, "alt-only", targets=[listener("alt")],
                  timeout={"http": {"idleTimeout": "2m"}}).json()  # fmt: skip
    assert ancestors(body) == [("alt", "Conflicted")]
    moved = [LISTENERS[0], {**LISTENERS[1], "port": 81}, LISTENERS[2]]
    response = editor.patch(BASE + "gateways/edge/", {"spec": {"listeners": moved}},
                            format="json")  # fmt: skip
    assert response.status_code == 202, response.content
    assert ancestors(editor.get(URL + "alt-only/").json()) == [("alt", "Accepted")]


def test_the_status_says_which_listeners_tls_settings_do_nothing_for(org):
    client = org.client(Role.EDITOR)
    listeners = [{"name": "web", "protocol": "HTTPS", "port": 443, "hostname": "web.example.com",
                  "tls": {"certificateRefs": [{"name": "web"}]}},
                 {"name": "plain", "protocol": "HTTP", "port": 80}]  # fmt: skip
    gateway = {"name": "edge", "spec": {"listeners": listeners}}
    assert client.post(BASE + "gateways/", gateway, format="json").status_code == 202
    body = create(client, "modern", tls={"minVersion": "1.3"}).json()
    assert ancestors(body) == [("edge", "Accepted")]
    message = body["status"]["ancestors"][0]["conditions"][0]["message"]
    assert message == "applied to the gateway; tls has no effect on HTTP listener(s) 'plain'"
    https_only = create(client, "web-only", targets=[listener("web")],
                        tls={"minVersion": "1.2"}).json()  # fmt: skip
    condition = https_only["status"]["ancestors"][0]["conditions"][0]
    assert condition["message"] == "applied to listener 'web'"
    # The gateway's policy now covers only the HTTP listener: all of it is said.
    message = client.get(URL + "modern/").json()["status"]["ancestors"][0]["conditions"][0]
    assert "'plain'" in message["message"]
