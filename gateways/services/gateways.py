"""Every write to gateways: create, replace or patch the spec, delete. Quotas checked here.

Deleting a gateway deletes its routes with it."""

from django.db import IntegrityError, transaction

from config.api.versioning import check_version, merge_patch
from config.errors import Conflict
from gateways.conditions import set_condition
from gateways.listener_status import refresh_listener_status
from gateways.models import Gateway
from gateways.services.dependents import refresh_routes_of
from gateways.services.policies import refresh_policies
from gateways.services.routes import refresh_conflicts
from gateways.validation import validate_gateway_spec
from provisioning.models import KubernetesPlacement
from provisioning.tasks import enqueue_reconcile, enqueue_removal
from tenants import audit, quotas
from tenants.audit import Actor
from tenants.models import Tenant


def snapshot(gateway: Gateway) -> dict:
    return {"name": gateway.name, "spec": gateway.spec, "generation": gateway.generation}


def accepted_status(status: dict, generation: int) -> dict:
    """Status after a valid spec is stored: Accepted now, Programmed once Envoy has it."""
    conditions = set_condition(
        status.get("conditions", []), "Accepted", "True", "Accepted", "spec is valid", generation
    )
    conditions = set_condition(
        conditions,
        "Programmed",
        "False",
        "Pending",
        "waiting for Envoy replicas to be programmed",
        generation,
    )
    return {
        "phase": status.get("phase", "Pending"),
        "observedGeneration": status.get("observedGeneration", 0),
        "conditions": conditions,
        "listeners": status.get("listeners", []),
    }


def _check_plan(tenant: Tenant, spec: dict) -> None:
    quotas.check_size(tenant, spec["size"])
    quotas.check_replicas(tenant, spec["replicas"])
    if "autoscaling" in spec:
        quotas.check_replicas(tenant, spec["autoscaling"]["maxReplicas"])


@transaction.atomic
def create_gateway(actor: Actor, tenant: Tenant, name: str, raw_spec) -> Gateway:
    spec = validate_gateway_spec(raw_spec)
    tenant = Tenant.objects.select_for_update(of=("self",)).select_related("plan").get(pk=tenant.pk)
    if Gateway.objects.filter(tenant=tenant, name=name).exists():
        raise Conflict(f"a gateway named {name!r} already exists in {tenant.slug!r}")
    quotas.check_gateway_count(tenant, Gateway.objects.filter(tenant=tenant).count())
    _check_plan(tenant, spec)
    try:
        with transaction.atomic():
            gateway = Gateway.objects.create(
                tenant=tenant, name=name, spec=spec, status=accepted_status({}, 1)
            )
    except IntegrityError:
        raise Conflict(f"a gateway named {name!r} already exists in {tenant.slug!r}") from None
    audit.record(actor, "create", "gateway", name, tenant=tenant, after=snapshot(gateway))
    refresh_listener_status(gateway)
    enqueue_reconcile(gateway.pk)
    return gateway


def _write_spec(actor: Actor, gateway: Gateway, spec: dict, expected: int | None) -> Gateway:
    locked = (
        Gateway.objects.select_for_update(of=("self",))
        .select_related("tenant__plan")
        .get(pk=gateway.pk)
    )
    check_version(locked.resource_version, expected, f"gateway {locked.name}")
    if spec == locked.spec:
        return locked
    _check_plan(locked.tenant, spec)
    before = snapshot(locked)
    listeners_changed = spec.get("listeners") != locked.spec.get("listeners")
    locked.spec = spec
    locked.generation += 1
    locked.resource_version += 1
    locked.status = accepted_status(locked.status, locked.generation)
    locked.save()
    audit.record(
        actor,
        "update",
        "gateway",
        locked.name,
        tenant=locked.tenant,
        before=before,
        after=snapshot(locked),
    )
    if listeners_changed:
        refresh_routes_of(locked)  # which listeners a route attaches to may change
        refresh_conflicts(locked)  # and which TCP/TLS route holds a listener or SNI name
        refresh_policies(locked)  # and which listeners policies target exist
    refresh_listener_status(locked)
    enqueue_reconcile(locked.pk)
    return locked


@transaction.atomic
def replace_gateway_spec(actor: Actor, gateway: Gateway, raw_spec, expected: int | None = None):
    """PUT: the new spec replaces the old one whole (omitted fields take their defaults)."""
    return _write_spec(actor, gateway, validate_gateway_spec(raw_spec), expected)


@transaction.atomic
def patch_gateway_spec(actor: Actor, gateway: Gateway, patch, expected: int | None = None):
    """PATCH: an RFC 7386 merge patch into the stored spec, validated whole afterwards."""
    current = Gateway.objects.select_for_update().get(pk=gateway.pk)
    check_version(current.resource_version, expected, f"gateway {current.name}")
    merged = merge_patch(current.spec, patch if patch is not None else {})
    return _write_spec(actor, current, validate_gateway_spec(merged), None)


@transaction.atomic
def delete_gateway(actor: Actor, gateway: Gateway, expected: int | None = None) -> None:
    locked = (
        Gateway.objects.select_for_update(of=("self",)).select_related("tenant").get(pk=gateway.pk)
    )
    check_version(locked.resource_version, expected, f"gateway {locked.name}")
    audit.record(
        actor, "delete", "gateway", locked.name, tenant=locked.tenant, before=snapshot(locked)
    )
    placed = (
        KubernetesPlacement.objects.filter(gateway=locked).values_list("cluster_id", flat=True)
    ).first()
    locked.delete()
    if placed is not None:  # its objects are on that cluster (whatever its runtime says now)
        enqueue_removal(locked.tenant.slug, locked.name, placed)
