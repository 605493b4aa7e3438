"""A hostname and match already claimed by another route of the gateway is reported."""

import pytest

from tenants.roles import Role

ROUTES = "/api/v1/tenants/acme/gateways/edge/routes/"


@pytest.fixture
def editor(org):
    client = org.client(Role.EDITOR)
    response = client.post("/api/v1/tenants/acme/gateways/", {"name": "edge"}, format="json")
    assert response.status_code == 202
    return client


def route(client, name, hostnames, path="/api"):
    spec = {"hostnames": hostnames, "rules": [{"matches": [
        {"path": {"type": "PathPrefix", "value": path}}]}]}  # fmt: skip
    response = client.post(ROUTES, {"name": name, "spec": spec}, format="json")
    assert response.status_code == 202, response.content
    return response.json()


def conflicted(body) -> dict:
    return {c["type"]: c for c in body["status"]["conditions"]}["Conflicted"]


def test_the_newer_route_reports_the_claim_and_names_the_winner(editor):
    first = route(editor, "first", ["shop.example.com"])
    assert conflicted(first)["status"] == "False"
    second = route(editor, "second", ["shop.example.com", "other.example.com"], path="/api/")
    condition = conflicted(second)
    assert condition["status"] == "True"
    assert condition["reason"] == "RouteConflict"
    assert "shop.example.com" in condition["message"] and "'first'" in condition["message"]
    assert "other.example.com" not in condition["message"]
    older = editor.get(ROUTES + "first/").json()
    assert conflicted(older)["status"] == "False"


def test_different_matches_or_hostnames_do_not_conflict(editor):
    route(editor, "first", ["shop.example.com"])
    assert conflicted(route(editor, "other-path", ["shop.example.com"], "/web"))["status"] == (
        "False"
    )
    assert conflicted(route(editor, "other-host", ["a.example.com"]))["status"] == "False"


def test_removing_the_winner_clears_the_conflict(editor):
    route(editor, "first", ["shop.example.com"])
    route(editor, "second", ["shop.example.com"])
    assert editor.delete(ROUTES + "first/").status_code == 204
    assert conflicted(editor.get(ROUTES + "second/").json())["status"] == "False"


def test_changing_a_route_updates_the_report(editor):
    route(editor, "first", ["shop.example.com"])
    route(editor, "second", ["shop.example.com"], "/web")
    response = editor.patch(ROUTES + "second/", {"spec": {"rules": [{"matches": [
        {"path": {"type": "PathPrefix", "value": "/api"}}]}]}}, format="json")  # fmt: skip
    assert conflicted(response.json())["status"] == "True"
