"""Which gateway is asking: every call carries a token that only the platform can make for the
gateway's domain, so a caller can count only against its own gateway's limits."""

import hmac

from django.utils.crypto import salted_hmac

HEADER = "x-gantry-ratelimit-token"
SALT = "gantry.ratelimit.domain"


def token_for(domain: str) -> str:
    """The token of ``domain`` (``<tenant>/<gateway>``), from the platform's secret key."""
    return salted_hmac(SALT, domain, algorithm="sha256").hexdigest()


def valid(domain: str, token: str | None) -> bool:
    return bool(domain) and token is not None and hmac.compare_digest(token, token_for(domain))
