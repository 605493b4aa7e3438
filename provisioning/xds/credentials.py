"""xDS tokens: ``gxds_<8 visible chars>_<43 secret chars>``, as API tokens are made
(``tenants.tokens``): only the SHA-256 of the whole token is stored, and the plaintext is shown
once, to be written into a bootstrap.

Every token is bound to exactly one node id; none admits "any replica of a gateway":

- a replica token (``ReplicaCredential``), node id ``<tenant>/<gateway>/<index>``: the local
  runtime issues one each time it starts a replica and revokes it when the replica stops;
- a pod token (``PodCredential``), node id ``<tenant>/<gateway>/<pod name>``: the xDS server's
  enrollment issues one to a Kubernetes pod that proved who it is
  (``provisioning.xds.enrollment``), and the Kubernetes status sync revokes it when the pod is
  gone or terminating.

A stream with either is accepted only under that node id.
"""

import hashlib
import hmac
import secrets
import string
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from gateways.models import Gateway
from provisioning.models import PodCredential, ReplicaCredential
from provisioning.xds.bootstrap import node_id as make_node_id
from provisioning.xds.server import Principal

PREFIX = "gxds_"
_ALPHABET = string.ascii_lowercase + string.digits
PREFIX_LENGTH = len(PREFIX) + 8


def gateway_key(gateway: Gateway) -> str:
    """``tenant/gateway``: how the xDS server, the bootstrap and node ids name a gateway."""
    return f"{gateway.tenant.slug}/{gateway.name}"


def digest(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def _generate() -> str:
    prefix = PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(8))
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def _well_formed(plaintext: str) -> bool:
    return (
        plaintext.startswith(PREFIX)
        and len(plaintext) >= PREFIX_LENGTH + 2
        and plaintext[PREFIX_LENGTH] == "_"
    )


def issue_replica_token(gateway: Gateway, index: int) -> str:
    """A new token for replica ``index`` of the gateway, valid only under its node id (the
    plaintext, returned only here). Issuing again rotates it."""
    plaintext = _generate()
    ReplicaCredential.objects.update_or_create(
        gateway=gateway,
        index=index,
        defaults={
            "node_id": make_node_id(gateway_key(gateway), index),
            "prefix": plaintext[:PREFIX_LENGTH],
            "token_hash": digest(plaintext),
        },
    )
    return plaintext


def revoke_replica_token(gateway_id: int, index: int) -> None:
    """The replica's token stops working for new streams (its open stream, if any, goes on)."""
    ReplicaCredential.objects.filter(gateway_id=gateway_id, index=index).delete()


@transaction.atomic
def issue_pod_token(gateway: Gateway, pod_name: str, pod_uid: str) -> str:
    """A new token for the pod ``pod_name`` (uid ``pod_uid``) of the gateway, valid only under
    node id ``<tenant>/<gateway>/<pod name>`` (the plaintext, returned only here). Issuing again
    for the same pod replaces the previous token: one token per pod at a time."""
    plaintext = _generate()
    PodCredential.objects.update_or_create(
        gateway=gateway,
        pod_name=pod_name,
        defaults={
            "pod_uid": pod_uid,
            "node_id": make_node_id(gateway_key(gateway), pod_name),
            "prefix": plaintext[:PREFIX_LENGTH],
            "token_hash": digest(plaintext),
            "issued_at": timezone.now(),
        },
    )
    return plaintext


def revoke_pod_tokens(
    gateway_id: int, keep: Iterable[tuple[str, str]] = (), issued_before=None
) -> list[str]:
    """Deletes the gateway's pod tokens except those of the pods in ``keep`` (``(name, uid)``
    pairs of pods that exist and are not terminating) and, with ``issued_before``, those
    issued since then (a pod created after the list was read may already have enrolled).
    Returns the node ids revoked."""
    kept = set(keep)
    tokens = PodCredential.objects.filter(gateway_id=gateway_id)
    if issued_before is not None:
        tokens = tokens.filter(issued_at__lt=issued_before)
    stale = [
        (pk, node_id)
        for pk, name, uid, node_id in tokens.values_list("pk", "pod_name", "pod_uid", "node_id")
        if (name, uid) not in kept
    ]
    if stale:
        PodCredential.objects.filter(pk__in=[pk for pk, _ in stale]).delete()
    return [node_id for _, node_id in stale]


def pod_credential(token: str) -> PodCredential | None:
    """The pod token ``token`` is (with its gateway and tenant), or None: usage counters are
    taken only from Kubernetes pods (local replicas are read by their agent)."""
    if not token or not _well_formed(token):
        return None
    wanted = digest(token)
    found = (
        PodCredential.objects.select_related("gateway__tenant").filter(token_hash=wanted).first()
    )
    if found is not None and hmac.compare_digest(found.token_hash, wanted):
        return found
    return None


def identify(token: str) -> Principal | None:
    """The one node a token lets stream (a replica's or a pod's), or None for an unknown
    token."""
    if not token or not _well_formed(token):
        return None
    wanted = digest(token)
    for model in (ReplicaCredential, PodCredential):
        found = model.objects.select_related("gateway__tenant").filter(token_hash=wanted).first()
        if found is not None and hmac.compare_digest(found.token_hash, wanted):
            return Principal(gateway_key(found.gateway), found.node_id)
    return None
