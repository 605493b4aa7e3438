"""The console: a backend naming a Kubernetes Service is created from the whole spec (the grant
checked at its field) and its page shows the Service."""

from django.test import Client

from gateways.models import Backend
from tenants.roles import Role


def test_a_service_backend_in_the_console(org, granted):
    client = Client()
    client.force_login(org.users[Role.EDITOR])
    spec = '{"kubernetesService": {"namespace": "shop", "name": "cart", "port": 80}}'
    response = client.post("/t/acme/backends/new/", {"name": "cart", "mode": "spec", "spec": spec})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Backend.objects.get(name="cart").spec["kubernetesService"]["cluster"] == "prod"
    page = client.get("/t/acme/backends/cart/").content.decode()
    assert "prod/shop/cart" in page and "kubernetesService" in page
    refused = client.post("/t/acme/backends/new/", {"name": "ledger", "mode": "spec",
                          "spec": spec.replace("shop", "billing")})  # fmt: skip
    assert refused.status_code == 400
    assert "not granted to your tenant" in refused.content.decode().replace("&#x27;", "'")
    assert not Backend.objects.filter(name="ledger").exists()
