"""Discovered endpoints → Envoy ClusterLoadAssignments. Pure: the rows, the grants and the
egress policy come in as values.

- Only an endpoint that is **ready** gets new requests (``HEALTHY``). One that is terminating
  but still serving is sent as ``DRAINING``: Envoy sends it no new requests while the requests
  and connections it has finish (its connection pools drain), rather than cutting them. Others
  (not ready, or terminating and no longer serving) are left out.
- Every address is checked against the egress policy, as a backend's would be: what the policy
  refuses (the platform's addresses and ports, metadata addresses, loopback where it is not
  allowed) is dropped, even from a granted namespace, so a forged EndpointSlice can only send
  its own tenant's traffic somewhere the tenant could have named itself.
- A Service whose namespace is not (or no longer) granted to the gateway's tenant, in a cluster
  its plan may use, gets an assignment without endpoints (503 ``no healthy upstream``).
"""

import ipaddress

from gateways.egress import EgressPolicy
from provisioning.translate.clusters import DISCOVERY_METADATA
from provisioning.translate.types import CLUSTER_LOAD_ASSIGNMENT
from provisioning.xds.resources import content_hash


def discovery_refs(clusters) -> dict[str, tuple[str, str, str, int]]:
    """Assignment name → (cluster, namespace, service, port) of the compiled EDS clusters."""
    found = {}
    for cluster in clusters:
        if cluster.get("type") != "EDS":
            continue
        meta = (cluster.get("metadata") or {}).get("filter_metadata", {}).get(DISCOVERY_METADATA)
        if not meta:
            continue
        name = cluster["eds_cluster_config"].get("service_name") or cluster["name"]
        found[name] = (meta["cluster"], meta["namespace"], meta["service"], int(meta["port"]))
    return found


def lb_endpoint(endpoint: dict, policy: EgressPolicy | None) -> dict | None:
    """One discovered endpoint as Envoy's LbEndpoint, or None when it gets no traffic."""
    if endpoint.get("ready"):
        status = "HEALTHY"
    elif endpoint.get("terminating") and endpoint.get("serving"):
        status = "DRAINING"
    else:
        return None
    try:
        address = ipaddress.ip_address(endpoint["address"])
    except ValueError:
        return None  # EndpointSlices of type FQDN are not followed
    if policy is not None and policy.check_ip(address, endpoint["port"]):
        return None
    return {
        "endpoint": {"address": {"socket_address": {
            "address": str(address), "port_value": endpoint["port"]}}},
        "health_status": status,
    }  # fmt: skip


def assignment(name: str, endpoints: list[dict], policy: EgressPolicy | None) -> dict:
    chosen = [lb for lb in (lb_endpoint(e, policy) for e in endpoints) if lb is not None]
    return {
        "@type": CLUSTER_LOAD_ASSIGNMENT,
        "cluster_name": name,
        "endpoints": [{"lb_endpoints": chosen}] if chosen else [],
    }


def assignments(
    refs: dict[str, tuple[str, str, str, int]],
    rows: dict[tuple[str, str, str, int], list[dict]],
    granted: set[tuple[str, str]],
    policy: EgressPolicy | None,
) -> tuple[tuple[dict, ...], str]:
    """The assignments of every EDS cluster (empty ones included: Envoy waits for an
    assignment of each before the cluster is used) and their content version.
    ``rows``: (cluster, namespace, service, port) → endpoints; ``granted``: (cluster,
    namespace) the tenant may discover now."""
    made = []
    for name in sorted(refs):
        ref = refs[name]
        endpoints = rows.get(ref, []) if ref[:2] in granted else []
        made.append(assignment(name, endpoints, policy))
    return tuple(made), content_hash(made)
