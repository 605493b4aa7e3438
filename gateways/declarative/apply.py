"""Apply a declarative file: validate every document first, then write them all in one
transaction through the ordinary service functions (so audit records, quotas, status and
reconciles are exactly those of single writes; reconciles start after the commit).

A dry run does the same writes and rolls the transaction back: what it reports is what the
real apply would do, quotas included, and nothing is kept.
"""

import difflib
from dataclasses import dataclass

from django.db import transaction

from config.errors import FieldError, GantryError, ValidationFailed
from gateways import services
from gateways.declarative.documents import (
    GATEWAY_LABEL,
    KINDS,
    POLICY_KINDS,
    DocumentError,
    Item,
    document,
    dump,
    parse,
)
from gateways.models import Backend, Gateway, Policy, Route
from gateways.services.routes import VALIDATORS
from gateways.validation import validate_backend_spec, validate_gateway_spec
from gateways.validation.dubbo_routes import validate_dubbo_route_spec
from gateways.validation.policies import validate_policy_spec
from tenants.audit import Actor
from tenants.models import Tenant

ORDER = {"backend": 0, "gateway": 1, "route": 2, "policy": 3}


@dataclass
class Result:
    kind: str
    name: str
    gateway: str
    action: str  # created | configured | unchanged | pruned
    diff: str

    def as_json(self) -> dict:
        out = {"kind": self.kind, "name": self.name, "action": self.action, "diff": self.diff}
        if self.gateway:
            out["gateway"] = self.gateway
        return out


class _DryRun(Exception):
    """Raised inside the transaction of a dry run so that nothing it wrote is kept."""


def apply(actor: Actor, tenant: Tenant, documents, *, dry_run: bool = False,
          prune: bool = False, impact: dict | None = None) -> list[Result]:  # fmt: skip
    """Every document applied, or nothing: ValidationFailed (or the service's own error)
    naming each bad document by index, kind, name and JSON path. A dry run fills ``impact``
    (when given) with what the change would do to each gateway it changes
    (``provisioning.impact``: hot or draining listeners, open connections touched)."""
    try:
        items = parse(documents, tenant.slug)
    except DocumentError as error:
        raise ValidationFailed.one(error.path, error.message) from None
    _check(tenant, items)
    results: list[Result] = []
    try:
        with transaction.atomic():
            results = _write_all(actor, tenant, items, prune)
            if dry_run:
                if impact is not None:
                    from provisioning.impact import preview_tenant

                    impact.update(preview_tenant(tenant))
                raise _DryRun
    except _DryRun:
        pass
    return results


# --- checks before any write -------------------------------------------------------------------


def _check(tenant: Tenant, items: list[Item]) -> None:
    live_gateways = {g.name: g.spec for g in Gateway.objects.filter(tenant=tenant)}
    # A gateway document with errors still counts: its routes are not also "without a gateway".
    input_gateways = {item.name for item in items if item.resource == "gateway" and item.name}
    _resolve_policy_gateways(tenant, items)
    seen: dict[tuple, int] = {}
    for item in items:
        if item.errors:
            continue
        if item.key in seen:
            _fail(item, "metadata.name", f"duplicates documents[{seen[item.key]}]")
            continue
        seen[item.key] = item.index
        known = item.gateway in input_gateways or item.gateway in live_gateways
        if item.resource in ("route", "policy") and not known:
            path = "spec.parentRefs[0].name" if item.resource == "route" else "spec.targetRefs"
            _fail(item, path, f"no gateway named {item.gateway!r} in this tenant or this file")
    # Specs, each as its single write would check it (gateways first: routes need listeners).
    listeners: dict[str, list[str]] = {
        name: [listener["name"] for listener in spec.get("listeners", [])]
        for name, spec in live_gateways.items()
    }
    protocols: dict[str, dict[str, str]] = {
        name: {listener["name"]: listener.get("protocol") for listener in spec.get("listeners", [])}
        for name, spec in live_gateways.items()
    }
    for item in sorted(items, key=lambda i: ORDER.get(i.resource, 9)):
        if item.errors:
            continue
        try:
            if item.resource == "gateway":
                spec = validate_gateway_spec(item.spec)
                listeners[item.name] = [listener["name"] for listener in spec["listeners"]]
                protocols[item.name] = {lst["name"]: lst["protocol"] for lst in spec["listeners"]}
            elif item.resource == "backend":
                validate_backend_spec(item.spec, tenant)
            elif item.resource == "route" and item.kind == "DubboRoute":
                validate_dubbo_route_spec(item.spec, listeners.get(item.gateway, []),
                                          protocols.get(item.gateway, {}))  # fmt: skip
            elif item.resource == "route":
                validate = VALIDATORS[item.kind]
                validate(item.spec, listeners.get(item.gateway, []))
            elif item.resource == "policy":
                validate_policy_spec(item.kind, item.spec, item.gateway,
                                     listeners.get(item.gateway, []))  # fmt: skip
        except ValidationFailed as error:
            item.errors += [_in_document(item, field) for field in error.fields]
    _check_policy_kinds(tenant, items)
    errors = [field for item in items for field in item.errors]
    if errors:
        raise ValidationFailed(errors)


def _resolve_policy_gateways(tenant: Tenant, items: list[Item]) -> None:
    """A policy's gateway: its label, else its Gateway target, else the one gateway that has
    (in this file or already) the routes it targets."""
    routes: dict[str, set[str]] = {}
    for gateway, name in Route.objects.filter(gateway__tenant=tenant).values_list(
        "gateway__name", "name"
    ):
        routes.setdefault(name, set()).add(gateway)
    for item in items:
        if item.resource == "route" and not item.errors:
            routes.setdefault(item.name, set()).add(item.gateway)
    for item in items:
        if item.resource != "policy" or item.errors or item.gateway:
            continue
        refs = item.spec.get("targetRefs")
        refs = [ref for ref in refs if isinstance(ref, dict)] if isinstance(refs, list) else []
        named = [ref.get("name") for ref in refs if ref.get("kind") == "Gateway"]
        if named and isinstance(named[0], str):
            item.gateway = named[0]
            continue
        candidates = set()
        for ref in refs:
            if ref.get("kind") == "HTTPRoute":
                candidates |= routes.get(ref.get("name"), set())
        if len(candidates) == 1:
            item.gateway = candidates.pop()
            continue
        why = "several gateways have routes by those names" if candidates else (
            "no gateway has a route by those names")  # fmt: skip
        _fail(item, "metadata.labels",
              f"cannot tell which gateway the policy belongs to ({why}): target the Gateway "
              f"or add the label {GATEWAY_LABEL}: <gateway>")  # fmt: skip


def _check_policy_kinds(tenant: Tenant, items: list[Item]) -> None:
    """A policy's kind, and a route's (HTTPRoute, GRPCRoute or DubboRoute), never change."""
    for model, resource, what in ((Policy, "policy", "policy"), (Route, "route", "route")):
        live = {
            (gateway, name): kind
            for gateway, name, kind in model.objects.filter(gateway__tenant=tenant).values_list(
                "gateway__name", "name", "kind"
            )
        }
        for item in items:
            current = live.get((item.gateway, item.name))
            changed = current and current != item.kind
            if item.resource == resource and not item.errors and changed:
                _fail(item, "kind", f"the {what} is a {current}; a {what}'s kind cannot "
                      "change (delete it first, or give the new one another name)")  # fmt: skip


def _fail(item: Item, path: str, message: str) -> None:
    item.errors.append(FieldError(f"documents[{item.index}].{path}", _label(item, message)))


def _label(item: Item, message: str) -> str:
    return f"{item.label()}: {message}"


def _in_document(item: Item, field: FieldError) -> FieldError:
    path = f"documents[{item.index}]" + (f".{field.path}" if field.path else "")
    return FieldError(path, _label(item, field.message), field.code)


# --- the writes --------------------------------------------------------------------------------


def _rows(tenant: Tenant) -> dict[tuple, object]:
    rows: dict[tuple, object] = {}
    for gateway in Gateway.objects.filter(tenant=tenant):
        rows[("gateway", "", gateway.name)] = gateway
    for backend in Backend.objects.filter(tenant=tenant):
        rows[("backend", "", backend.name)] = backend
    for route in Route.objects.filter(gateway__tenant=tenant).select_related("gateway"):
        rows[("route", route.gateway.name, route.name)] = route
    for policy in Policy.objects.filter(gateway__tenant=tenant).select_related("gateway"):
        rows[("policy", policy.gateway.name, policy.name)] = policy
    return rows


def _kind_of(row) -> str:
    if isinstance(row, Policy | Route):
        return row.kind  # HTTPRoute, GRPCRoute or DubboRoute; a policy's kind
    return {Gateway: "Gateway", Backend: "Backend"}[type(row)]


def _text(row) -> str:
    if row is None:
        return ""
    gateway = row.gateway.name if isinstance(row, (Route, Policy)) else ""
    return dump([document(_kind_of(row), row.name, row.spec, gateway)])


def _diff(before: str, after: str, label: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=f"live/{label}",
        tofile=f"applied/{label}",
    )
    return "".join(lines)


def _write_all(actor: Actor, tenant: Tenant, items: list[Item], prune: bool) -> list[Result]:
    rows = _rows(tenant)
    gateways: dict[str, Gateway] = {}
    results = []
    for item in sorted(items, key=lambda i: (ORDER[i.resource], i.index)):
        existing = rows.get(item.key)
        before = _text(existing)
        try:
            row = _write_one(actor, tenant, item, existing, gateways)
        except ValidationFailed as error:
            raise ValidationFailed([_in_document(item, field) for field in error.fields]) from None
        except GantryError as error:
            error.message = f"documents[{item.index}] ({item.label()}): {error.message}"
            error.args = (error.message,)
            if isinstance(getattr(error, "path", None), str):  # DisallowedValue: spec.size…
                error.path = f"documents[{item.index}].{error.path}"
            raise
        if existing is None:
            action = "created"
        else:
            action = "configured" if row.generation != existing.generation else "unchanged"
        after = _text(row)
        label = f"{item.kind}/{item.gateway + '/' if item.gateway else ''}{item.name}"
        results.append(Result(item.kind, item.name, item.gateway, action,
                              _diff(before, after, label)))  # fmt: skip
    if prune:
        results += _prune(actor, items, rows)
    return results


def _write_one(actor: Actor, tenant: Tenant, item: Item, existing, gateways: dict):
    if item.resource in ("route", "policy"):
        # The services lock the gateway by its key; the row here only tells them which one.
        if item.gateway not in gateways:
            gateways[item.gateway] = Gateway.objects.get(tenant=tenant, name=item.gateway)
        gateway = gateways[item.gateway]
    if item.resource == "gateway":
        if existing is None:
            return services.create_gateway(actor, tenant, item.name, item.spec)
        return services.replace_gateway_spec(actor, existing, item.spec)
    if item.resource == "backend":
        if existing is None:
            return services.create_backend(actor, tenant, item.name, item.spec)
        return services.replace_backend_spec(actor, existing, item.spec)
    if item.resource == "route":
        if existing is None:
            return services.create_route(actor, gateway, item.name, item.spec, kind=item.kind)
        return services.replace_route_spec(actor, existing, item.spec)
    if existing is None:
        return services.create_policy(actor, gateway, item.name, item.kind, item.spec)
    return services.replace_policy_spec(actor, existing, item.spec, kind=item.kind)


def _prune(actor: Actor, items: list[Item], rows: dict[tuple, object]) -> list[Result]:
    """Deletes the objects of the kinds in the file that the file does not name, dependents
    first (policies, routes, gateways, backends)."""
    kinds = {item.kind for item in items}
    wanted = {item.key for item in items}
    doomed = [
        (key, row) for key, row in rows.items() if key not in wanted and _kind_of(row) in kinds
    ]
    doomed.sort(key=lambda pair: (-ORDER[pair[0][0]], pair[0][1], pair[0][2]))
    deletes = {
        "policy": services.delete_policy,
        "route": services.delete_route,
        "gateway": services.delete_gateway,
        "backend": services.delete_backend,
    }
    results = []
    gone: set[str] = set()  # gateways pruned: their routes and policies went with them
    for (resource, gateway, name), row in doomed:
        if gateway in gone:
            continue
        kind = _kind_of(row)
        label = f"{kind}/{gateway + '/' if gateway else ''}{name}"
        before = _text(row)
        try:
            deletes[resource](actor, row)
        except GantryError as error:
            error.message = f"pruning {label}: {error.message}"
            error.args = (error.message,)
            raise
        if resource == "gateway":
            gone.add(name)
        results.append(Result(kind, name, gateway, "pruned", _diff(before, "", label)))
    return results


__all__ = ["KINDS", "POLICY_KINDS", "Result", "apply"]
