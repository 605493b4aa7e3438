"""``Authorization: Bearer gty_…`` authentication for the API."""

from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions

from config.api import throttling
from tenants import tokens
from tenants.models import ApiToken

_LAST_USED_GRANULARITY = timedelta(minutes=1)  # avoids a write on every request


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, plaintext = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        throttling.check_failures(request)  # an address that keeps failing waits first
        token, problem = self._check(plaintext.strip())
        if problem:
            throttling.failed_authentication(request)  # 429 once past the allowance
            raise exceptions.AuthenticationFailed(problem)
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > _LAST_USED_GRANULARITY:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    @staticmethod
    def _check(plaintext: str) -> tuple[ApiToken | None, str | None]:
        """The token, and why it may not be used (None if it may)."""
        prefix = tokens.split(plaintext)
        token = (
            ApiToken.objects.select_related("user", "tenant").filter(prefix=prefix).first()
            if prefix
            else None
        )
        if token is None or not tokens.matches(plaintext, token.digest):
            return None, "invalid API token"
        if token.revoked_at is not None:
            return token, f"API token {token.prefix} has been revoked"
        if token.expires_at is not None and token.expires_at <= timezone.now():
            return token, f"API token {token.prefix} has expired"
        if not token.user.is_active:
            return token, "the token's user is deactivated"
        return token, None

    def authenticate_header(self, request):
        return 'Bearer realm="gantry"'
