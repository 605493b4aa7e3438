"""EndpointSlices → endpoint rows (``DiscoveredEndpoints``), and which Services are wanted.

``endpoints_of`` is pure: a Service port (the number a backend names, as in a Gateway API
backendRef) is found by number in the Service, and its name picks the port of each
EndpointSlice (the EndpointSlice controller names slice ports after the Service's ports; an
unnamed single port is ``""``); the slice port's number is the pods' target port. Endpoint
conditions follow the EndpointSlice API: ``ready`` unset means ready, ``serving`` unset means
the same as ``ready``, ``terminating`` unset means not terminating.

``store`` writes a row only when the endpoints (their content hash) changed, and tells the xDS
servers of the gateways that may use them (every gateway of each tenant with a backend naming
that Service) through the usual change notification.
"""

import logging

from django.db import transaction
from django.db.models import F

from gateways.models import Backend, Gateway
from provisioning.models import DiscoveredEndpoints, DiscoveryGrant, KubernetesCluster
from provisioning.xds.notify import notify_changed
from provisioning.xds.resources import content_hash

log = logging.getLogger(__name__)

SERVICE_LABEL = "kubernetes.io/service-name"
MAX_ENDPOINTS = 1000  # per Service port: a slice flood cannot grow a gateway's config unbounded


def _condition(conditions: dict, name: str, default: bool) -> bool:
    value = conditions.get(name)
    return default if value is None else bool(value)


def endpoints_of(slices: list[dict], service: dict | None, port: int) -> tuple[list[dict], str]:
    """(endpoints of the Service's ``port``, sorted; why there are none when it says)."""
    if service is None:
        return [], "the Service does not exist"
    ports = (service.get("spec") or {}).get("ports") or []
    named = next((p for p in ports if p.get("port") == port), None)
    if named is None:
        return [], f"the Service has no port {port}"
    if (named.get("protocol") or "TCP") != "TCP":
        return [], f"port {port} of the Service is not TCP"
    name = named.get("name") or ""
    found: dict[tuple[str, int], dict] = {}
    for item in slices:
        if item.get("addressType") not in ("IPv4", "IPv6"):
            continue  # FQDN slices: not followed
        target = next(
            (p.get("port") for p in item.get("ports") or []
             if (p.get("name") or "") == name and (p.get("protocol") or "TCP") == "TCP"),
            None,
        )  # fmt: skip
        if not target:
            continue
        for endpoint in item.get("endpoints") or []:
            conditions = endpoint.get("conditions") or {}
            ready = _condition(conditions, "ready", True)
            entry = {
                "ready": ready,
                "serving": _condition(conditions, "serving", ready),
                "terminating": _condition(conditions, "terminating", False),
            }
            for address in (endpoint.get("addresses") or [])[:1]:  # one address per endpoint
                key = (address, int(target))
                # The same address in two slices (a move between them): the readier one wins.
                if key not in found or (entry["ready"] and not found[key]["ready"]):
                    found[key] = {"address": address, "port": int(target), **entry}
    endpoints = [found[key] for key in sorted(found)][:MAX_ENDPOINTS]
    return endpoints, "" if endpoints else "no endpoints"


@transaction.atomic
def store(
    cluster: KubernetesCluster,
    namespace: str,
    service: str,
    port: int,
    endpoints: list[dict],
    message: str = "",
) -> bool:
    """Writes the endpoints of one Service port if they changed; True if they did."""
    version = content_hash(endpoints)
    row = (
        DiscoveredEndpoints.objects.select_for_update()
        .filter(cluster=cluster, namespace=namespace, service=service, port=port)
        .first()
    )
    if row is not None and row.version == version and row.message == message[:255]:
        return False
    if row is None:
        DiscoveredEndpoints.objects.create(
            cluster=cluster, namespace=namespace, service=service, port=port,
            endpoints=endpoints, version=version, message=message[:255],
        )  # fmt: skip
    else:
        row.endpoints, row.version, row.message = endpoints, version, message[:255]
        row.save(update_fields=["endpoints", "version", "message", "updated_at"])
    for key in gateways_naming(cluster.name, namespace, service):
        notify_changed(key)
    return True


def _naming(cluster: str, namespace: str, service: str | None = None):
    for backend in Backend.objects.filter(spec__has_key="kubernetesService").select_related(
        "tenant"
    ):
        ref = backend.spec["kubernetesService"]
        same_namespace = ref.get("cluster") == cluster and ref.get("namespace") == namespace
        if same_namespace and (service is None or ref.get("name") == service):
            yield backend


def gateways_naming(cluster: str, namespace: str, service: str) -> list[str]:
    """Keys of the gateways whose tenants have a backend naming the Service."""
    tenants = {backend.tenant_id for backend in _naming(cluster, namespace, service)}
    return [
        f"{slug}/{name}"
        for slug, name in Gateway.objects.filter(tenant_id__in=tenants).values_list(
            "tenant__slug", "name"
        )
    ]


def wanted() -> dict[tuple[int, str, str], set[int]]:
    """(cluster id, namespace, Service) → the ports backends name, for the Services some
    tenant's backend names in a namespace granted to that tenant (in a cluster its plan may
    use): nothing else is ever watched."""
    grants = set(
        DiscoveryGrant.objects.filter(cluster__plans__tenants=F("tenant_id")).values_list(
            "tenant_id", "cluster__name", "cluster_id", "namespace"
        )
    )
    by_grant = {(tenant, cluster, namespace): cluster_id
                for tenant, cluster, cluster_id, namespace in grants}  # fmt: skip
    found: dict[tuple[int, str, str], set[int]] = {}
    for backend in Backend.objects.filter(spec__has_key="kubernetesService"):
        ref = backend.spec["kubernetesService"]
        cluster_id = by_grant.get((backend.tenant_id, ref.get("cluster"), ref.get("namespace")))
        if cluster_id is not None:
            found.setdefault((cluster_id, ref["namespace"], ref["name"]), set()).add(ref["port"])
    return found
