"""Every console page costs the same number of queries with 3 objects as with 40: a list reads
a page of rows (and their related rows) in a fixed number of queries, never one per row."""

import uuid
from datetime import UTC, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing import rollups
from billing.models import AnalyticsHour, ReplicaHour, UsageHour
from gateways import services
from gateways.models import Route
from provisioning.models import AccessLogEntry, ConfigRevision, GatewayOperation
from provisioning.reconcile import reconcile
from tenants import services as tenant_services
from tenants.audit import Actor
from tenants.models import AuditEvent, Plan
from tenants.roles import Role
from tests.api.pki import certificate
from tests.conftest import make_user

SYSTEM = Actor.system("tests")
FEW, MANY = 3, 40
BACKEND = {"endpoints": [{"ip": {"address": "10.0.0.1", "port": 8080}}]}


def route_spec(index: int) -> dict:
    return {"hostnames": [f"r{index}.example.com"],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": f"/r{index}"}}],
                       "backendRefs": [{"name": f"b-{index % 5}"}]}]}  # fmt: skip


class World:
    """The tenant's objects, grown from ``size`` to a larger one."""

    def __init__(self, org):
        self.org, self.size = org, 0
        Plan.objects.filter(pk=org.tenant.plan_id).update(
            max_gateways=100, max_routes_per_gateway=100, max_replicas_per_gateway=10
        )
        org.tenant.refresh_from_db()
        self.edge = services.create_gateway(SYSTEM, org.tenant, "edge", {"replicas": 2})
        self.chain, self.key = certificate(("app.example.com",))
        self.mobile = services.create_consumer(SYSTEM, org.tenant, "mobile", {})

    def grow(self, size: int) -> None:
        tenant, edge = self.org.tenant, self.edge
        for i in range(self.size, size):
            services.create_gateway(SYSTEM, tenant, f"gw-{i:02d}", {})
            services.create_backend(SYSTEM, tenant, f"b-{i}", BACKEND)
            services.create_route(SYSTEM, edge, f"r-{i:02d}", route_spec(i))
            target = {"kind": "HTTPRoute", "name": f"r-{i:02d}"}
            services.create_policy(SYSTEM, edge, f"p-{i:02d}", "BackendTrafficPolicy",
                                   {"targetRefs": [target],
                                    "timeout": {"http": {"requestTimeout": "2s"}}})  # fmt: skip
            services.create_certificate(SYSTEM, tenant, f"c-{i:02d}",
                                        {"certificatePem": self.chain,
                                         "privateKeyPem": self.key})  # fmt: skip
            services.create_consumer(SYSTEM, tenant, f"u-{i:02d}", {"description": f"#{i}"})
            if i < 8:  # a consumer's most
                services.create_credential(SYSTEM, self.mobile, {"type": "api-key"})
            user = make_user(f"member-{i:02d}")
            tenant_services.add_member(SYSTEM, Role.OWNER, tenant, user.username, Role.VIEWER)
            tenant_services.create_token(SYSTEM, tenant, f"t-{i}", user=user)
            hour = timezone.now().astimezone(UTC).replace(minute=0, second=0, microsecond=0)
            for gateway in ("edge", f"gw-{i:02d}"):
                UsageHour.objects.create(tenant=tenant, gateway_name=gateway, port=80,
                                         hour=hour - timedelta(hours=i), responses_2xx=5,
                                         latency={"5": 5})  # fmt: skip
                ReplicaHour.objects.create(tenant=tenant, gateway_name=gateway, size="small",
                                           hour=hour - timedelta(hours=i),
                                           milliseconds=1000)  # fmt: skip
                rollups.roll_days(hour - timedelta(hours=i), hour - timedelta(hours=i - 1))
            for route, consumer in (("r-00", f"u-{i:02d}"), (f"r-{i:02d}", "mobile")):
                AnalyticsHour.objects.create(
                    tenant=tenant, gateway_name="edge", route=route, consumer=consumer,
                    start=hour - timedelta(hours=i), requests=3, responses_2xx=2,
                    responses_5xx=1, latency={"5": 3}, upstream_latency={"4": 3},
                )  # fmt: skip
                AccessLogEntry.objects.create(
                    tenant=tenant, gateway_name="edge", replica=0, incarnation=uuid.uuid4(),
                    segment=0, offset=0, timestamp=timezone.now(), status=200, route=route,
                    consumer=consumer, method="GET", path="/r",
                )  # fmt: skip
        # Revisions and operations: copies of the first (what the pages read of them).
        if not ConfigRevision.objects.filter(gateway=edge).exists():
            reconcile(edge.pk)
        first = ConfigRevision.objects.get(gateway=edge, number=1)
        for number in range(self.size + 2, size + 2):
            revision = ConfigRevision.objects.create(
                gateway=edge, number=number, content_hash=first.content_hash,
                manifest=first.manifest, size=first.size, desired_state={},
                state="valid", created_by="system:reconcile",
            )  # fmt: skip
            GatewayOperation.objects.create(gateway=edge, kind="reconcile", state="succeeded",
                                            revision=revision, created_by="system:reconcile",
                                            finished_at=timezone.now(),
                                            timings={"compile": 1.0, "store": 2.0})  # fmt: skip
        self.size = size


PAGES = [
    "/t/acme/",
    "/t/acme/gateways/",
    "/t/acme/gateways/?sort=-replicas",
    "/t/acme/gateways/edge/",
    "/t/acme/gateways/edge/status/",
    "/t/acme/gateways/edge/routes/",
    "/t/acme/gateways/edge/routes/r-00/",
    "/t/acme/gateways/edge/routes/r-00/edit/",
    "/t/acme/gateways/edge/policies/",
    "/t/acme/gateways/edge/policies/p-00/",
    "/t/acme/policies/",
    "/t/acme/gateways/edge/revisions/",
    "/t/acme/gateways/edge/revisions/1/",
    "/t/acme/gateways/edge/revisions/compare/?from=1&to=2",
    "/t/acme/gateways/edge/operations/",
    "/t/acme/gateways/edge/usage/",
    "/t/acme/gateways/edge/access-logs/",
    "/t/acme/gateways/edge/access-logs/?status=2xx&consumer=mobile&sort=-status",
    "/t/acme/backends/",
    "/t/acme/backends/b-0/",
    "/t/acme/certificates/",
    "/t/acme/certificates/c-00/",
    "/t/acme/consumers/",
    "/t/acme/consumers/mobile/",
    "/t/acme/members/",
    "/t/acme/tokens/",
    "/t/acme/audit/",
    "/t/acme/audit/?actor=system:tests&objectType=route",
    "/t/acme/usage/",
    "/t/acme/usage/?range=30d",
]


def queries(client: Client, url: str) -> list[str]:
    response = client.get(url)  # warm: the session, caches
    assert response.status_code == 200, (url, response.status_code)
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return [query["sql"] for query in captured.captured_queries]


@pytest.mark.django_db
def test_every_page_costs_the_same_queries_for_few_and_many_objects(org):
    world = World(org)
    owner = Client()
    owner.force_login(org.users[Role.OWNER])
    world.grow(FEW)
    operation = GatewayOperation.objects.first().pk
    pages = [*PAGES, f"/t/acme/audit/{AuditEvent.objects.first().pk}/",
             f"/t/acme/gateways/edge/operations/{operation}/"]  # fmt: skip
    few = {url: queries(owner, url) for url in pages}
    world.grow(MANY)
    assert Route.objects.filter(gateway=world.edge).count() == MANY
    many = {url: queries(owner, url) for url in pages}
    grew = {url: (len(few[url]), len(many[url])) for url in pages
            if len(few[url]) != len(many[url])}  # fmt: skip
    assert grew == {}, "\n".join(
        f"{url}: {a} → {b} queries; the new ones:\n  " + "\n  ".join(many[url][a:a + 5])
        for url, (a, b) in grew.items()
    )  # fmt: skip
