"""Config revisions: hashing, storing, showing (keys redacted), diffing and rolling back.

The "current" revision of a gateway is the one with ``current=True`` (at most one, enforced by
the database): the newest valid revision, or the one a rollback chose until the desired state
changes again.
"""

import difflib
import hashlib
import json
from dataclasses import asdict

import yaml
from django.db import transaction
from django.utils import timezone

from config.errors import Conflict, NotFound
from gateways.models import Gateway
from gateways.services import common
from provisioning.ir.build import DesiredState
from provisioning.models import ConfigRevision, GatewayOperation
from provisioning.translate import Resources
from provisioning.xds.notify import notify_changed
from tenants import audit
from tenants.audit import Actor


def canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(resources: Resources) -> str:
    """sha256 of the canonical JSON of the compiled resources (keys included: rotating a key is
    a change)."""
    return hashlib.sha256(canonical_json(resources.as_dict()).encode()).hexdigest()


def fingerprint(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def desired_snapshot(state: DesiredState) -> dict:
    """The desired state as stored in a revision: certificates by fingerprint, never the key."""
    snapshot = asdict(state)
    # The operator's egress policy is no tenant's business (platform ranges and hosts).
    snapshot.pop("egress", None)
    snapshot["certificates"] = {
        name: {
            "certificateSha256": fingerprint(cert["certificatePem"]),
            "hasPrivateKey": bool(cert.get("privateKeyPem")),
            "dnsNames": cert.get("dnsNames", []),
        }
        for name, cert in state.certificates.items()
    }
    snapshot["consumers"] = {
        name: {
            "apiKeys": [fingerprint(key)[:23] for key in consumer.get("apiKeys", [])],
            "basicAuth": [fingerprint(user["hash"])[:23] for user in consumer.get("basicAuth", [])],
        }
        for name, consumer in state.consumers.items()
    }
    return snapshot


def _mask(text: str) -> str:
    return f"<redacted {fingerprint(text)[:23]}>"


def redacted(value):
    """A copy of compiled resources with every secret replaced by its fingerprint: inline
    private keys, API keys (api_key_auth ``credentials``) and htpasswd users (basic_auth)."""
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            if (
                key in ("private_key", "users")
                and isinstance(item, dict)
                and "inline_string" in item
            ):
                item = {"inline_string": _mask(item["inline_string"])}
            elif key == "credentials" and isinstance(item, list):
                item = [{**c, "key": _mask(c["key"])} if isinstance(c, dict) and "key" in c
                        else c for c in item]  # fmt: skip
            result[key] = redacted(item)
        return result
    if isinstance(value, list):
        return [redacted(item) for item in value]
    return value


def resources_of(revision: ConfigRevision) -> dict:
    """The compiled resources of a revision, keys included (for the xDS server only)."""
    return json.loads(revision.resources)


def as_yaml(revision: ConfigRevision) -> str:
    """The compiled resources for people: YAML, private keys redacted."""
    return yaml.safe_dump(redacted(resources_of(revision)), sort_keys=False, width=100)


def unified_diff(old: ConfigRevision, new: ConfigRevision) -> str:
    return "".join(
        difflib.unified_diff(
            as_yaml(old).splitlines(keepends=True),
            as_yaml(new).splitlines(keepends=True),
            fromfile=f"revision {old.number}",
            tofile=f"revision {new.number}",
        )
    )


def current_revision(gateway: Gateway) -> ConfigRevision | None:
    return ConfigRevision.objects.filter(gateway=gateway, current=True).first()


def make_current(revision: ConfigRevision) -> None:
    """Under the gateway's lock: ``revision`` becomes the one served."""
    ConfigRevision.objects.filter(gateway_id=revision.gateway_id, current=True).exclude(
        pk=revision.pk
    ).update(current=False)
    if not revision.current:
        revision.current = True
        revision.save(update_fields=["current"])


@transaction.atomic
def rollback(actor: Actor, gateway: Gateway, number: int) -> GatewayOperation:
    """Makes an earlier valid revision current (the desired state is left as it is; its next
    change compiles a new revision that supersedes the rollback)."""
    gateway = common.lock(Gateway, gateway.pk, "tenant")
    revision = ConfigRevision.objects.filter(gateway=gateway, number=number).first()
    if revision is None:
        raise NotFound(f"gateway {gateway.name!r} has no revision {number}")
    if revision.state != ConfigRevision.State.VALID:
        raise Conflict(f"revision {number} was rejected by Envoy; only a valid revision is served")
    previous = current_revision(gateway)
    make_current(revision)
    notify_changed(f"{gateway.tenant.slug}/{gateway.name}")
    now = timezone.now()
    operation = GatewayOperation.objects.create(
        gateway=gateway,
        kind=GatewayOperation.Kind.ROLLBACK,
        state=GatewayOperation.State.SUCCEEDED,
        message=f"rolled back from revision {previous.number if previous else 'none'} "
        f"to revision {number}",
        finished_at=now,
        revision=revision,
        created_by=actor.name,
    )
    audit.record(
        actor,
        "rollback",
        "gateway",
        gateway.name,
        tenant=gateway.tenant,
        before={"revision": previous.number if previous else None},
        after={"revision": number},
    )
    return operation
