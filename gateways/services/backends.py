"""Every write to backends: create, replace or patch the spec, delete."""

from django.db import transaction

from config.api.versioning import merge_patch
from gateways.conditions import set_condition
from gateways.models import Backend, Certificate
from gateways.services import common
from gateways.services.dependents import refresh_policies_naming_backend, refresh_routes_using
from gateways.validation import validate_backend_spec
from provisioning.tasks import enqueue_reconcile_using
from tenants import audit, quotas
from tenants.audit import Actor
from tenants.models import Tenant


def snapshot(backend: Backend) -> dict:
    return {"name": backend.name, "spec": backend.spec, "generation": backend.generation}


def certificate_names(tenant: Tenant) -> set[str]:
    return set(Certificate.objects.filter(tenant=tenant).values_list("name", flat=True))


def backend_status(
    spec: dict, certificates: set[str], generation: int, previous: dict, tenant_id=None
) -> dict:
    """Accepted (the spec is valid); ResolvedRefs: every CA certificate named exists, and a
    Kubernetes Service's namespace is (still) granted to the tenant."""
    conditions = set_condition(
        previous.get("conditions", []), "Accepted", "True", "Accepted", "spec is valid", generation
    )
    refs = (spec.get("tls") or {}).get("caCertificateRefs", [])
    missing = [
        f"spec.tls.caCertificateRefs[{index}]: certificate {ref['name']!r} does not exist"
        for index, ref in enumerate(refs)
        if ref["name"] not in certificates
    ]
    service = spec.get("kubernetesService")
    if service and tenant_id is not None:
        from provisioning.discovery.grants import is_granted

        if not is_granted(tenant_id, service["cluster"], service["namespace"]):
            missing.append(
                f"spec.kubernetesService.namespace: namespace {service['namespace']!r} of "
                f"cluster {service['cluster']!r} is no longer granted to the tenant"
            )
    if service and missing and not refs:
        resolved = (
            "False",
            "RefNotPermitted",
            "; ".join(missing) + ". The backend has no endpoints until it is granted again.",
        )
    elif missing:
        resolved = (
            "False",
            "InvalidCACertificateRef",
            "; ".join(missing) + ". Connections to the backend fail until it exists.",
        )
    else:
        resolved = ("True", "ResolvedRefs", "every referenced certificate exists")
    conditions = set_condition(conditions, "ResolvedRefs", *resolved, generation)
    return {"observedGeneration": generation, "conditions": conditions}


@transaction.atomic
def create_backend(actor: Actor, tenant: Tenant, name: str, raw_spec) -> Backend:
    spec = validate_backend_spec(raw_spec, tenant)
    tenant = quotas.lock_tenant(tenant)
    quotas.check_count(tenant, "maxBackends", Backend.objects.filter(tenant=tenant).count())
    backend = common.create_unique(
        Backend,
        f"a backend named {name!r} already exists in {tenant.slug!r}",
        tenant=tenant,
        name=name,
        spec=spec,
        status=backend_status(spec, certificate_names(tenant), 1, {}, tenant.pk),
    )
    audit.record(actor, "create", "backend", name, tenant=tenant, after=snapshot(backend))
    refresh_policies_naming_backend(tenant, name)  # gateways are locked before routes
    refresh_routes_using(tenant, name)
    enqueue_reconcile_using(tenant.pk, name)
    return backend


def _write(actor: Actor, locked: Backend, spec: dict) -> Backend:
    if spec == locked.spec:
        return locked
    before = snapshot(locked)
    names = certificate_names(locked.tenant)
    common.store_spec(
        locked,
        spec,
        backend_status(spec, names, locked.generation + 1, locked.status, locked.tenant_id),
    )
    audit.record(
        actor,
        "update",
        "backend",
        locked.name,
        tenant=locked.tenant,
        before=before,
        after=snapshot(locked),
    )
    enqueue_reconcile_using(locked.tenant_id, locked.name)
    return locked


@transaction.atomic
def replace_backend_spec(actor: Actor, backend, raw_spec, expected: int | None = None):
    """PUT: the new spec replaces the old one whole (omitted fields take their defaults)."""
    locked = common.lock_checked(Backend, backend.pk, expected, "backend", "tenant")
    return _write(actor, locked, validate_backend_spec(raw_spec, locked.tenant))


@transaction.atomic
def patch_backend_spec(actor: Actor, backend, patch, expected: int | None = None):
    """PATCH: an RFC 7386 merge patch into the stored spec, validated whole afterwards."""
    locked = common.lock_checked(Backend, backend.pk, expected, "backend", "tenant")
    merged = merge_patch(locked.spec, patch if patch is not None else {})
    return _write(actor, locked, validate_backend_spec(merged, locked.tenant))


def refresh_discovery_status(backend: Backend) -> None:
    """ResolvedRefs again, after an operator granted or revoked the namespace it names."""
    status = backend_status(backend.spec, certificate_names(backend.tenant), backend.generation,
                            backend.status, backend.tenant_id)  # fmt: skip
    common.store_status(backend, status)


@transaction.atomic
def delete_backend(actor: Actor, backend, expected: int | None = None) -> None:
    """Routes naming it stay, with ResolvedRefs=False (their requests for it answer 500);
    SecurityPolicies whose extAuth names it become Invalid (their targets answer 500)."""
    locked = common.lock_checked(Backend, backend.pk, expected, "backend", "tenant")
    audit.record(
        actor, "delete", "backend", locked.name, tenant=locked.tenant, before=snapshot(locked)
    )
    locked.delete()
    refresh_policies_naming_backend(locked.tenant, locked.name)
    refresh_routes_using(locked.tenant, locked.name)
    enqueue_reconcile_using(locked.tenant_id, locked.name)
