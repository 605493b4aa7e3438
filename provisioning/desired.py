"""Loading one gateway's desired state from the database, as the compiler takes it.

Only what the gateway uses is loaded: the backends its routes send or mirror to or its
policies' extAuth names, and the certificates its listeners serve or its backends trust.
Nothing here decides anything; the compiler does.
"""

import json
from collections import Counter
from dataclasses import replace
from itertools import chain, compress, count
from operator import itemgetter, ne
from typing import NamedTuple

from django.conf import settings

from config.recent import RecentlyUsed
from config.statements import Arg, Statement
from gateways.egress import EgressPolicy, current_policy, parse_resolver
from gateways.json_texts import route_specs
from gateways.models import Backend, Certificate, Credential, Gateway, Policy, Route
from provisioning import oidc_discovery, pinned_dns
from provisioning.ir.build import DesiredState
from provisioning.ir.ext_auth import named_backends
from provisioning.ir.oidc import needs_discovery
from provisioning.ir.policies import named_consumers

ROW = ("pk", "name", "kind", "spec_digest", "ref_not_permitted")  # what the load reads of a route
# The load's queries, compiled once per process (config/statements.py): a reconcile runs them
# on every change.
_ROUTE_ROWS = Statement(  # from the index ``route_load`` alone
    lambda: (
        Route.objects.filter(gateway_id=Arg("gateway"))
        .order_by("created_at", "name")
        .values_list(*ROW)
    )
)
_POLICIES = Statement(
    lambda: Policy.objects.filter(gateway_id=Arg("gateway")).order_by("created_at", "name")
)
_BACKENDS = Statement(  # (name, spec): nothing else of a backend is compiled
    lambda names: Backend.objects.filter(tenant_id=Arg("tenant"), name__in=names).values_list(
        "name", "spec"
    )
)
_CERTIFICATES = Statement(
    lambda names: Certificate.objects.filter(tenant_id=Arg("tenant"), name__in=names)
)


def _backend_names(routes: list[dict]) -> set[str]:
    names = set()
    for route in routes:
        for rule in route["spec"].get("rules", []):
            names.update(ref["name"] for ref in rule.get("backendRefs", []))
            for flt in rule.get("filters", []):
                if flt.get("type") == "RequestMirror":
                    names.add(flt["requestMirror"]["backendRef"]["name"])
    return names


def gateways_using(tenant_id: int, backend: str) -> list[int]:
    """Ids of the tenant's gateways whose desired state loads ``backend`` (by the very
    functions ``load_desired_state`` uses): a route of theirs sends or mirrors to it, or a
    policy's extAuth names it. No other gateway's compiled config can depend on it."""
    from gateways.json_texts import mentioning

    found: set[int] = set()
    # Only specs that mention the name are read and decoded, then checked as the loader reads.
    routes = mentioning(Route.objects.filter(gateway__tenant_id=tenant_id), "spec", backend)
    for gateway_id, spec in routes.values_list("gateway_id", "spec"):
        if gateway_id not in found and backend in _backend_names([{"spec": spec}]):
            found.add(gateway_id)
    policies = Policy.objects.filter(gateway__tenant_id=tenant_id).values_list("gateway_id", "spec")
    for gateway_id, spec in policies:
        if any(name == backend for _, name in named_backends(spec)):
            found.add(gateway_id)
    return sorted(found)


def _certificate_names(gateway_spec: dict, backends: dict[str, dict]) -> set[str]:
    names = set()
    for listener in gateway_spec.get("listeners", []):
        names.update(ref["name"] for ref in (listener.get("tls") or {}).get("certificateRefs", []))
    for spec in backends.values():
        names.update(ref["name"] for ref in (spec.get("tls") or {}).get("caCertificateRefs", []))
    return names


def consumers_for(tenant, policies: list[dict]) -> dict[str, dict]:
    """The consumers the policies name, with their secrets (kept out of every log and print:
    DesiredState does not show them in its repr, revisions store only fingerprints)."""
    names = {name for policy in policies for _, name in named_consumers(policy["spec"])}
    consumers: dict[str, dict] = {}
    if not names:  # most gateways: not even a query to build (about half a millisecond each)
        return consumers
    credentials = Credential.objects.filter(consumer__tenant=tenant, consumer__name__in=names)
    for name in tenant.consumers.filter(name__in=names).values_list("name", flat=True):
        consumers[name] = {"apiKeys": [], "basicAuth": []}
    for credential in credentials.select_related("consumer").order_by("created_at", "key_id"):
        entry = consumers[credential.consumer.name]
        if credential.type == Credential.Type.API_KEY:
            entry["apiKeys"].append(credential.secret)
        else:
            entry["basicAuth"].append({"hash": credential.secret})
    return consumers


def certificates_named(tenant, names) -> dict[str, dict]:
    """The tenant's certificates of those names that exist, with their private keys."""
    return {
        cert.name: {
            "certificatePem": cert.spec["certificatePem"],
            "privateKeyPem": cert.private_key or "",
            "dnsNames": cert.status.get("dnsNames", []),
        }
        for cert in _CERTIFICATES.objects(tenant=tenant.pk, names=list(names))
    }


def egress_for(gateway: Gateway, backends: dict[str, dict]) -> dict:
    """The egress fields of a gateway's desired state: today's policy, and on the local
    runtime its backends' host names resolved by the platform (``provisioning.pinned_dns``).
    On Kubernetes a pod's loopback is its own Envoy (its admin among it): always refused."""
    runtime = gateway.spec.get("runtime", "local")
    policy: EgressPolicy = current_policy()
    if runtime == "kubernetes" and policy.allow_loopback:
        policy = replace(policy, allow_loopback=False)
    resolvers = tuple(parse_resolver(value) for value in settings.GANTRY_GATEWAY_DNS_RESOLVERS)
    return {
        "egress": policy,
        "resolved": pinned_dns.pinned_for(runtime, backends),
        "dns_resolvers": resolvers,
    }


def policy_secrets_for(gateway: Gateway, policies: list[dict]) -> dict[str, dict]:
    """Today's secrets of the gateway's policies of those names (a rollback's)."""
    names = [policy["name"] for policy in policies if policy["spec"].get("oidc")]
    rows = gateway.policies.filter(name__in=names).exclude(secrets=None)
    return {name: json.loads(secrets) for name, secrets in rows.values_list("name", "secrets")}


def oidc_providers(policies: list[dict], egress: EgressPolicy | None) -> dict[str, dict]:
    """The discovered endpoints of every OpenID provider the policies need them of (read from
    the provider, or the cache: ``provisioning.oidc_discovery``)."""
    issuers = {needs_discovery(policy["spec"]) for policy in policies} - {None}
    return {issuer: oidc_discovery.discover(issuer, egress) for issuer in sorted(issuers)}


class StoredRoute(NamedTuple):
    """A route row as the compiler reads it: of its status, only whether it says a reference
    is not permitted (the rare reader that rewrites it reads the row again)."""

    pk: int
    name: str
    kind: str
    spec: dict
    ref_not_permitted: bool  # a RefNotPermitted condition in its status
    backends: frozenset[str] = frozenset()  # the backends it sends or mirrors to


def _decode(text: str) -> tuple[dict, frozenset[str]]:
    """A spec, and the backends it sends or mirrors to."""
    spec = json.loads(text)
    return spec, frozenset(_backend_names([{"spec": spec}]))


class _Loaded(NamedTuple):
    stored: StoredRoute
    entry: dict  # the route as the compiler takes it (name, spec, kind)


class _Routes(NamedTuple):
    """One gateway's routes as last loaded: shared between loads, never changed in place."""

    rows: list  # as read (``ROW``)
    loads: list[_Loaded]  # what was made of each
    backends: Counter  # backend name → how many of the routes send or mirror to it


# Per process, for the GANTRY_INCREMENTAL_GATEWAYS gateways loaded most recently.
_loaded = RecentlyUsed(lambda: settings.GANTRY_INCREMENTAL_GATEWAYS)


def _backend_counts(loads: list[_Loaded], last: _Routes | None, changed) -> Counter:
    """How many of ``loads`` use each backend: the last load's counts with the ``changed``
    positions' routes swapped (same length), or counted anew (``changed`` None)."""
    if last is None or changed is None:
        return Counter(chain.from_iterable(load.stored.backends for load in loads))
    counts = last.backends.copy()
    for index in changed:
        counts.subtract(last.loads[index].stored.backends)
        counts.update(loads[index].stored.backends)
    return +counts  # without the backends no route uses any more


def _route_loads(gateway: Gateway) -> _Routes:
    """The gateway's routes, oldest first. Only rows this process has not loaded as they are
    now are made again, and only their specs are read and decoded (``Route.spec_digest``,
    computed by the database on every write; ``gateways.json_texts.route_specs``). A reconcile
    after a one-route change on a gateway of 10,000 routes makes one route, not 10,000; with
    as many rows as last time, the rows are compared in one pass in C, and the backends the
    routes use are counted for the changed ones only."""
    rows = _ROUTE_ROWS.rows(gateway=gateway.pk)  # plain tuples: a tenth of the ORM's cost per row
    last = _loaded.get(gateway.pk)
    last_rows, last_loads = (last.rows, last.loads) if last is not None else ((), ())
    same_length = len(rows) == len(last_rows)
    if same_length:
        loads = list(last_loads)
        differ = list(compress(count(), map(ne, rows, last_rows)))
    else:
        loads, differ = [None] * len(rows), range(len(rows))
    known = None  # pk → (row, load), made only when rows moved
    missing = []
    for index in differ:
        row = rows[index]
        if index < len(last_rows) and last_rows[index][0] == row[0]:
            hit = (last_rows[index], last_loads[index])
        else:
            if known is None:
                pairs = zip(last_rows, last_loads, strict=True)
                known = {old[0]: (old, load) for old, load in pairs}
            hit = known.get(row[0])
        if hit is not None and hit[0] == row:
            loads[index] = hit[1]
        else:
            missing.append(index)
    wanted = [(rows[index][0], rows[index][3]) for index in missing]
    specs = route_specs("spec", gateway.pk, wanted, _decode) if wanted else {}
    for index in missing:
        pk, name, kind, _, flagged = rows[index]
        spec, backends = specs[pk]
        stored = StoredRoute(pk, name, kind, spec, bool(flagged), backends)
        loads[index] = _Loaded(stored, {"name": name, "spec": spec, "kind": kind})
    changed = [i for i in differ if loads[i] is not last_loads[i]] if same_length else None
    routes = _Routes(rows, loads, _backend_counts(loads, last, changed))
    _loaded.put(gateway.pk, routes)
    return routes


def route_rows(gateway: Gateway) -> list[StoredRoute]:
    """The gateway's routes, oldest first (``_route_loads``)."""
    return [loaded.stored for loaded in _route_loads(gateway).loads]


def forget() -> None:
    """Drops what this process loaded (tests that compare with a fresh process)."""
    _loaded.clear()


def load_desired_state(
    gateway_id: int, gateway: Gateway | None = None, rows: dict | None = None
) -> DesiredState:
    """``gateway``: the row (with its tenant) when the caller holds it already; ``rows``: a
    dict to receive the gateway's routes (``StoredRoute``) and Policy rows as loaded
    (``routes``, ``policies``), for a caller that also writes their statuses."""
    if gateway is None:
        gateway = Gateway.objects.select_related("tenant").get(pk=gateway_id)
    loaded = _route_loads(gateway)
    loads = loaded.loads
    stored = list(map(itemgetter(0), loads))  # each load's ``stored``, in one pass in C
    policy_rows = _POLICIES.objects(gateway=gateway.pk)
    if rows is not None:
        rows.update(routes=stored, policies=policy_rows)
    routes = list(map(itemgetter(1), loads))  # each load's ``entry``
    policies = [
        {"name": policy.name, "kind": policy.kind, "spec": policy.spec} for policy in policy_rows
    ]
    # The backends its routes use, and the authorization services its policies name.
    wanted = loaded.backends.keys() | {
        name for policy in policies for _, name in named_backends(policy["spec"])
    }
    backends = dict(_BACKENDS.rows(tenant=gateway.tenant_id, names=sorted(wanted)))
    certificates = certificates_named(gateway.tenant, _certificate_names(gateway.spec, backends))
    egress = egress_for(gateway, backends)
    return DesiredState(
        tenant=gateway.tenant.slug,
        gateway=gateway.name,
        spec=gateway.spec,
        routes=routes,
        backends=backends,
        certificates=certificates,
        policies=policies,
        consumers=consumers_for(gateway.tenant, policies),
        policy_secrets={row.name: json.loads(row.secrets) for row in policy_rows if row.secrets},
        oidc_providers=oidc_providers(policies, egress["egress"]),
        **egress,
    )
