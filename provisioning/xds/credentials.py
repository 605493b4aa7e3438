"""Per-gateway xDS tokens: ``gxds_<8 visible chars>_<43 secret chars>``, as API tokens are made
(``tenants.tokens``): only the SHA-256 of the whole token is stored, and the plaintext is shown
once, to be written into the replicas' bootstrap.
"""

import hashlib
import hmac
import secrets
import string

from django.db import transaction

from gateways.models import Gateway
from provisioning.models import XdsCredential

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
    """A new token for the gateway's replicas (the plaintext, returned only here). Issuing again
    rotates it: the previous token stops working for new streams."""
    plaintext = _generate()
    XdsCredential.objects.update_or_create(
        gateway=gateway,
        defaults={"prefix": plaintext[:PREFIX_LENGTH], "token_hash": digest(plaintext)},
    )
    return plaintext


def authenticate(token: str) -> str | None:
    """The gateway key (``tenant/gateway``) the token belongs to, or None."""
    if not token or not _well_formed(token):
        return None
    wanted = digest(token)
    credential = (
        XdsCredential.objects.select_related("gateway__tenant").filter(token_hash=wanted).first()
    )
    if credential is None or not hmac.compare_digest(credential.token_hash, wanted):
        return None
    return gateway_key(credential.gateway)
