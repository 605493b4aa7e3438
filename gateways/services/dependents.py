"""Statuses that depend on other objects, recomputed when those objects come or go.

A route's ``ResolvedRefs`` depends on which backends exist and its ``Accepted`` on its gateway's
listeners; a backend's ``ResolvedRefs`` on which certificates exist. The service that creates
or deletes a backend or certificate, or changes a gateway's listeners, calls these inside its
transaction. Rows are locked in id order (the order every writer uses), and only rows whose
status actually changes are written (their resourceVersion moves; generation does not).
"""

from gateways.egress import backend_refusals, current_policy
from gateways.json_texts import mentioning
from gateways.models import Backend, Gateway, Policy, Route
from gateways.route_status import route_status
from gateways.validation.routes import referenced_backends
from provisioning.ir.ext_auth import named_backends
from provisioning.ir.policies import named_consumers
from tenants.models import Tenant


def backend_names(tenant: Tenant) -> set[str]:
    return set(Backend.objects.filter(tenant=tenant).values_list("name", flat=True))


def refused_backends(tenant: Tenant, spec: dict) -> dict[str, str]:
    """Backend name → why, for the backends a route ``spec`` names that the egress policy
    refuses (stored before the policy, or under a laxer one): what translation will find, so
    a route's status says it as soon as the route is written, not only after a reconcile."""
    names = {name for _, name in referenced_backends(spec)}
    if not names:
        return {}
    policy = current_policy()
    refused = {}
    for name, backend_spec in Backend.objects.filter(tenant=tenant, name__in=names).values_list(
        "name", "spec"
    ):
        found = backend_refusals(backend_spec, policy)
        if found:
            refused[name] = f"{found[0][0]}: {found[0][1]}"
    return refused


def refresh_routes_using(tenant: Tenant, backend: str) -> None:
    """Routes of the tenant that send or mirror requests to ``backend`` (only the specs that
    mention it are read and decoded: ``json_texts.mentioning``)."""
    candidates = mentioning(Route.objects.filter(gateway__tenant=tenant), "spec", backend)
    candidates = candidates.values_list("pk", "spec")
    ids = [
        pk
        for pk, spec in candidates
        if any(name == backend for _, name in referenced_backends(spec))
    ]
    _refresh_routes(ids, tenant)


def refresh_routes_of(gateway: Gateway) -> None:
    """Every route of ``gateway`` (its listeners changed)."""
    _refresh_routes(list(gateway.routes.values_list("pk", flat=True)), gateway.tenant)


def _refresh_routes(ids: list[int], tenant: Tenant) -> None:
    from gateways.services.common import store_status

    if not ids:
        return
    names = backend_names(tenant)
    routes = (
        Route.objects.select_for_update(of=("self",))
        .select_related("gateway")
        .filter(pk__in=ids)
        .order_by("pk")
    )
    for route in routes:
        listeners = route.gateway.spec.get("listeners", [])
        refused = refused_backends(tenant, route.spec)
        status = route_status(route.spec, names, listeners, route.generation, route.status,
                              refused, route.kind)  # fmt: skip
        store_status(route, status)


def refresh_backends_using(tenant: Tenant, certificate: str) -> None:
    """Backends of the tenant whose TLS settings name ``certificate`` as a CA."""
    from gateways.services.backends import backend_status, certificate_names
    from gateways.services.common import store_status

    ids = [
        pk
        for pk, spec in Backend.objects.filter(tenant=tenant).values_list("pk", "spec")
        if any(ref["name"] == certificate for ref in _ca_refs(spec))
    ]
    if not ids:
        return
    names = certificate_names(tenant)
    backends = Backend.objects.select_for_update().filter(pk__in=ids).order_by("pk")
    for backend in backends:
        status = backend_status(
            backend.spec, names, backend.generation, backend.status, backend.tenant_id
        )
        store_status(backend, status)


def _ca_refs(spec: dict) -> list[dict]:
    return (spec.get("tls") or {}).get("caCertificateRefs", [])


def refresh_policies_naming(tenant: Tenant, consumer: str, named=named_consumers) -> None:
    """Statuses of the SecurityPolicies of the tenant that name ``consumer`` (it came or went;
    ``named``: ``named_backends`` for a backend an extAuth names).

    Each gateway concerned is locked (in id order) before its policies, as policy writers do."""
    from gateways.services.policies import refresh_policies

    candidates = Policy.objects.filter(gateway__tenant=tenant, kind=Policy.Kind.SECURITY)
    ids = sorted({
        gateway_id
        for gateway_id, spec in candidates.values_list("gateway_id", "spec")
        if any(name == consumer for _, name in named(spec))
    })  # fmt: skip
    for gateway in Gateway.objects.select_for_update().filter(pk__in=ids).order_by("pk"):
        refresh_policies(gateway)


def refresh_policies_naming_backend(tenant: Tenant, backend: str) -> None:
    """Statuses of the SecurityPolicies whose extAuth names ``backend`` (it came or went)."""
    refresh_policies_naming(tenant, backend, named_backends)
