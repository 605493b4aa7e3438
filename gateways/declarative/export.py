"""A tenant's configuration as declarative documents: stable order, specs only (no status, no
server fields), no secrets. Certificates and consumers are not exported: listeners name
certificates and policies name consumers, by reference."""

from gateways.declarative.documents import document, dump
from gateways.models import Backend, Gateway, Policy, Route
from tenants.models import Tenant


def export_documents(tenant: Tenant) -> list[dict]:
    out = [document("Backend", b.name, b.spec) for b in Backend.objects.filter(tenant=tenant)
           .order_by("name")]  # fmt: skip
    out += [document("Gateway", g.name, g.spec) for g in Gateway.objects.filter(tenant=tenant)
            .order_by("name")]  # fmt: skip
    routes = Route.objects.filter(gateway__tenant=tenant).select_related("gateway")
    out += [
        document(r.kind, r.name, r.spec, r.gateway.name)
        for r in routes.order_by("gateway__name", "name")
    ]
    policies = Policy.objects.filter(gateway__tenant=tenant).select_related("gateway")
    out += [
        document(p.kind, p.name, p.spec, p.gateway.name)
        for p in policies.order_by("gateway__name", "name")
    ]
    return out


def export_yaml(tenant: Tenant) -> str:
    return dump(export_documents(tenant))
