"""Rolling a gateway back: revision N's routing and policy, with today's secrets.

A rollback never serves an old revision's compiled resources again: those hold the
certificates' private keys and the consumers' credentials of their time, so a revoked API key
would work again. Instead revision N's stored desired state (everything but secrets, which it
keeps only as fingerprints) gets the *current* certificates and consumer credentials put in,
is compiled, validated by Envoy and stored as a new revision that becomes current. If that
cannot be done, nothing changes and the caller gets a 409 saying why. The next change of the
desired state supersedes the rollback (reconcile compares with the newest revision compiled
from the desired state, not with the rollback).
"""

import subprocess
from dataclasses import fields

from django.db import transaction
from django.utils import timezone

from config.errors import Conflict, NotFound
from gateways.models import Gateway
from gateways.services import common
from provisioning import envoy, readiness, revisions
from provisioning.desired import (
    certificates_named,
    consumers_for,
    egress_for,
    oidc_providers,
    policy_secrets_for,
)
from provisioning.ir.build import DesiredState
from provisioning.models import ConfigRevision, GatewayOperation
from provisioning.reconcile import compile_for
from provisioning.runtimes.local import ports
from tenants import audit
from tenants.audit import Actor

# What a revision stores of its desired state (the egress policy is the operator's, applied as
# it is today, never as it was; host names are resolved again, OpenID providers discovered
# again, and policies' secrets are today's).
SNAPSHOT_FIELDS = tuple(
    item.name for item in fields(DesiredState)
    if item.name not in ("egress", "resolved", "policy_secrets", "oidc_providers")
)  # fmt: skip
VALIDATE_SECONDS = 30


def restored_state(gateway: Gateway, revision: ConfigRevision) -> DesiredState:
    """Revision's desired state with the current certificates and credentials; Conflict when
    it cannot be rebuilt."""
    snapshot = revisions.desired_state_of(revision)
    missing = [name for name in SNAPSHOT_FIELDS if name not in snapshot]
    if missing:
        raise Conflict(
            f"revision {revision.number} was stored before revisions kept "
            f"{', '.join(missing)}; it cannot be compiled again"
        )
    wanted = set(snapshot["certificates"])
    certificates = certificates_named(gateway.tenant, wanted)
    if gone := sorted(wanted - certificates.keys()):
        raise Conflict(
            f"revision {revision.number} uses certificate(s) {', '.join(gone)}, which no "
            f"longer exist; create them again or roll back to another revision"
        )
    egress = egress_for(gateway, snapshot["backends"])
    return DesiredState(
        tenant=gateway.tenant.slug,
        gateway=gateway.name,
        spec=snapshot["spec"],
        routes=snapshot["routes"],
        backends=snapshot["backends"],
        certificates=certificates,
        policies=snapshot["policies"],
        consumers=consumers_for(gateway.tenant, snapshot["policies"]),
        policy_secrets=policy_secrets_for(gateway, snapshot["policies"]),
        oidc_providers=oidc_providers(snapshot["policies"], egress["egress"]),
        **egress,
    )


def _compiled(gateway: Gateway, revision: ConfigRevision, state: DesiredState):
    """The state compiled (``revisions.compiled``) and accepted by Envoy, else Conflict."""
    try:
        resources = compile_for(gateway, state)
    except ports.NoFreePort as error:
        raise Conflict(f"revision {revision.number} cannot be compiled again: {error}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise Conflict(
            f"revision {revision.number}'s stored desired state cannot be compiled by this "
            f"version of Gantry ({type(error).__name__}: {error})"
        ) from None
    made = revisions.compiled(resources.as_dict())
    revisions.check_size(gateway, made.size)
    # A one-off check: the web process that serves the request keeps no Envoy of its own.
    try:
        validation = envoy.validate_cold(resources, timeout=VALIDATE_SECONDS)
    except subprocess.TimeoutExpired:
        raise Conflict(f"Envoy gave no verdict within {VALIDATE_SECONDS} s; try again") from None
    if not validation.ok:
        raise Conflict(
            f"Envoy rejects revision {revision.number}'s routing and policy with the current "
            f"certificates and credentials: {validation.message}"
        )
    return made


@transaction.atomic
def rollback(actor: Actor, gateway: Gateway, number: int) -> GatewayOperation:
    """Stores and serves a new revision restoring revision ``number``'s routing and policy."""
    gateway = common.lock(Gateway, gateway.pk, "tenant")
    target = ConfigRevision.objects.filter(gateway=gateway, number=number).first()
    if target is None:
        raise NotFound(f"gateway {gateway.name!r} has no revision {number}")
    if target.state != ConfigRevision.State.VALID:
        raise Conflict(f"revision {number} was rejected by Envoy; only a valid revision is served")
    previous = revisions.current_revision(gateway)
    state = restored_state(gateway, target)
    made = _compiled(gateway, target, state)
    restores = f"restores revision {number}'s routing and policy"
    revision = revisions.store(
        gateway, made, state, valid=True, actor=actor.name, restored_from=number,
        message=f"{restores} with the current certificates and credentials",
    )  # fmt: skip
    revisions.prune(gateway)
    readiness.refresh(gateway.pk)
    operation = GatewayOperation.objects.create(
        gateway=gateway,
        kind=GatewayOperation.Kind.ROLLBACK,
        state=GatewayOperation.State.SUCCEEDED,
        message=f"revision {revision.number} {restores} (was serving revision "
        f"{previous.number if previous else 'none'})",
        finished_at=timezone.now(),
        revision=revision,
        created_by=actor.name,
    )
    audit.record(
        actor, "rollback", "gateway", gateway.name, tenant=gateway.tenant,
        before={"revision": previous.number if previous else None},
        after={"revision": revision.number, "restores": number},
    )  # fmt: skip
    return operation
