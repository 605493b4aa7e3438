"""API token format: ``gty_<8 visible chars>_<43 secret chars>``.

The visible prefix identifies the token in lists and logs; only the SHA-256 of the whole token
is stored (a token has 256 bits of entropy, so a fast hash is safe and keeps auth cheap).
"""

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass

_ALPHABET = string.ascii_lowercase + string.digits
PREFIX_LENGTH = len("gty_") + 8


@dataclass(frozen=True)
class NewToken:
    prefix: str
    plaintext: str
    digest: str


def digest(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def generate() -> NewToken:
    prefix = "gty_" + "".join(secrets.choice(_ALPHABET) for _ in range(8))
    plaintext = f"{prefix}_{secrets.token_urlsafe(32)}"
    return NewToken(prefix=prefix, plaintext=plaintext, digest=digest(plaintext))


def split(plaintext: str) -> str | None:
    """The prefix of a well-formed token, or None."""
    if not plaintext.startswith("gty_") or len(plaintext) < PREFIX_LENGTH + 2:
        return None
    if plaintext[PREFIX_LENGTH] != "_":
        return None
    return plaintext[:PREFIX_LENGTH]


def matches(plaintext: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(plaintext), stored_digest)
