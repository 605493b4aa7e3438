"""Every write to routes. The gateway row is locked first (the route quota is per gateway, and
``parentRefs`` are checked against its listeners), then the route: the order every writer of
routes uses."""

import json

from django.db import transaction
from django.db.models import TextField
from django.db.models.functions import Cast

from config.api.versioning import merge_patch
from config.errors import Conflict
from gateways import json_texts
from gateways.conditions import set_condition
from gateways.models import Gateway, Route
from gateways.route_conflicts import (
    claims,
    conflict_condition,
    find_conflicts,
    stream_claims,
    stream_conflict_condition,
)
from gateways.route_status import route_status
from gateways.services import common
from gateways.services.dependents import backend_names, refused_backends
from gateways.services.policies import refresh_policies
from gateways.validation import (
    validate_dubbo_route_spec,
    validate_grpc_route_spec,
    validate_route_spec,
    validate_tcp_route_spec,
    validate_tls_route_spec,
)
from provisioning.tasks import enqueue_reconcile
from tenants import audit, quotas
from tenants.audit import Actor

AUDIT_TYPES = {
    Route.Kind.GRPC: "grpcroute",
    Route.Kind.TCP: "tcproute",
    Route.Kind.TLS: "tlsroute",
    Route.Kind.DUBBO: "dubboroute",
}
VALIDATORS = {
    Route.Kind.HTTP: validate_route_spec,
    Route.Kind.GRPC: validate_grpc_route_spec,
    Route.Kind.TCP: validate_tcp_route_spec,
    Route.Kind.TLS: validate_tls_route_spec,
}


def audit_type(route: Route) -> str:
    return AUDIT_TYPES.get(route.kind, "route")


def audit_name(route: Route) -> str:
    """Routes are named per gateway: the audit log calls them ``<gateway>/<route>``."""
    return f"{route.gateway.name}/{route.name}"


def snapshot(route: Route) -> dict:
    return {
        "gateway": route.gateway.name,
        "name": route.name,
        "spec": route.spec,
        "generation": route.generation,
    }


def _listeners(gateway: Gateway) -> list[dict]:
    return gateway.spec.get("listeners", [])


def _validate(raw_spec, gateway: Gateway, kind: str = Route.Kind.HTTP) -> dict:
    names = [listener["name"] for listener in _listeners(gateway)]
    if kind == Route.Kind.DUBBO:
        protocols = {item["name"]: item.get("protocol") for item in _listeners(gateway)}
        return validate_dubbo_route_spec(raw_spec, names, protocols)
    return VALIDATORS[kind](raw_spec, names)


def _status(spec: dict, gateway: Gateway, generation: int, previous: dict, kind: str) -> dict:
    names = backend_names(gateway.tenant)
    refused = refused_backends(gateway.tenant, spec)
    return route_status(spec, names, _listeners(gateway), generation, previous, refused, kind)


@transaction.atomic
def create_route(
    actor: Actor, gateway: Gateway, name: str, raw_spec, kind: str = Route.Kind.HTTP
) -> Route:
    """A new route of any kind; names are unique per gateway whatever the kind."""
    gateway = common.lock(Gateway, gateway.pk, "tenant__plan")
    spec = _validate(raw_spec, gateway, kind)
    duplicate = f"gateway {gateway.name!r} already has a route named {name!r}"
    if Route.objects.filter(gateway=gateway, name=name).exists():
        raise Conflict(duplicate)
    quotas.check_route_count(gateway.tenant, Route.objects.filter(gateway=gateway).count())
    route = common.create_unique(
        Route,
        duplicate,
        gateway=gateway,
        name=name,
        kind=kind,
        spec=spec,
        status=_status(spec, gateway, 1, {}, kind),
    )
    audit.record(
        actor,
        "create",
        audit_type(route),
        audit_name(route),
        tenant=gateway.tenant,
        after=snapshot(route),
    )
    refresh_conflicts(gateway)
    refresh_policies(gateway)  # a policy may target the new route
    enqueue_reconcile(gateway.pk)
    route.refresh_from_db(fields=["status", "resource_version"])
    return route


CONFLICT_KINDS = (Route.Kind.HTTP, Route.Kind.TCP, Route.Kind.TLS)
HTTP = Route.Kind.HTTP


def refresh_conflicts(gateway: Gateway) -> None:
    """Recomputes every route's ``Conflicted`` condition; writes only those that changed.

    Callers hold the gateway's lock, which every route writer takes first.
    """
    # HTTPRoutes among themselves: a GRPCRoute's matches (service and method) are never
    # compared to paths. TCPRoutes and TLSRoutes claim listeners and SNI names.
    # Specs by digest, each read and decoded once per process (gateways.json_texts), statuses
    # as JSON text decoded once per distinct text: on a gateway of 10,000 routes, reading
    # and decoding every spec and status took most of a write.
    found = Route.objects.filter(gateway=gateway, kind__in=CONFLICT_KINDS)
    rows = found.order_by("created_at", "name").values_list(
        "pk", "name", "kind", "generation", "resource_version", "spec_digest",
        Cast("status", TextField()),
    )  # fmt: skip
    # Purposes of their own: a cache keeps only what its read used (the reconcile's specs
    # must not lose the ones this read never needed).
    status_of = json_texts.decoder("conflicts:status", gateway.pk)
    routes = [(pk, name, kind, generation, version, digest, status_of(status))
              for pk, name, kind, generation, version, digest, status in rows]  # fmt: skip
    http = [(pk, digest) for pk, _, kind, _, _, digest, _ in routes if kind == HTTP]
    claims_of = json_texts.route_specs(
        "conflicts:claims", gateway.pk, http, lambda text: claims(json.loads(text))
    )
    conflicts = find_conflicts([(row[1], claims_of[row[0]]) for row in routes if row[2] == HTTP])
    others = [(pk, digest) for pk, _, kind, _, _, digest, _ in routes if kind != HTTP]
    spec_of = json_texts.route_specs("conflicts:spec", gateway.pk, others)
    streams = [{"name": name, "kind": kind, "spec": spec_of[pk]}
               for pk, name, kind, *_ in routes if kind != HTTP]  # fmt: skip
    _, lost = stream_claims(_listeners(gateway), streams)
    for pk, name, kind, generation, version, _, stored in routes:
        if kind == HTTP:
            status, reason, message = conflict_condition(conflicts.get(name, []))
        else:
            status, reason, message = stream_conflict_condition(lost.get(name, []))
        current = {c["type"]: c for c in stored.get("conditions", [])}.get("Conflicted")
        if current and (current["status"], current["message"]) == (status, message):
            continue
        conditions = set_condition(
            stored.get("conditions", []), "Conflicted", status, reason, message, generation
        )
        Route.objects.filter(pk=pk).update(
            status={**stored, "conditions": conditions}, resource_version=version + 1
        )
    status_of.keep()


def _lock(route: Route, expected: int | None) -> Route:
    gateway = common.lock(Gateway, route.gateway_id, "tenant")
    locked = common.lock_checked(Route, route.pk, expected, "route")
    locked.gateway = gateway
    return locked


def _write(actor: Actor, locked: Route, spec: dict) -> Route:
    if spec == locked.spec:
        return locked
    before = snapshot(locked)
    status = _status(spec, locked.gateway, locked.generation + 1, locked.status, locked.kind)
    common.store_spec(locked, spec, status)
    audit.record(
        actor,
        "update",
        audit_type(locked),
        audit_name(locked),
        tenant=locked.gateway.tenant,
        before=before,
        after=snapshot(locked),
    )
    refresh_conflicts(locked.gateway)
    refresh_policies(locked.gateway)  # a rule a policy targets may come or go
    enqueue_reconcile(locked.gateway_id)
    locked.refresh_from_db(fields=["status", "resource_version"])
    return locked


@transaction.atomic
def replace_route_spec(actor: Actor, route: Route, raw_spec, expected: int | None = None):
    """PUT: the new spec replaces the old one whole (omitted fields take their defaults)."""
    locked = _lock(route, expected)
    return _write(actor, locked, _validate(raw_spec, locked.gateway, locked.kind))


@transaction.atomic
def patch_route_spec(actor: Actor, route: Route, patch, expected: int | None = None):
    """PATCH: an RFC 7386 merge patch into the stored spec (lists replace), validated whole."""
    locked = _lock(route, expected)
    merged = merge_patch(locked.spec, patch if patch is not None else {})
    return _write(actor, locked, _validate(merged, locked.gateway, locked.kind))


@transaction.atomic
def delete_route(actor: Actor, route: Route, expected: int | None = None) -> None:
    locked = _lock(route, expected)
    audit.record(
        actor,
        "delete",
        audit_type(locked),
        audit_name(locked),
        tenant=locked.gateway.tenant,
        before=snapshot(locked),
    )
    locked.delete()
    refresh_conflicts(locked.gateway)
    refresh_policies(locked.gateway)  # policies targeting it lose that target
    enqueue_reconcile(locked.gateway_id)


def create_grpc_route(actor: Actor, gateway: Gateway, name: str, raw_spec) -> Route:
    return create_route(actor, gateway, name, raw_spec, Route.Kind.GRPC)


def create_tcp_route(actor: Actor, gateway: Gateway, name: str, raw_spec) -> Route:
    return create_route(actor, gateway, name, raw_spec, Route.Kind.TCP)


def create_tls_route(actor: Actor, gateway: Gateway, name: str, raw_spec) -> Route:
    return create_route(actor, gateway, name, raw_spec, Route.Kind.TLS)


def create_dubbo_route(actor: Actor, gateway: Gateway, name: str, raw_spec) -> Route:
    return create_route(actor, gateway, name, raw_spec, Route.Kind.DUBBO)
