"""``Authorization: Bearer gty_…`` authentication for the API."""

from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions

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
        plaintext = plaintext.strip()
        prefix = tokens.split(plaintext)
        token = (
            ApiToken.objects.select_related("user", "tenant").filter(prefix=prefix).first()
            if prefix
            else None
        )
        if token is None or not tokens.matches(plaintext, token.digest):
            raise exceptions.AuthenticationFailed("invalid API token")
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed(f"API token {token.prefix} has been revoked")
        now = timezone.now()
        if token.expires_at is not None and token.expires_at <= now:
            raise exceptions.AuthenticationFailed(f"API token {token.prefix} has expired")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("the token's user is deactivated")
        if token.last_used_at is None or now - token.last_used_at > _LAST_USED_GRANULARITY:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request):
        return 'Bearer realm="gantry"'
