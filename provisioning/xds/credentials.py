"""xDS tokens: ``gxds_<8 visible chars>_<43 secret chars>``, as API tokens are made
(``tenants.tokens``): only the SHA-256 of the whole token is stored, and the plaintext is shown
once, to be written into a bootstrap.

Two kinds:

- a replica token (``ReplicaCredential``), bound to one node id ``<tenant>/<gateway>/<index>``:
  the local runtime issues one each time it starts a replica and revokes it when the replica
  stops. A stream with it is accepted only under that node id.
- a gateway token (``XdsCredential``), for the Kubernetes runtime's bootstrap Secret: any node
  id of the gateway may stream with it.
"""

import hashlib
import hmac
import secrets
import string

from django.db import transaction

from gateways.models import Gateway
from provisioning.models import ReplicaCredential, XdsCredential
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


@transaction.atomic
def issue_xds_token(gateway: Gateway) -> str:
    """A new gateway-wide token (the plaintext, returned only here). Issuing again rotates it:
    the previous token stops working for new streams."""
    plaintext = _generate()
    XdsCredential.objects.update_or_create(
        gateway=gateway,
        defaults={"prefix": plaintext[:PREFIX_LENGTH], "token_hash": digest(plaintext)},
    )
    return plaintext


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


def identify(token: str) -> Principal | None:
    """Who the token lets stream: a gateway's one replica (a replica token) or any replica of
    a gateway (a gateway token); None for an unknown token."""
    if not token or not _well_formed(token):
        return None
    wanted = digest(token)
    replica = (
        ReplicaCredential.objects.select_related("gateway__tenant")
        .filter(token_hash=wanted)
        .first()
    )
    if replica is not None and hmac.compare_digest(replica.token_hash, wanted):
        return Principal(gateway_key(replica.gateway), replica.node_id)
    key = authenticate(token)
    return Principal(key) if key else None


def authenticate(token: str) -> str | None:
    """The gateway key (``tenant/gateway``) a gateway token belongs to, or None (replica tokens
    included: see ``identify``)."""
    if not token or not _well_formed(token):
        return None
    wanted = digest(token)
    credential = (
        XdsCredential.objects.select_related("gateway__tenant").filter(token_hash=wanted).first()
    )
    if credential is None or not hmac.compare_digest(credential.token_hash, wanted):
        return None
    return gateway_key(credential.gateway)
