"""Desired state → Kubernetes objects (plain dicts). Pure: no Django, no I/O, deterministic.

Every object carries the labels that mark Gantry's objects (for pruning) and an annotation
with the hash of its own rendered content, so the applier can tell a no-op from a change
without a write.
"""

import hashlib
import json

import yaml

from provisioning.runtimes.kubernetes import gateway as gateway_objects
from provisioning.runtimes.kubernetes import names
from provisioning.runtimes.kubernetes.inputs import ClusterSettings, GatewayInput, TenantInput
from provisioning.runtimes.kubernetes.tenant import render_tenant as tenant_objects
from provisioning.runtimes.kubernetes.workload import deployment


def content_hash(obj: dict) -> str:
    """sha256 of the canonical JSON of an object, without the hash annotation itself."""
    annotations = dict(obj["metadata"].get("annotations", {}))
    annotations.pop(names.HASH_ANNOTATION, None)
    stripped = {**obj, "metadata": {**obj["metadata"], "annotations": annotations}}
    return hashlib.sha256(json.dumps(stripped, sort_keys=True).encode()).hexdigest()


def _stamped(objects: list[dict]) -> list[dict]:
    for obj in objects:
        obj["metadata"].setdefault("annotations", {})[names.HASH_ANNOTATION] = content_hash(obj)
    return objects


def render_tenant(tenant: TenantInput) -> list[dict]:
    """Namespace (restricted pod security), ResourceQuota, LimitRange, default-deny policy."""
    return _stamped(tenant_objects(tenant))


def render_gateway(gateway: GatewayInput, cluster: ClusterSettings) -> list[dict]:
    """ServiceAccount, Deployment, Service, NetworkPolicy, and an HPA when
    autoscaling is set, a PodDisruptionBudget when it may run two replicas or more."""
    objects = [
        gateway_objects.service_account(gateway),
        deployment(gateway, cluster),
        gateway_objects.service(gateway, cluster),
        gateway_objects.network_policy(gateway, cluster),
    ]
    if gateway.autoscaling is not None:
        objects.append(gateway_objects.autoscaler(gateway))
    least = gateway.autoscaling.min_replicas if gateway.autoscaling else gateway.replicas
    if least >= 2:
        objects.append(gateway_objects.disruption_budget(gateway))
    return _stamped(objects)


class _NoAliases(yaml.SafeDumper):
    """Plain YAML for people: no anchors, multi-line strings as literal blocks."""

    def ignore_aliases(self, data):
        return True


def _string(dumper, value):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_NoAliases.add_representer(str, _string)


def to_yaml(objects: list[dict]) -> str:
    return yaml.dump_all(objects, Dumper=_NoAliases, sort_keys=False, default_flow_style=False)
