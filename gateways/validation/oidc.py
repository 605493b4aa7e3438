"""Validation of SecurityPolicy ``oidc``: Envoy Gateway's fields, defaults and patterns.

``clientSecret`` is a value here (Envoy Gateway names a Kubernetes Secret): it is accepted,
never stored in the spec and never returned (``gateways.services.policies`` keeps it apart,
encrypted). ``scopes`` always include ``openid``. The provider's endpoints are read from its
discovery document when they are not given (``provisioning.oidc_discovery``).
"""

import re

from rest_framework import serializers

from gateways.validation.common import (
    PRECISE_HOSTNAME,
    LaterFieldsSerializer,
    control_problem,
    pattern_field,
    text_field,
    unique,
)
from gateways.validation.security import SCOPE, jwks_uri_field
from provisioning.ir.oidc import REDIRECT_URL, redirect_path

DEFAULT_SCOPES = ["openid"]
DEFAULT_REDIRECT_URL = "%REQ(x-forwarded-proto)%://%REQ(:authority)%/oauth2/callback"
DEFAULT_LOGOUT_PATH = "/logout"
MAX_SCOPES = 16
OIDC_LATER = [
    "clientIDRef", "cookieNames", "cookieConfig", "cookieDomains", "refreshToken",
    "defaultTokenTTL", "defaultRefreshTokenTTL", "resources", "passThroughAuthHeader",
    "denyRedirect", "logoutURL",
]  # fmt: skip
PROVIDER_LATER = ["backendRef", "backendRefs", "backendSettings"]
PATH = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@/]{0,1023}")


def _browser_uri(value: str) -> None:
    if not re.fullmatch(r"https?://[^\s/?#@\\]+(/[^\s#\\]*)?", value) or control_problem(value):
        raise serializers.ValidationError(
            "must be an http or https URI without credentials, spaces or a fragment"
        )


class ProviderSerializer(LaterFieldsSerializer):
    later = PROVIDER_LATER
    issuer = jwks_uri_field()
    authorizationEndpoint = serializers.CharField(
        required=False, max_length=2048, trim_whitespace=False, validators=[_browser_uri],
        help_text="default: the provider's discovery document",
    )  # fmt: skip
    tokenEndpoint = jwks_uri_field(
        required=False, help_text="default: the provider's discovery document (Envoy asks it "
        "for tokens: the egress policy must let gateways reach it)",
    )  # fmt: skip

    def validate_issuer(self, value):
        if "?" in value or "#" in value:
            raise serializers.ValidationError("must not have a query or a fragment (OpenID)")
        return value


class OIDCSerializer(LaterFieldsSerializer):
    later = OIDC_LATER
    provider = ProviderSerializer()
    clientID = text_field(max_length=256)
    clientSecret = text_field(
        required=False, max_length=4096, write_only=True,
        help_text="write-only: kept encrypted, never returned; left out, the stored one stays",
    )  # fmt: skip
    scopes = serializers.ListField(
        child=pattern_field(SCOPE, "must be an OAuth 2.0 scope (printable, no spaces)"),
        required=False, max_length=MAX_SCOPES, help_text="openid is always included",
    )  # fmt: skip
    redirectURL = serializers.CharField(
        default=DEFAULT_REDIRECT_URL, max_length=2048, trim_whitespace=False,
        help_text="scheme and authority may be Envoy request formatters (%REQ(:authority)%)",
    )  # fmt: skip
    logoutPath = pattern_field(PATH, "must be an absolute path without a query",
                               default=DEFAULT_LOGOUT_PATH)  # fmt: skip
    cookieDomain = pattern_field(PRECISE_HOSTNAME, "must be a DNS name", required=False,
                                 max_length=253)  # fmt: skip
    forwardAccessToken = serializers.BooleanField(
        default=False, help_text="send the access token upstream as Authorization: Bearer"
    )

    def validate_clientID(self, value):
        if not value:
            raise serializers.ValidationError("must not be empty")
        return value

    def validate_clientSecret(self, value):
        if not value:
            raise serializers.ValidationError("must not be empty")
        return value

    def validate_scopes(self, scopes):
        scopes = unique(scopes, scopes)
        return scopes if "openid" in scopes else ["openid", *scopes]

    def validate_redirectURL(self, value):
        if not REDIRECT_URL.fullmatch(value):
            raise serializers.ValidationError(
                "must be <scheme>://<authority>/<path>, scheme and authority plain or Envoy "
                "request formatters such as %REQ(:authority)%"
            )
        return value

    def validate(self, data):
        data.setdefault("scopes", list(DEFAULT_SCOPES))
        if redirect_path(data["redirectURL"]) == data["logoutPath"]:
            raise serializers.ValidationError(
                {"logoutPath": ["must differ from the redirectURL's path"]}
            )
        return data
