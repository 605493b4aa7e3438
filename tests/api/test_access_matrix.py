"""Every tenant endpoint × every role: outsiders get 404, too-low roles 403, the rest succeed.

Also: no credentials → 401; a revoked or expired token → 401; another tenant's token → 404.
"""

from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from gateways import services as gateway_services
from gateways.models import Credential
from provisioning.desired import load_desired_state
from provisioning.models import ConfigRevision, LocalReplica
from provisioning.revisions import desired_snapshot
from tenants import services
from tenants.audit import Actor
from tenants.models import ApiToken, AuditEvent
from tenants.roles import Role, at_least
from tests.api import pki
from tests.api.people import colleague
from tests.conftest import ROLES, make_user

GATEWAY_SPEC = {"listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]}
CERT_PEM, KEY_PEM = pki.certificate(["app.example.com"])
CERTIFICATE_SPEC = {"certificatePem": CERT_PEM, "privateKeyPem": KEY_PEM}
BACKEND_SPEC = {"endpoints": [{"ip": {"address": "10.0.0.1", "port": 8080}}]}
ROUTE_SPEC = {"rules": [{"backendRefs": [{"name": "api"}]}]}
DUBBO_SPEC = {"rules": [{"matches": [{"service": "org.example.Greeter"}],
                         "backendRefs": [{"name": "api"}]}]}  # fmt: skip
APPLY_DOCUMENT = {
    "apiVersion": "gateway.envoyproxy.io/v1alpha1",
    "kind": "Backend",
    "metadata": {"name": "declared"},
    "spec": BACKEND_SPEC,
}
POLICY_SPEC = {"targetRefs": [{"kind": "Gateway", "name": "edge"}], "retry": {}}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # {t} tenant, {gw} gateway, {member}, {spare_token}, {own_token}, {event},
    # {cert} certificate, {backend}, {route} (a route of gateway {gw}), {cred} (of alice)
    role: str  # the least role that may do it
    ok: int
    body: dict = field(default_factory=dict)
    below: int = 403  # what a lower role gets

    def __str__(self):
        return f"{self.method} {self.path}"


ENDPOINTS = [
    Endpoint("GET", "/api/v1/tenants/{t}/", Role.VIEWER, 200),
    Endpoint("PATCH", "/api/v1/tenants/{t}/", Role.ADMIN, 200, {"displayName": "Acme Corp"}),
    Endpoint("DELETE", "/api/v1/tenants/{t}/", Role.OWNER, 409),  # 409: it still has a gateway
    Endpoint("GET", "/api/v1/tenants/{t}/members/", Role.VIEWER, 200),
    Endpoint("GET", "/api/v1/tenants/{t}/members/{member}/", Role.VIEWER, 200),
    Endpoint("POST", "/api/v1/tenants/{t}/members/", Role.ADMIN, 201,
             {"user": "newcomer", "role": "viewer"}),
    Endpoint("PATCH", "/api/v1/tenants/{t}/members/{member}/", Role.ADMIN, 200,
             {"role": "editor"}),
    Endpoint("PUT", "/api/v1/tenants/{t}/members/{member}/", Role.ADMIN, 200, {"role": "editor"}),
    Endpoint("DELETE", "/api/v1/tenants/{t}/members/{member}/", Role.ADMIN, 204),
    Endpoint("GET", "/api/v1/tenants/{t}/tokens/", Role.VIEWER, 200),
    Endpoint("POST", "/api/v1/tenants/{t}/tokens/", Role.VIEWER, 201,
             {"name": "ci", "expiresAt": "2099-01-01T00:00:00Z"}),
    Endpoint("DELETE", "/api/v1/tenants/{t}/tokens/{own_token}/", Role.VIEWER, 204),
    # Other members' tokens are invisible below admin, hence 404 rather than 403.
    Endpoint("GET", "/api/v1/tenants/{t}/tokens/{spare_token}/", Role.ADMIN, 200, below=404),
    Endpoint("DELETE", "/api/v1/tenants/{t}/tokens/{spare_token}/", Role.ADMIN, 204, below=404),
    Endpoint("GET", "/api/v1/tenants/{t}/audit-events/", Role.ADMIN, 200),
    Endpoint("GET", "/api/v1/tenants/{t}/audit-events/{event}/", Role.ADMIN, 200),
    Endpoint("GET", "/api/v1/tenants/{t}/gateways/", Role.VIEWER, 200),
    Endpoint("GET", "/api/v1/tenants/{t}/gateways/{gw}/", Role.VIEWER, 200),
    Endpoint("POST", "/api/v1/tenants/{t}/gateways/", Role.EDITOR, 202,
             {"name": "second", "spec": GATEWAY_SPEC}),
    Endpoint("PUT", "/api/v1/tenants/{t}/gateways/{gw}/", Role.EDITOR, 202,
             {"spec": {**GATEWAY_SPEC, "replicas": 2}}),
    Endpoint("PATCH", "/api/v1/tenants/{t}/gateways/{gw}/", Role.EDITOR, 202,
             {"spec": {"replicas": 3}}),
    Endpoint("DELETE", "/api/v1/tenants/{t}/gateways/{gw}/", Role.EDITOR, 204),
    Endpoint("GET", "/api/v1/tenants/{t}/certificates/", Role.VIEWER, 200),
    Endpoint("GET", "/api/v1/tenants/{t}/certificates/{cert}/", Role.VIEWER, 200),
    Endpoint("POST", "/api/v1/tenants/{t}/certificates/", Role.EDITOR, 202,
             {"name": "second", "spec": CERTIFICATE_SPEC}),
    Endpoint("PUT", "/api/v1/tenants/{t}/certificates/{cert}/", Role.EDITOR, 200,
             {"spec": {"certificatePem": CERT_PEM}}),
    Endpoint("PATCH", "/api/v1/tenants/{t}/certificates/{cert}/", Role.EDITOR, 202,
             {"spec": {"privateKeyPem": None}}),
    Endpoint("DELETE", "/api/v1/tenants/{t}/certificates/{cert}/", Role.EDITOR, 204),
    Endpoint("GET", "/api/v1/tenants/{t}/backends/", Role.VIEWER, 200),
    Endpoint("GET", "/api/v1/tenants/{t}/backends/{backend}/", Role.VIEWER, 200),
    Endpoint("POST", "/api/v1/tenants/{t}/backends/", Role.EDITOR, 202,
             {"name": "second", "spec": BACKEND_SPEC}),
    Endpoint("PUT", "/api/v1/tenants/{t}/backends/{backend}/", Role.EDITOR, 202,
             {"spec": {**BACKEND_SPEC, "appProtocol": "h2c"}}),
    Endpoint("PATCH", "/api/v1/tenants/{t}/backends/{backend}/", Role.EDITOR, 202,
             {"spec": {"appProtocol": "gRPC"}}),
    Endpoint("DELETE", "/api/v1/tenants/{t}/backends/{backend}/", Role.EDITOR, 204),
    Endpoint("GET", "/api/v1/tenants/{t}/consumers/", Role.VIEWER, 200),
    Endpoint("GET", "/api/v1/tenants/{t}/consumers/alice/", Role.VIEWER, 200),
    Endpoint("POST", "/api/v1/tenants/{t}/consumers/", Role.EDITOR, 202,
             {"name": "second", "spec": {}}),
    Endpoint("PUT", "/api/v1/tenants/{t}/consumers/alice/", Role.EDITOR, 202,
             {"spec": {"description": "web"}}),
    Endpoint("PATCH", "/api/v1/tenants/{t}/consumers/alice/", Role.EDITOR, 202,
             {"spec": {"description": "app"}}),
    Endpoint("DELETE", "/api/v1/tenants/{t}/consumers/alice/", Role.EDITOR, 204),
    Endpoint("GET", "/api/v1/tenants/{t}/consumers/alice/credentials/", Role.VIEWER, 200),
    Endpoint("GET", "/api/v1/tenants/{t}/consumers/alice/credentials/{cred}/", Role.VIEWER, 200),
    Endpoint("POST", "/api/v1/tenants/{t}/consumers/alice/credentials/", Role.EDITOR, 201,
             {"type": "api-key"}),
    Endpoint("DELETE", "/api/v1/tenants/{t}/consumers/alice/credentials/{cred}/", Role.EDITOR,
             204),
    Endpoint("GET", "/api/v1/tenants/{t}/gateways/{gw}/routes/", Role.VIEWER, 200),
    Endpoint("GET", "/api/v1/tenants/{t}/gateways/{gw}/routes/{route}/", Role.VIEWER, 200),
    Endpoint("POST", "/api/v1/tenants/{t}/gateways/{gw}/routes/", Role.EDITOR, 202,
             {"name": "second", "spec": ROUTE_SPEC}),
    Endpoint("PUT", "/api/v1/tenants/{t}/gateways/{gw}/routes/{route}/", Role.EDITOR, 202,
             {"spec": {"hostnames": ["app.example.com"]}}),
    Endpoint("PATCH", "/api/v1/tenants/{t}/gateways/{gw}/routes/{route}/", Role.EDITOR, 202,
             {"spec": {"hostnames": ["api.example.com"]}}),
    Endpoint("DELETE", "/api/v1/tenants/{t}/gateways/{gw}/routes/{route}/", Role.EDITOR, 204),
    Endpoint("GET", "/api/v1/tenants/{t}/gateways/{gw}/grpcroutes/", Role.VIEWER, 200),
    Endpoint("GET", "/api/v1/tenants/{t}/gateways/{gw}/grpcroutes/rpc/", Role.VIEWER, 200),
    Endpoint("POST", "/api/v1/tenants/{t}/gateways/{gw}/grpcroutes/", Role.EDITOR, 202,
             {"name": "second-rpc", "spec": ROUTE_SPEC}),
    Endpoint("PUT", "/api/v1/tenants/{t}/gateways/{gw}/grpcroutes/rpc/", Role.EDITOR, 202,
             {"spec": {"hostnames": ["rpc.example.com"]}}),
    Endpoint("PATCH", "/api/v1/tenants/{t}/gateways/{gw}/grpcroutes/rpc/", Role.EDITOR, 202,
             {"spec": {"hostnames": ["grpc.example.com"]}}),
    Endpoint("DELETE", "/api/v1/tenants/{t}/gateways/{gw}/grpcroutes/rpc/", Role.EDITOR, 204),
    Endpoint("GET", "/api/v1/tenants/{t}/gateways/{gw}/dubboroutes/", Role.VIEWER, 200),
    Endpoint("GET", "/api/v1/tenants/{t}/gateways/{gw}/dubboroutes/dubbo/", Role.VIEWER, 200),
    Endpoint("POST", "/api/v1/tenants/{t}/gateways/{gw}/dubboroutes/", Role.EDITOR, 202,
             {"name": "second-dubbo", "spec": DUBBO_SPEC}),
    Endpoint("PUT", "/api/v1/tenants/{t}/gateways/{gw}/dubboroutes/dubbo/", Role.EDITOR, 202,
             {"spec": {"rules": [{"matches": [{"service": "org.example.Other"}]}]}}),
    Endpoint("PATCH", "/api/v1/tenants/{t}/gateways/{gw}/dubboroutes/dubbo/", Role.EDITOR, 202,
             {"spec": {"rules": [{"matches": [{"service": "org.example.Greeter",
                                               "method": "sayHello"}]}]}}),
    Endpoint("DELETE", "/api/v1/tenants/{t}/gateways/{gw}/dubboroutes/dubbo/", Role.EDITOR, 204),
    Endpoint("GET", "/api/v1/tenants/{t}/gateways/{gw}/policies/", Role.VIEWER, 200),
    Endpoint("GET", "/api/v1/tenants/{t}/gateways/{gw}/policies/retries/", Role.VIEWER, 200),
    Endpoint("POST", "/api/v1/tenants/{t}/gateways/{gw}/policies/", Role.EDITOR, 202,
             {"name": "second", "kind": "BackendTrafficPolicy", "spec": POLICY_SPEC}),
    Endpoint("PUT", "/api/v1/tenants/{t}/gateways/{gw}/policies/retries/", Role.EDITOR, 202,
             {"spec": {**POLICY_SPEC, "retry": {"numRetries": 3}}}),
    Endpoint("PATCH", "/api/v1/tenants/{t}/gateways/{gw}/policies/retries/", Role.EDITOR, 202,
             {"spec": {"retry": {"numRetries": 4}}}),
    Endpoint("DELETE", "/api/v1/tenants/{t}/gateways/{gw}/policies/retries/", Role.EDITOR, 204),
    Endpoint("GET", "/api/v1/tenants/{t}/export/", Role.VIEWER, 200),
    Endpoint("POST", "/api/v1/tenants/{t}/apply/?dryRun=true", Role.EDITOR, 200,
             [APPLY_DOCUMENT]),
    Endpoint("POST", "/api/v1/tenants/{t}/apply/", Role.EDITOR, 200, [APPLY_DOCUMENT]),
    Endpoint("GET", "/api/v1/tenants/{t}/gateways/{gw}/revisions/", Role.VIEWER, 200),
    Endpoint("GET", "/api/v1/tenants/{t}/gateways/{gw}/revisions/1/", Role.VIEWER, 200),
    Endpoint("GET", "/api/v1/tenants/{t}/gateways/{gw}/revisions/1/diff/?against=1",
             Role.VIEWER, 200),
    Endpoint("POST", "/api/v1/tenants/{t}/gateways/{gw}/revisions/1/rollback/", Role.EDITOR, 202),
    Endpoint("GET", "/api/v1/tenants/{t}/gateways/{gw}/operations/", Role.VIEWER, 200),
    Endpoint("GET", "/api/v1/tenants/{t}/gateways/{gw}/replicas/", Role.VIEWER, 200),
    Endpoint("GET", "/api/v1/tenants/{t}/gateways/{gw}/replicas/0/", Role.VIEWER, 200),
    Endpoint("GET", "/api/v1/tenants/{t}/gateways/{gw}/replicas/0/log/", Role.VIEWER, 200),
]  # fmt: skip


@pytest.fixture
def world(org):
    """The org plus the objects the endpoints address."""
    actor = Actor.system("tests")
    gateway = gateway_services.create_gateway(actor, org.tenant, "edge", GATEWAY_SPEC)
    gateway_services.create_certificate(actor, org.tenant, "example-cert", CERTIFICATE_SPEC)
    gateway_services.create_backend(actor, org.tenant, "api", BACKEND_SPEC)
    gateway_services.create_route(actor, gateway, "web", ROUTE_SPEC)
    gateway_services.create_grpc_route(actor, gateway, "rpc", ROUTE_SPEC)
    gateway_services.create_dubbo_route(actor, gateway, "dubbo", DUBBO_SPEC)
    gateway_services.create_policy(actor, gateway, "retries", "BackendTrafficPolicy", POLICY_SPEC)
    alice = gateway_services.create_consumer(actor, org.tenant, "alice", {})
    gateway_services.create_credential(actor, alice, {"type": "api-key"})
    ConfigRevision.objects.create(  # stored directly: reconciling is not what this file tests
        gateway=gateway, number=1, content_hash="0" * 64, state="valid", current=True,
        resources='{"clusters":[],"listeners":[],"routes":[]}', created_by="tests",
        desired_state=desired_snapshot(load_desired_state(gateway.pk)),  # rollback rebuilds it
    )  # fmt: skip
    LocalReplica.objects.create(gateway=gateway, index=0, state="running")
    colleague(org, "newcomer")  # shares a tenant with acme's owner and admin: they may add them
    spare = make_user("spare")
    services.add_member(actor, Role.OWNER, org.tenant, "spare", Role.VIEWER)
    spare_token, _ = services.create_token(actor, org.tenant, "spare's", user=spare)
    return org, spare_token


def fill(endpoint: Endpoint, org, spare_token, own_prefix: str) -> str:
    event = AuditEvent.objects.filter(tenant=org.tenant).first()
    credential = Credential.objects.get(consumer__tenant=org.tenant, consumer__name="alice")
    return endpoint.path.format(
        t=org.tenant.slug, gw="edge", member="spare", spare_token=spare_token.prefix,
        own_token=own_prefix, event=event.pk, cert="example-cert", backend="api", route="web",
        cred=credential.key_id,
    )  # fmt: skip


def call(client: APIClient, endpoint: Endpoint, path: str):
    return getattr(client, endpoint.method.lower())(path, endpoint.body or None, format="json")


def own_prefix(org, role) -> str:
    return ApiToken.objects.get(tenant=org.tenant, user=org.users[role]).prefix


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_what_its_role_allows(world, endpoint, role):
    org, spare_token = world
    path = fill(endpoint, org, spare_token, own_prefix(org, role))
    response = call(org.client(role), endpoint, path)
    expected = endpoint.ok if at_least(role, endpoint.role) else endpoint.below
    assert response.status_code == expected, response.content
    if expected >= 400:
        assert response.json()["error"]["status"] == expected


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_an_outsider_gets_404_never_a_hint(world, outsider, endpoint):
    org, spare_token = world
    client = APIClient()
    client.force_authenticate(outsider)
    path = fill(endpoint, org, spare_token, own_prefix(org, Role.VIEWER))
    response = call(client, endpoint, path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_another_tenants_owner_token_gets_404(world, other_org, endpoint):
    org, spare_token = world
    path = fill(endpoint, org, spare_token, own_prefix(org, Role.VIEWER))
    assert call(other_org.client(Role.OWNER), endpoint, path).status_code == 404


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_no_credentials_get_401(world, endpoint):
    org, spare_token = world
    path = fill(endpoint, org, spare_token, own_prefix(org, Role.VIEWER))
    response = call(APIClient(), endpoint, path)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_revoked_and_expired_tokens_get_401(world, endpoint):
    org, spare_token = world
    path = fill(endpoint, org, spare_token, own_prefix(org, Role.VIEWER))
    owner_token = ApiToken.objects.get(tenant=org.tenant, user=org.users[Role.OWNER])
    ApiToken.objects.filter(pk=owner_token.pk).update(revoked_at=timezone.now())
    revoked = call(org.client(Role.OWNER), endpoint, path)
    assert revoked.status_code == 401
    assert "revoked" in revoked.json()["error"]["message"]
    ApiToken.objects.filter(pk=owner_token.pk).update(
        revoked_at=None, expires_at=timezone.now() - timedelta(seconds=1)
    )
    expired = call(org.client(Role.OWNER), endpoint, path)
    assert expired.status_code == 401
    assert "expired" in expired.json()["error"]["message"]


def test_a_too_low_role_changes_nothing(world):
    org, _ = world
    before = AuditEvent.objects.count()
    response = org.client(Role.VIEWER).patch(
        "/api/v1/tenants/acme/gateways/edge/", {"spec": {"replicas": 5}}, format="json"
    )
    assert response.status_code == 403
    assert "viewer" in response.json()["error"]["message"]
    gateway = org.client(Role.VIEWER).get("/api/v1/tenants/acme/gateways/edge/").json()
    assert gateway["spec"]["replicas"] == 1
    assert AuditEvent.objects.count() == before
