"""Every write to certificates. The private key goes only to the encrypted column: never into
the spec, the status, an error message or the audit log."""

from django.db import transaction

from config.api.versioning import merge_patch
from config.errors import ValidationFailed
from gateways.conditions import set_condition
from gateways.listener_status import refresh_tenant_listener_status
from gateways.models import Certificate
from gateways.services import common
from gateways.services.dependents import refresh_backends_using
from gateways.validation import CheckedCertificate, validate_certificate
from provisioning.tasks import enqueue_reconcile_tenant
from tenants import audit, quotas
from tenants.audit import Actor
from tenants.models import Tenant


def snapshot(certificate: Certificate) -> dict:
    """What the audit log keeps: the public chain and its fingerprint, never the key."""
    return {
        "name": certificate.name,
        "spec": certificate.spec,
        "generation": certificate.generation,
        "fingerprintSha256": certificate.status.get("fingerprintSha256", ""),
    }


def certificate_status(checked: CheckedCertificate, generation: int, previous: dict) -> dict:
    message = (
        "the chain parses, the key matches the leaf and the leaf is valid now"
        if checked.private_key
        else "the chain parses and its first certificate is valid now (no key: CA use only)"
    )
    conditions = set_condition(
        previous.get("conditions", []), "Accepted", "True", "Accepted", message, generation
    )
    return {**checked.facts, "observedGeneration": generation, "conditions": conditions}


@transaction.atomic
def create_certificate(actor: Actor, tenant: Tenant, name: str, raw_spec) -> Certificate:
    checked = validate_certificate(raw_spec)
    tenant = quotas.lock_tenant(tenant)
    quotas.check_count(tenant, "maxCertificates", Certificate.objects.filter(tenant=tenant).count())
    certificate = common.create_unique(
        Certificate,
        f"a certificate named {name!r} already exists in {tenant.slug!r}",
        tenant=tenant,
        name=name,
        spec=checked.spec,
        private_key=checked.private_key,
        status=certificate_status(checked, 1, {}),
    )
    audit.record(actor, "create", "certificate", name, tenant=tenant, after=snapshot(certificate))
    refresh_backends_using(tenant, name)
    refresh_tenant_listener_status(tenant.pk)
    enqueue_reconcile_tenant(tenant.pk)
    return certificate


def _write(actor: Actor, locked: Certificate, checked: CheckedCertificate) -> Certificate:
    if checked.spec == locked.spec and checked.private_key == locked.private_key:
        return locked
    before = snapshot(locked)
    status = certificate_status(checked, locked.generation + 1, locked.status)
    common.store_spec(locked, checked.spec, status, private_key=checked.private_key)
    audit.record(
        actor,
        "update",
        "certificate",
        locked.name,
        tenant=locked.tenant,
        before=before,
        after=snapshot(locked),
    )
    refresh_tenant_listener_status(locked.tenant_id)
    enqueue_reconcile_tenant(locked.tenant_id)
    return locked


@transaction.atomic
def replace_certificate(actor: Actor, certificate, raw_spec, expected: int | None = None):
    """PUT: the chain is replaced; the key too if ``privateKeyPem`` is sent (null: removed).

    The key is write-only — nobody can read it back to send it again — so a PUT without it
    keeps the stored key, and the new chain must match it.
    """
    locked = common.lock_checked(Certificate, certificate.pk, expected, "certificate", "tenant")
    return _write(actor, locked, validate_certificate(raw_spec, locked.private_key))


@transaction.atomic
def patch_certificate(actor: Actor, certificate, patch, expected: int | None = None):
    """PATCH: an RFC 7386 merge patch of the spec; a chain sent alone must match the stored key."""
    locked = common.lock_checked(Certificate, certificate.pk, expected, "certificate", "tenant")
    patch = {} if patch is None else patch
    if not isinstance(patch, dict):
        raise ValidationFailed.one("spec", "must be an object")
    merged = merge_patch(locked.spec, {k: v for k, v in patch.items() if k != "privateKeyPem"})
    if "privateKeyPem" in patch:
        merged["privateKeyPem"] = patch["privateKeyPem"]  # None: remove the key
    return _write(actor, locked, validate_certificate(merged, locked.private_key))


@transaction.atomic
def delete_certificate(actor: Actor, certificate, expected: int | None = None) -> None:
    locked = common.lock_checked(Certificate, certificate.pk, expected, "certificate", "tenant")
    audit.record(
        actor, "delete", "certificate", locked.name, tenant=locked.tenant, before=snapshot(locked)
    )
    locked.delete()
    refresh_backends_using(locked.tenant, locked.name)
    refresh_tenant_listener_status(locked.tenant_id)
    enqueue_reconcile_tenant(locked.tenant_id)
