"""Make a cluster hold what was rendered: observe by label, apply what differs (server-side
apply, field manager ``gantry``), prune what Gantry owns but no longer wants, delete a gateway
and, with its last gateway, the tenant's namespace.

A change is detected by the ``gantry.io/applied-hash`` annotation each rendered object carries:
an object whose hash matches is not sent again, so a reconcile with nothing to change only
reads (one list per kind). ``force=True`` applies everything anyway (to heal hand edits).
"""

import logging
from dataclasses import dataclass, field

from provisioning.runtimes.kubernetes import names
from provisioning.runtimes.kubernetes.client import FIELD_MANAGER, KubeApi, describe
from provisioning.runtimes.kubernetes.inputs import ClusterSettings, GatewayInput, TenantInput
from provisioning.runtimes.kubernetes.render import render_gateway, render_tenant

log = logging.getLogger(__name__)
HANDOVER_MANAGER = "gantry-handover"
TENANT_KINDS = ("ResourceQuota", "LimitRange", "NetworkPolicy")
GATEWAY_KINDS = (
    "ServiceAccount",
    "Secret",
    "Deployment",
    "Service",
    "NetworkPolicy",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
)


@dataclass
class Observed:
    """What the cluster holds of one tenant and one gateway, by (kind, namespace, name)."""

    objects: dict = field(default_factory=dict)

    def find(self, kind: str, name: str) -> dict | None:
        return next(
            (o for (k, _, n), o in self.objects.items() if k == kind and n == name),
            None,
        )


@dataclass
class SyncResult:
    applied: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    unchanged: int = 0


def _key(obj: dict) -> tuple:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace"), meta["name"]


def _hash(obj: dict) -> str | None:
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(names.HASH_ANNOTATION)


def observe(api: KubeApi, tenant: str, gateway: str | None) -> Observed:
    """Gantry's objects of the tenant (and of one gateway), by label: a list per kind."""
    ns = names.namespace(tenant)
    scopes = [("Namespace", None, names.tenant_selector(tenant))]
    scopes += [(kind, ns, names.tenant_selector(tenant)) for kind in TENANT_KINDS]
    if gateway:
        selector = names.gateway_selector(tenant, gateway)
        scopes += [(kind, ns, selector) for kind in GATEWAY_KINDS]
    observed = Observed()
    for kind, namespace, selector in scopes:
        for item in api.list(kind, namespace, selector):
            observed.objects[_key(item)] = item
    return observed


def _owns_replicas(current: dict) -> bool:
    return any(
        entry.get("manager") == FIELD_MANAGER
        and entry.get("operation") == "Apply"
        and "f:replicas" in (entry.get("fieldsV1") or {}).get("f:spec", {})
        for entry in current["metadata"].get("managedFields") or []
    )


def _hand_over_replicas(api: KubeApi, desired: dict, current: dict | None) -> None:
    """Before Gantry stops applying a Deployment's ``replicas`` (an HPA takes over), another
    manager takes the field at its current value; otherwise dropping it would reset the
    Deployment to one replica until the HPA acts (the recipe of the server-side apply docs)."""
    if desired["kind"] != "Deployment" or current is None or "replicas" in desired["spec"]:
        return
    if not _owns_replicas(current):
        return
    meta = desired["metadata"]
    api.apply(
        {
            "apiVersion": desired["apiVersion"],
            "kind": "Deployment",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            "spec": {"replicas": current["spec"]["replicas"]},
        },
        field_manager=HANDOVER_MANAGER,
    )


def sync(api: KubeApi, desired: list[dict], observed: Observed, force: bool = False) -> SyncResult:
    """Applies the desired objects that differ (in order), then prunes what ``observed`` holds
    beyond them. ``desired`` must cover every scope ``observed`` was read from."""
    result = SyncResult()
    wanted = set()
    for obj in desired:
        wanted.add(_key(obj))
        current = observed.objects.get(_key(obj))
        if not force and current is not None and _hash(current) == _hash(obj):
            result.unchanged += 1
            continue
        _hand_over_replicas(api, obj, current)
        api.apply(obj)
        result.applied.append(describe(obj))
        log.info("kubernetes: applied %s", describe(obj))
    for key, obj in reversed(list(observed.objects.items())):
        if key not in wanted:
            kind, namespace, name = key
            api.delete(kind, namespace, name)
            result.pruned.append(describe({"kind": kind, "metadata": obj["metadata"]}))
            log.info("kubernetes: pruned %s", result.pruned[-1])
    return result


def delete_gateway(api: KubeApi, tenant: str, gateway: str) -> list[str]:
    """Deletes the gateway's objects; when no other gateway of the tenant is left on the
    cluster, the tenant's namespace too (which takes whatever remains in it)."""
    ns = names.namespace(tenant)
    deleted = []
    selector = names.gateway_selector(tenant, gateway)
    for kind in reversed(GATEWAY_KINDS):
        for item in api.list(kind, ns, selector):
            if api.delete(kind, ns, item["metadata"]["name"]):
                deleted.append(f"{kind} {ns}/{item['metadata']['name']}")
    others = api.list("Deployment", ns, f"{names.MANAGED_BY}={names.MANAGER},{names.GATEWAY_LABEL}")
    if not others and api.delete("Namespace", None, ns):
        deleted.append(f"Namespace {ns}")
    return deleted


def reconcile(
    api: KubeApi,
    tenant: TenantInput,
    gateway: GatewayInput,
    cluster: ClusterSettings,
    *,
    observed: Observed | None = None,
    force: bool = False,
) -> SyncResult:
    """Renders the tenant's and the gateway's objects and syncs them (``observed``: what
    ``observe`` returned, when the caller already read it)."""
    if observed is None:
        observed = observe(api, tenant.slug, gateway.name)
    desired = render_tenant(tenant) + render_gateway(gateway, cluster)
    return sync(api, desired, observed, force=force)
