"""Every write to consumers and their credentials.

Credentials are what the gateway checks, so creating or deleting one (or a consumer) makes
every gateway of the tenant reconcile; policies naming a consumer get their status refreshed
when it comes or goes. Secrets are generated or hashed here, stored encrypted, returned once
(an API key, in the create response) and never audited.
"""

import base64
import hashlib
import secrets
import string

from django.db import transaction

from config.api.versioning import merge_patch
from config.errors import Conflict, NotFound
from gateways.conditions import set_condition
from gateways.models import Consumer, Credential
from gateways.services import common
from gateways.services.dependents import refresh_policies_naming
from gateways.validation.consumers import validate_consumer_spec, validate_credential
from provisioning.tasks import enqueue_reconcile_tenant
from tenants import audit, quotas
from tenants.audit import Actor
from tenants.models import Tenant

MAX_CREDENTIALS_PER_CONSUMER = 8
_ALPHABET = string.ascii_lowercase + string.digits


def snapshot(consumer: Consumer) -> dict:
    return {"name": consumer.name, "spec": consumer.spec, "generation": consumer.generation}


def consumer_status(generation: int, previous: dict) -> dict:
    conditions = set_condition(
        previous.get("conditions", []), "Accepted", "True", "Accepted", "spec is valid", generation
    )
    return {"observedGeneration": generation, "conditions": conditions}


@transaction.atomic
def create_consumer(actor: Actor, tenant: Tenant, name: str, raw_spec) -> Consumer:
    spec = validate_consumer_spec(raw_spec)
    tenant = quotas.lock_tenant(tenant)  # the plan's maxConsumers, checked under the lock
    quotas.check_count(tenant, "maxConsumers", Consumer.objects.filter(tenant=tenant).count())
    consumer = common.create_unique(
        Consumer,
        f"a consumer named {name!r} already exists in {tenant.slug!r}",
        tenant=tenant,
        name=name,
        spec=spec,
        status=consumer_status(1, {}),
    )
    audit.record(actor, "create", "consumer", name, tenant=tenant, after=snapshot(consumer))
    refresh_policies_naming(tenant, name)
    enqueue_reconcile_tenant(tenant.pk)
    return consumer


def _write(actor: Actor, locked: Consumer, spec: dict) -> Consumer:
    if spec == locked.spec:
        return locked
    before = snapshot(locked)
    common.store_spec(locked, spec, consumer_status(locked.generation + 1, locked.status))
    audit.record(actor, "update", "consumer", locked.name, tenant=locked.tenant,
                 before=before, after=snapshot(locked))  # fmt: skip
    return locked  # the description is not part of any gateway's configuration


@transaction.atomic
def replace_consumer_spec(actor: Actor, consumer, raw_spec, expected: int | None = None):
    locked = common.lock_checked(Consumer, consumer.pk, expected, "consumer", "tenant")
    return _write(actor, locked, validate_consumer_spec(raw_spec))


@transaction.atomic
def patch_consumer_spec(actor: Actor, consumer, patch, expected: int | None = None):
    locked = common.lock_checked(Consumer, consumer.pk, expected, "consumer", "tenant")
    merged = merge_patch(locked.spec, patch if patch is not None else {})
    return _write(actor, locked, validate_consumer_spec(merged))


@transaction.atomic
def delete_consumer(actor: Actor, consumer, expected: int | None = None) -> None:
    """Its credentials go with it; policies naming it fail closed until it exists again."""
    locked = common.lock_checked(Consumer, consumer.pk, expected, "consumer", "tenant")
    audit.record(actor, "delete", "consumer", locked.name, tenant=locked.tenant,
                 before=snapshot(locked))  # fmt: skip
    locked.delete()
    refresh_policies_naming(locked.tenant, locked.name)
    enqueue_reconcile_tenant(locked.tenant_id)


def htpasswd_sha(password: str) -> str:
    """The ``{SHA}`` htpasswd hash Envoy's basic_auth filter compares (base64 of SHA-1)."""
    digest = hashlib.sha1(password.encode(), usedforsecurity=False).digest()
    return "{SHA}" + base64.b64encode(digest).decode()


def _new_id(prefix: str) -> str:
    """A fresh public id (36^8 of them: a clash is rare, and then another is drawn)."""
    while True:
        key_id = prefix + "".join(secrets.choice(_ALPHABET) for _ in range(8))
        if not Credential.objects.filter(key_id=key_id).exists():
            return key_id


def _credential_snapshot(credential: Credential) -> dict:
    fields = {"consumer": credential.consumer.name, "id": credential.key_id,
              "type": credential.type}  # fmt: skip
    if credential.username:
        fields["username"] = credential.username
    return fields


@transaction.atomic
def create_credential(actor: Actor, consumer: Consumer, raw) -> tuple[Credential, str | None]:
    """A new credential, and the API key in plain text (shown once; None for basic-auth)."""
    consumer = common.lock(Consumer, consumer.pk, "tenant")
    data = validate_credential(raw, consumer.name)
    existing = Credential.objects.filter(consumer=consumer)
    if existing.count() >= MAX_CREDENTIALS_PER_CONSUMER:
        raise Conflict(f"a consumer has at most {MAX_CREDENTIALS_PER_CONSUMER} credentials")
    plaintext = None
    if data["type"] == Credential.Type.API_KEY:
        key_id = _new_id("gak_")
        plaintext = f"{key_id}_{secrets.token_urlsafe(32)}"
        credential = Credential.objects.create(
            consumer=consumer, key_id=key_id, type=data["type"], secret=plaintext
        )
    else:
        if existing.filter(type=Credential.Type.BASIC_AUTH).exists():
            raise Conflict(
                f"consumer {consumer.name!r} already has a basic-auth credential "
                "(Envoy allows one password per user): delete it first"
            )
        credential = Credential.objects.create(
            consumer=consumer, key_id=_new_id("gba_"), type=data["type"],
            username=data["username"], secret=htpasswd_sha(data["password"]),
        )  # fmt: skip
    audit.record(actor, "create", "credential", f"{consumer.name}/{credential.key_id}",
                 tenant=consumer.tenant, after=_credential_snapshot(credential))  # fmt: skip
    enqueue_reconcile_tenant(consumer.tenant_id)
    return credential, plaintext


@transaction.atomic
def delete_credential(actor: Actor, credential: Credential) -> None:
    consumer = common.lock(Consumer, credential.consumer_id, "tenant")
    locked = Credential.objects.select_for_update().filter(pk=credential.pk).first()
    if locked is None:
        raise NotFound("the credential was deleted meanwhile")
    locked.consumer = consumer
    audit.record(actor, "delete", "credential", f"{consumer.name}/{locked.key_id}",
                 tenant=consumer.tenant, before=_credential_snapshot(locked))  # fmt: skip
    locked.delete()
    enqueue_reconcile_tenant(consumer.tenant_id)
