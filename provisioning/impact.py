"""What a change would do to the Envoys serving a gateway, before it is made (a dry run).

``compare`` (pure) sets a candidate compile beside the current revision: a change that only
adds, changes or removes route configurations, clusters or endpoints is **hot** (Envoy swaps
them under live connections); one that changes or removes a listener makes Envoy **drain** it:
its open connections are closed once they finish their current requests (within the drain
time), new ones go to the new listener. ``open_connections`` counts, on the local runtime,
the connections each such listener holds now on every replica (its Envoy admin socket); on
Kubernetes the platform does not read pods' admin interfaces, so the count is unknown.
"""

import json
import re

from provisioning.models import LocalReplica
from provisioning.runtimes.local.admin import admin_request

# Secrets (oidc's) by name only: their values never leave the revision's resources.
TYPES = {"listeners": "listeners", "routes": "routeConfigurations", "clusters": "clusters",
         "secrets": "secrets"}  # fmt: skip


def _by_name(resources: dict, kind: str) -> dict[str, str]:
    return {
        item.get("name", ""): json.dumps(item, sort_keys=True) for item in resources.get(kind, [])
    }


def compare(current: dict | None, candidate: dict) -> dict:
    """``current``/``candidate``: compiled resources (``{"listeners": [...], ...}``); the
    current one None when the gateway has no revision yet."""
    changes: dict[str, dict[str, list[str]]] = {}
    for kind, label in TYPES.items():
        old, new = _by_name(current or {}, kind), _by_name(candidate, kind)
        changes[label] = {
            "added": sorted(new.keys() - old.keys()),
            "changed": sorted(name for name in new.keys() & old.keys() if new[name] != old[name]),
            "removed": sorted(old.keys() - new.keys()),
        }
    listeners = changes["listeners"]
    drains = [{"listener": name, "reason": "changed"} for name in listeners["changed"]]
    drains += [{"listener": name, "reason": "removed"} for name in listeners["removed"]]
    return {
        "hot": not drains,
        "unchanged": all(not any(lists.values()) for lists in changes.values()),
        "drains": drains,
        "changes": changes,
    }


def _stat_names(resources: dict, names: set[str]) -> dict[str, str]:
    """Listener name → the prefix of its stats (``listener.<address>_<port>``)."""
    prefixes = {}
    for listener in resources.get("listeners", []):
        if listener.get("name") not in names:
            continue
        address = listener.get("address", {}).get("socket_address", {})
        if address:
            prefixes[listener["name"]] = (
                f"listener.{address.get('address')}_{address.get('port_value')}"
            )
    return prefixes


def open_connections(gateway, current: dict | None, drains: list[dict]) -> tuple[int | None, str]:
    """Open downstream connections of the listeners ``drains`` names, summed over the gateway's
    replicas, and how it was counted (or why it could not be)."""
    if not drains:
        return 0, "no listener drains"
    if gateway.spec.get("runtime", "local") != "local":
        return None, "unknown: the platform does not read a Kubernetes pod's admin interface"
    prefixes = _stat_names(current or {}, {d["listener"] for d in drains})
    replicas = LocalReplica.objects.filter(gateway=gateway).exclude(admin_socket="")
    total, read = 0, 0
    for replica in replicas:
        try:
            status, body = admin_request(
                replica.admin_socket, "GET", "/stats?filter=downstream_cx_active", timeout=1.0
            )
        except OSError:
            continue
        if status != 200:
            continue
        read += 1
        for prefix in prefixes.values():
            match = re.search(rf"^{re.escape(prefix)}\.downstream_cx_active: (\d+)$", body, re.M)
            total += int(match.group(1)) if match else 0
    if not read:
        return None, "unknown: no replica's admin interface answered"
    return total, f"read from {read} replica(s) just now"


MAX_GATEWAYS = 20  # a dry run previews at most this many of the tenant's gateways


def preview(gateway) -> dict:
    """The impact of the gateway's desired state as it stands (inside a dry run's transaction,
    which is rolled back: compiling may claim a host port or refresh a status). Not validated
    by Envoy: the write itself is."""
    from provisioning import revisions
    from provisioning.desired import load_desired_state
    from provisioning.reconcile import compile_for
    from provisioning.runtimes.local.ports import NoFreePort

    try:
        candidate = compile_for(gateway, load_desired_state(gateway.pk, gateway)).as_dict()
    except (NoFreePort, ValueError) as error:
        return {"error": str(error)}
    revision = revisions.current_revision(gateway)
    current = revisions.resources_of(revision) if revision is not None else None
    result = compare(current, candidate)
    count, how = open_connections(gateway, current, result["drains"])
    result["openConnections"] = count
    result["openConnectionsNote"] = how
    return result


def preview_tenant(tenant) -> dict[str, dict]:
    """Gateway name → its impact, for the gateways whose compiled config would change."""
    from gateways.models import Gateway

    impacts = {}
    rows = Gateway.objects.filter(tenant=tenant).select_related("tenant").order_by("name")
    for gateway in rows[:MAX_GATEWAYS]:
        impact = preview(gateway)
        if not impact.get("unchanged"):
            impacts[gateway.name] = impact
    return impacts
