"""The shape every spec resource follows, shown on gateways: spec/status, PUT replaces, PATCH
merges, optimistic concurrency, plan quotas, and bad input that changes nothing."""

import threading

import pytest
from django.db import connection

from gateways.models import Gateway
from tenants.models import AuditEvent, Plan
from tenants.roles import Role

URL = "/api/v1/tenants/acme/gateways/"
HTTPS = {
    "name": "https",
    "protocol": "HTTPS",
    "port": 443,
    "hostname": "*.example.com",
    "tls": {"certificateRefs": [{"name": "example-cert"}]},
}


@pytest.fixture
def editor(org):
    return org.client(Role.EDITOR)


def create(client, name="edge", **spec):
    return client.post(URL, {"name": name, "spec": spec}, format="json")


def test_create_fills_defaults_and_reports_status(editor):
    response = create(editor, replicas=2)
    assert response.status_code == 202
    body = response.json()
    assert body["spec"] == {
        "size": "small",
        "replicas": 2,
        "runtime": "local",
        "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}],
    }
    assert body["status"]["phase"] == "Pending"
    conditions = {c["type"]: c for c in body["status"]["conditions"]}
    assert conditions["Accepted"]["status"] == "True"
    assert conditions["Programmed"]["status"] == "False"
    assert body["generation"] == 1
    assert response["ETag"] == f'"{body["resourceVersion"]}"'


def test_status_is_read_only(editor):
    create(editor)
    response = editor.patch(URL + "edge/", {"status": {"phase": "Ready"}}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"][0]["path"] in ("status", "spec")
    assert editor.get(URL + "edge/").json()["status"]["phase"] == "Pending"


def test_put_replaces_the_whole_spec(editor):
    create(editor, replicas=3, listeners=[{"name": "http", "protocol": "HTTP", "port": 80}, HTTPS])
    response = editor.put(URL + "edge/", {"spec": {"size": "medium"}}, format="json")
    assert response.status_code == 202
    spec = response.json()["spec"]
    assert spec["size"] == "medium"
    assert spec["replicas"] == 1  # omitted: back to the default
    assert [listener["name"] for listener in spec["listeners"]] == ["http"]


def test_patch_merges_into_the_spec_and_null_removes(editor):
    create(editor, replicas=3, listeners=[HTTPS])
    response = editor.patch(URL + "edge/", {"spec": {"size": "medium"}}, format="json")
    spec = response.json()["spec"]
    assert (spec["size"], spec["replicas"], spec["listeners"][0]["name"]) == ("medium", 3, "https")
    response = editor.patch(URL + "edge/", {"spec": {"replicas": None}}, format="json")
    assert response.json()["spec"]["replicas"] == 1


def test_generation_counts_spec_changes_only(editor):
    create(editor)
    first = editor.patch(URL + "edge/", {"spec": {"replicas": 2}}, format="json").json()
    same = editor.patch(URL + "edge/", {"spec": {"replicas": 2}}, format="json").json()
    assert first["generation"] == 2
    assert same["generation"] == 2
    assert same["resourceVersion"] == first["resourceVersion"]


def test_a_stale_if_match_is_409_and_changes_nothing(editor):
    version = create(editor).json()["resourceVersion"]
    editor.patch(URL + "edge/", {"spec": {"replicas": 2}}, format="json")
    response = editor.patch(
        URL + "edge/", {"spec": {"replicas": 5}}, format="json", HTTP_IF_MATCH=f'"{version}"'
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "stale_version"
    assert editor.get(URL + "edge/").json()["spec"]["replicas"] == 2


def test_a_current_resource_version_in_the_body_is_accepted(editor):
    version = create(editor).json()["resourceVersion"]
    response = editor.put(
        URL + "edge/", {"spec": {"replicas": 4}, "resourceVersion": version}, format="json"
    )
    assert response.status_code == 202
    stale = editor.put(
        URL + "edge/", {"spec": {"replicas": 5}, "resourceVersion": version}, format="json"
    )
    assert stale.status_code == 409


def test_a_stale_delete_is_409(editor):
    create(editor)
    response = editor.delete(URL + "edge/", HTTP_IF_MATCH='"99"')
    assert response.status_code == 409
    assert editor.get(URL + "edge/").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_concurrent_patches_lose_no_update(org):
    """Two clients patching different fields at once: both changes survive."""
    create(org.client(Role.EDITOR), listeners=[HTTPS])
    barrier = threading.Barrier(2)
    results = []

    def patch(role, spec):
        client = org.client(role)
        barrier.wait()
        results.append(client.patch(URL + "edge/", {"spec": spec}, format="json").status_code)
        connection.close()

    threads = [
        threading.Thread(target=patch, args=(Role.EDITOR, {"replicas": 3})),
        threading.Thread(target=patch, args=(Role.ADMIN, {"size": "medium"})),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [202, 202]
    spec = Gateway.objects.get(name="edge").spec
    assert (spec["replicas"], spec["size"]) == (3, "medium")


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({"replicas": 0}, "spec.replicas"),
        ({"replicas": "two"}, "spec.replicas"),
        ({"size": "huge"}, "spec.size"),
        ({"runtime": "docker"}, "spec.runtime"),
        ({"sise": "small"}, "spec.sise"),
        ({"listeners": []}, "spec.listeners"),
        ({"listeners": [{"name": "http", "protocol": "HTTP", "port": 0}]},
         "spec.listeners[0].port"),
        ({"listeners": [{"name": "Bad_Name", "protocol": "HTTP", "port": 80}]},
         "spec.listeners[0].name"),
        ({"listeners": [{"name": "h", "protocol": "UDP", "port": 80}]},
         "spec.listeners[0].protocol"),
        ({"listeners": [{"name": "h", "protocol": "HTTPS", "port": 443}]}, "spec.listeners[0].tls"),
        ({"listeners": [{**HTTPS, "hostname": "ex ample.com"}]}, "spec.listeners[0].hostname"),
        ({"listeners": [{**HTTPS, "tls": {"certificateRefs": []}}]},
         "spec.listeners[0].tls.certificateRefs"),
        ({"listeners": [{"name": "a", "protocol": "HTTP", "port": 80},
                        {"name": "a", "protocol": "HTTP", "port": 81}]}, "spec.listeners[1].name"),
        ({"listeners": [{"name": "a", "protocol": "HTTP", "port": 80},
                        {"name": "b", "protocol": "HTTPS", "port": 80, "tls": HTTPS["tls"]}]},
         "spec.listeners[1].protocol"),
        ({"autoscaling": {"minReplicas": 2, "maxReplicas": 4}}, "spec.autoscaling"),
        ({"runtime": "kubernetes", "autoscaling": {"minReplicas": 3, "maxReplicas": 2}},
         "spec.autoscaling.maxReplicas"),
        ({"runtime": "kubernetes", "autoscaling": {"minReplicas": 0, "maxReplicas": 2}},
         "spec.autoscaling.minReplicas"),
        ({"runtime": "kubernetes",
          "autoscaling": {"minReplicas": 1, "maxReplicas": 2, "targetCPU": 50}},
         "spec.autoscaling.targetCPU"),
    ],
)  # fmt: skip
def test_bad_input_names_the_json_path_and_changes_nothing(editor, spec, path):
    create(editor)
    before = (Gateway.objects.get(name="edge").spec, AuditEvent.objects.count())
    for response in (
        create(editor, "other", **spec),
        editor.patch(URL + "edge/", {"spec": spec}, format="json"),
    ):
        assert response.status_code == 400, response.content
        error = response.json()["error"]
        assert path in [field["path"] for field in error["fields"]]
        assert path in error["message"]
    assert not Gateway.objects.filter(name="other").exists()
    assert (Gateway.objects.get(name="edge").spec, AuditEvent.objects.count()) == before


@pytest.mark.parametrize("name", ["Edge", "-edge", "e" * 64, "ed.ge", ""])
def test_names_must_be_dns_labels(editor, name):
    response = create(editor, name)
    assert response.status_code == 400
    assert response.json()["error"]["fields"][0]["path"] == "name"


def test_a_duplicate_name_is_409(editor):
    create(editor)
    response = create(editor)
    assert response.status_code == 409
    assert "edge" in response.json()["error"]["message"]


def test_malformed_json_is_a_400_envelope(editor):
    response = editor.generic("POST", URL, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_the_gateway_count_quota_names_quota_and_usage(org):
    Plan.objects.filter(name="standard").update(max_gateways=2)
    editor = org.client(Role.EDITOR)
    assert create(editor, "a").status_code == 202
    assert create(editor, "b").status_code == 202
    response = create(editor, "c")
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert error["quota"] == {
        "name": "maxGateways",
        "limit": 2,
        "used": 2,
        "requested": 1,
        "plan": "standard",
    }
    assert "maxGateways" in error["message"] and "uses 2" in error["message"]
    assert Gateway.objects.filter(tenant=org.tenant).count() == 2


def test_replicas_and_sizes_are_limited_by_the_plan(editor):
    response = create(editor, replicas=11)
    assert response.status_code == 403
    assert response.json()["error"]["quota"]["name"] == "maxReplicasPerGateway"
    assert "asks for 11" in response.json()["error"]["message"]
    response = create(editor, size="xlarge")
    assert response.status_code == 403
    assert response.json()["error"]["fields"][0]["path"] == "spec.size"
    create(editor)
    response = editor.patch(URL + "edge/", {"spec": {"replicas": 50}}, format="json")
    assert response.status_code == 403
    assert editor.get(URL + "edge/").json()["spec"]["replicas"] == 1


def test_lists_paginate_filter_and_order(editor):
    for name, size in [("b-gw", "small"), ("a-gw", "medium"), ("c-gw", "small")]:
        create(editor, name, size=size)
    page = editor.get(URL, {"page_size": 2, "ordering": "name"}).json()
    assert page["count"] == 3
    assert [g["name"] for g in page["results"]] == ["a-gw", "b-gw"]
    assert page["next"]
    assert [g["name"] for g in editor.get(URL, {"ordering": "-name"}).json()["results"]] == [
        "c-gw",
        "b-gw",
        "a-gw",
    ]
    small = editor.get(URL, {"size": "small", "ordering": "name"}).json()["results"]
    assert [g["name"] for g in small] == ["b-gw", "c-gw"]
    assert editor.get(URL, {"ordering": "bogus"}).status_code == 200  # ignored, as in DRF


def test_another_tenants_gateway_is_404(org, other_org):
    create(org.client(Role.EDITOR))
    client = other_org.client(Role.OWNER)
    assert client.get("/api/v1/tenants/globex/gateways/edge/").status_code == 404
    assert client.get("/api/v1/tenants/globex/gateways/").json()["count"] == 0


def test_merge_patch_content_type_is_accepted(editor):
    create(editor)
    response = editor.generic(
        "PATCH",
        URL + "edge/",
        '{"spec": {"replicas": 2}}',
        content_type="application/merge-patch+json",
    )
    assert response.status_code == 202
    assert response.json()["spec"]["replicas"] == 2


def test_autoscaling_is_kept_with_its_default_target_and_bounded_by_the_plan(editor, org):
    spec = {"runtime": "kubernetes", "autoscaling": {"minReplicas": 2, "maxReplicas": 6}}
    response = create(editor, **spec)
    assert response.status_code == 202, response.content
    assert response.json()["spec"]["autoscaling"] == {
        "minReplicas": 2, "maxReplicas": 6, "targetCPUUtilizationPercentage": 70,
    }  # fmt: skip
    too_many = org.tenant.plan.max_replicas_per_gateway + 1
    spec["autoscaling"]["maxReplicas"] = too_many
    response = editor.patch(URL + "edge/", {"spec": spec}, format="json")
    assert response.status_code == 403, response.content
    assert response.json()["error"]["code"] == "quota_exceeded"
