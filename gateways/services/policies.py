"""Every write to policies. Like routes: the gateway row is locked first (policies of one
gateway conflict with each other, and targets are checked against its listeners), then the
policy. Every write recomputes the status of all the gateway's policies (conflicts and
overrides move between them) and reconciles the gateway."""

import base64
import json
from secrets import token_bytes

from django.db import transaction

from config.api.versioning import merge_patch
from config.errors import Conflict, ValidationFailed
from gateways.egress import current_policy
from gateways.models import Backend, Consumer, Gateway, Policy
from gateways.policy_status import gateway_resolution, policy_status
from gateways.services import common
from gateways.validation.gateways import DUBBO
from gateways.validation.policies import validate_policy_kind, validate_policy_spec
from provisioning import oidc_discovery
from provisioning.ir.egress import refused_backends
from provisioning.ir.ext_auth import named_backends
from provisioning.ir.oidc import OidcInputs, needs_discovery
from provisioning.ir.policies import rule_names
from provisioning.tasks import enqueue_reconcile
from tenants import audit
from tenants.audit import Actor

MAX_POLICIES_PER_GATEWAY = 256


def audit_name(policy: Policy) -> str:
    return f"{policy.gateway.name}/{policy.name}"


def snapshot(policy: Policy) -> dict:
    return {"gateway": policy.gateway.name, "name": policy.name, "kind": policy.kind,
            "spec": policy.spec, "generation": policy.generation}  # fmt: skip


def _validate(kind: str, raw_spec, gateway: Gateway) -> dict:
    listeners = [listener["name"] for listener in gateway.spec.get("listeners", [])]
    return validate_policy_spec(kind, raw_spec, gateway.name, listeners)


def _kept_secrets(spec: dict, stored: str | None) -> tuple[dict, str | None]:
    """``spec`` without its write-only ``oidc.clientSecret``, and the policy's secrets after
    this write (JSON, stored encrypted): the client secret sent, else the one stored; the
    cookies' HMAC key generated once and kept while the policy has ``oidc`` (so the cookies
    Envoy set stay valid across revisions)."""
    if "oidc" not in spec:
        return spec, None
    previous = json.loads(stored) if stored else {}
    oidc = dict(spec["oidc"])
    client_secret = oidc.pop("clientSecret", None) or previous.get("oidcClientSecret")
    if not client_secret:
        raise ValidationFailed.one(
            "spec.oidc.clientSecret", "is required (it is never returned: send it to set it)"
        )
    hmac_key = previous.get("oidcHmacSecret") or base64.b64encode(token_bytes(32)).decode()
    kept = {"oidcClientSecret": client_secret, "oidcHmacSecret": hmac_key}
    return {**spec, "oidc": oidc}, json.dumps(kept, sort_keys=True)


def _oidc_inputs(policies, discovered: dict | None) -> OidcInputs:
    """What the status knows of the policies' OpenID providers: what the compile discovered
    (``discovered``), else what is in the cache (a provider not known yet is no problem: the
    reconcile that follows the write discovers it, and says so if it fails)."""
    if discovered is not None:
        return OidcInputs(discovered)
    issuers = {needs_discovery(policy.spec) for policy in policies} - {None}
    known = {issuer: oidc_discovery.known(issuer) for issuer in issuers}
    return OidcInputs({k: v for k, v in known.items() if v is not None}, complete=False)


def refresh_policies(gateway: Gateway, discovered: dict | None = None) -> None:
    """Recomputes every policy status of ``gateway``; writes only those that changed.
    ``discovered``: the OpenID providers' endpoints a compile read (issuer → endpoints).

    Callers hold the gateway's lock (every writer of routes and policies takes it first)."""
    policies = list(Policy.objects.select_for_update().filter(gateway=gateway).order_by("pk"))
    if not policies:
        return
    egress = current_policy()
    named = {name for policy in policies for _, name in named_backends(policy.spec)}
    services = Backend.objects.filter(tenant_id=gateway.tenant_id, name__in=named)
    resolution = gateway_resolution(
        policies,
        # Policies do not apply to Dubbo listeners and DubboRoutes (docs/dubbo.md): a policy
        # naming one finds no target, so its status says so instead of "Accepted".
        rule_names(
            [
                {"name": name, "spec": spec, "kind": kind}
                for name, spec, kind in gateway.routes.values_list("name", "spec", "kind")
            ]
        ),  # fmt: skip
        [item for item in gateway.spec.get("listeners", []) if item.get("protocol") != DUBBO],
        set(Consumer.objects.filter(tenant_id=gateway.tenant_id).values_list("name", flat=True)),
        set(Backend.objects.filter(tenant_id=gateway.tenant_id).values_list("name", flat=True)),
        refused_backends(dict(services.values_list("name", "spec")), egress),
        egress,
        _oidc_inputs(policies, discovered),
    )
    for policy in policies:
        common.store_status(
            policy, policy_status(policy.name, policy.generation, policy.status, resolution)
        )


@transaction.atomic
def create_policy(actor: Actor, gateway: Gateway, name: str, kind, raw_spec) -> Policy:
    gateway = common.lock(Gateway, gateway.pk, "tenant")
    kind = validate_policy_kind(kind)
    spec, secrets = _kept_secrets(_validate(kind, raw_spec, gateway), None)
    duplicate = f"gateway {gateway.name!r} already has a policy named {name!r}"
    if Policy.objects.filter(gateway=gateway).count() >= MAX_POLICIES_PER_GATEWAY:
        raise Conflict(f"a gateway has at most {MAX_POLICIES_PER_GATEWAY} policies")
    policy = common.create_unique(Policy, duplicate, gateway=gateway, name=name, kind=kind,
                                  spec=spec, status={}, secrets=secrets)  # fmt: skip
    audit.record(actor, "create", "policy", audit_name(policy), tenant=gateway.tenant,
                 after=snapshot(policy))  # fmt: skip
    refresh_policies(gateway)
    enqueue_reconcile(gateway.pk)
    policy.refresh_from_db(fields=["status", "resource_version"])
    return policy


def _lock(policy: Policy, expected: int | None, kind=None) -> Policy:
    gateway = common.lock(Gateway, policy.gateway_id, "tenant")
    locked = common.lock_checked(Policy, policy.pk, expected, "policy")
    locked.gateway = gateway
    if kind is not None and kind != locked.kind:
        raise ValidationFailed.one("kind", f"cannot be changed (it is {locked.kind})")
    return locked


def _write(actor: Actor, locked: Policy, validated: dict) -> Policy:
    spec, secrets = _kept_secrets(validated, locked.secrets)
    if spec == locked.spec and secrets == locked.secrets:
        return locked
    before = snapshot(locked)
    common.store_spec(locked, spec, locked.status, secrets=secrets)
    audit.record(actor, "update", "policy", audit_name(locked), tenant=locked.gateway.tenant,
                 before=before, after=snapshot(locked))  # fmt: skip
    refresh_policies(locked.gateway)
    enqueue_reconcile(locked.gateway_id)
    locked.refresh_from_db(fields=["status", "resource_version"])
    return locked


@transaction.atomic
def replace_policy_spec(actor: Actor, policy: Policy, raw_spec, expected=None, kind=None):
    """PUT: the new spec replaces the old one whole."""
    locked = _lock(policy, expected, kind)
    return _write(actor, locked, _validate(locked.kind, raw_spec, locked.gateway))


@transaction.atomic
def patch_policy_spec(actor: Actor, policy: Policy, patch, expected=None, kind=None):
    """PATCH: an RFC 7386 merge patch into the stored spec (lists replace), validated whole."""
    locked = _lock(policy, expected, kind)
    merged = merge_patch(locked.spec, patch if patch is not None else {})
    return _write(actor, locked, _validate(locked.kind, merged, locked.gateway))


@transaction.atomic
def delete_policy(actor: Actor, policy: Policy, expected: int | None = None) -> None:
    locked = _lock(policy, expected)
    audit.record(actor, "delete", "policy", audit_name(locked), tenant=locked.gateway.tenant,
                 before=snapshot(locked))  # fmt: skip
    locked.delete()
    refresh_policies(locked.gateway)
    enqueue_reconcile(locked.gateway_id)
