"""Validation of SecurityPolicy ``cors`` and ``authorization``: Envoy Gateway's field names,
defaults and patterns.

- ``cors.allowOrigins``: Envoy Gateway's ``Origin`` — ``*``, or ``http(s)://host[:port]``
  where the host may be ``*`` or start with ``*.``.
- ``authorization``: ``defaultAction`` (default ``Deny``, as in Envoy Gateway) and ordered
  ``rules`` (the first whose principal and operation match decides). A principal names client
  CIDRs, request headers, claims of a verified JWT and, a Gantry extension, consumers: those
  match the consumer an ``apiKeyAuth`` or ``basicAuth`` of the same policy authenticated, so
  they need one of them. An operation names HTTP methods.
"""

import base64
import json
import re
from urllib.parse import urlsplit

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from rest_framework import serializers

from gateways.egress import current_policy
from gateways.validation.backend_traffic import COOKIE_NAME, duration_field
from gateways.validation.common import (
    METHOD,
    PRECISE_HOSTNAME,
    LaterFieldsSerializer,
    cidr_field,
    control_problem,
    header_name_field,
    header_or_star_field,
    is_ip_address,
    no_control_characters,
    origin_field,
    pattern_field,
    text_field,
    unique,
)
from tenants.serializers import StrictSerializer

ACTIONS = ["Allow", "Deny"]
MAX_ITEMS = 64
QUERY_PARAM = re.compile(r"[A-Za-z0-9\-._~!$'()*+,;:@]{1,256}")
PRINCIPAL_LATER = ["sourceCIDRs"]
HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]
MAX_HEADER_VALUES = 16
PRINCIPAL_FIELDS = ("clientCIDRs", "headers", "consumers", "jwt")
SCOPE = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]{1,256}")  # RFC 6749 scope-token
MAX_CLAIM_VALUES = 16


class CORSSerializer(StrictSerializer):
    allowOrigins = serializers.ListField(child=origin_field(), max_length=MAX_ITEMS,
                                         required=False)  # fmt: skip
    allowMethods = serializers.ListField(
        child=pattern_field(METHOD, "must be an HTTP method or '*'"), max_length=MAX_ITEMS,
        required=False,
    )  # fmt: skip
    allowHeaders = serializers.ListField(child=header_or_star_field(), max_length=MAX_ITEMS,
                                         required=False)  # fmt: skip
    exposeHeaders = serializers.ListField(child=header_or_star_field(), max_length=MAX_ITEMS,
                                          required=False)  # fmt: skip
    maxAge = duration_field(1000, required=False, help_text="whole seconds are sent")
    allowCredentials = serializers.BooleanField(required=False)

    def validate(self, data):
        if not data.get("allowOrigins"):
            raise serializers.ValidationError(
                {"allowOrigins": ["must name at least one origin (or '*')"]}
            )
        return data


class PrincipalConsumerSerializer(StrictSerializer):
    kind = serializers.ChoiceField(choices=["Consumer"], default="Consumer")
    name = serializers.RegexField(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", max_length=63)


class JWTClaimSerializer(StrictSerializer):
    name = pattern_field(
        re.compile(r"[A-Za-z0-9_\-:/]{1,253}(\.[A-Za-z0-9_\-:/]{1,253}){0,7}"),
        "must be a claim name (nested claims joined with '.')", max_length=253,
    )  # fmt: skip
    valueType = serializers.ChoiceField(choices=["String", "StringArray"], default="String")
    values = serializers.ListField(
        child=text_field(max_length=1024), allow_empty=False, max_length=MAX_CLAIM_VALUES,
        help_text="the claim matches when it is (String) or contains (StringArray) any of them",
    )  # fmt: skip


class JWTPrincipalSerializer(StrictSerializer):
    provider = serializers.RegexField(
        r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", max_length=63,
        help_text="a provider of this policy's jwt",
    )  # fmt: skip
    scopes = serializers.ListField(
        child=pattern_field(SCOPE, "must be an OAuth 2.0 scope (printable, no spaces)"),
        required=False, max_length=MAX_CLAIM_VALUES,
        help_text="all of them must be in the token's space-delimited 'scope' claim",
    )  # fmt: skip
    claims = JWTClaimSerializer(many=True, required=False, max_length=MAX_CLAIM_VALUES)

    def validate(self, data):
        if not data.get("scopes") and not data.get("claims"):
            raise serializers.ValidationError("must name scopes or claims")
        return data


def header_value_field() -> serializers.CharField:
    def check(value: str) -> None:
        if value != value.strip(" \t"):
            raise serializers.ValidationError(
                "must not start or end with spaces or tabs (HTTP drops them, so it could never "
                "match)"
            )

    return serializers.CharField(
        trim_whitespace=False, max_length=4096, validators=[no_control_characters, check]
    )


class AuthorizationHeaderSerializer(StrictSerializer):
    """A request header with one of ``values`` (exact, case-sensitive; a header sent several
    times is matched as its values joined by commas)."""

    name = header_name_field()
    values = serializers.ListField(
        child=header_value_field(), allow_empty=False, max_length=MAX_HEADER_VALUES
    )


class PrincipalSerializer(LaterFieldsSerializer):
    later = PRINCIPAL_LATER
    clientCIDRs = serializers.ListField(child=cidr_field(), max_length=MAX_ITEMS, required=False)
    headers = AuthorizationHeaderSerializer(many=True, max_length=MAX_ITEMS, required=False)
    consumers = PrincipalConsumerSerializer(many=True, max_length=MAX_ITEMS, required=False)
    jwt = JWTPrincipalSerializer(required=False)

    def validate_headers(self, headers):
        return unique(headers, [h["name"].lower() for h in headers], "headers", "name")


class OperationSerializer(StrictSerializer):
    methods = serializers.ListField(
        child=serializers.ChoiceField(choices=HTTP_METHODS), allow_empty=False,
        max_length=len(HTTP_METHODS),
    )  # fmt: skip

    def validate_methods(self, methods):
        return unique(methods, methods)


class AuthorizationRuleSerializer(StrictSerializer):
    """Matches a request that its ``principal`` (every field it sets) and its ``operation``
    both match; at least one of them must say something."""

    name = text_field(required=False, max_length=253)
    action = serializers.ChoiceField(choices=ACTIONS)
    principal = PrincipalSerializer(required=False)
    operation = OperationSerializer(required=False)

    def validate(self, data):
        principal = data.get("principal") or {}
        if any(principal.get(field) for field in PRINCIPAL_FIELDS):
            return data
        named = f"must name {', '.join(PRINCIPAL_FIELDS[:-1])} or jwt"
        if "operation" not in data:
            problem = f"{named} (or the rule an operation)"
        elif "principal" in data:
            problem = f"{named}, or be left out"
        else:
            return data
        raise serializers.ValidationError({"principal": [problem]})


class AuthorizationSerializer(StrictSerializer):
    defaultAction = serializers.ChoiceField(choices=ACTIONS, default="Deny")
    rules = AuthorizationRuleSerializer(many=True, max_length=MAX_ITEMS, required=False)

    def validate_rules(self, rules):
        return unique(rules, [rule.get("name") for rule in rules], "rules", "name")


def _principal_problems(principal: dict, spec: dict) -> dict:
    problems = {}
    if principal.get("consumers") and not (spec.get("apiKeyAuth") or spec.get("basicAuth")):
        problems["consumers"] = [
            "consumers are the ones apiKeyAuth or basicAuth authenticate: set one of them in "
            "this policy"
        ]
    jwt = principal.get("jwt")
    providers = [p["name"] for p in (spec.get("jwt") or {}).get("providers", [])]
    if jwt and jwt["provider"] not in providers:
        problems["jwt"] = {"provider": [
            f"must be a provider of this policy's jwt ({', '.join(providers)})" if providers
            else "claims are those of a token this policy's jwt verifies: set jwt.providers"
        ]}  # fmt: skip
    return problems


def principal_rules_problems(spec: dict) -> dict:
    """Consumer principals need an apiKeyAuth or basicAuth in the same policy, and JWT
    principals one of the same policy's JWT providers."""
    rules = (spec.get("authorization") or {}).get("rules") or []
    errors = {}
    for index, rule in enumerate(rules):
        problems = _principal_problems(rule.get("principal") or {}, spec)
        if problems:
            errors[index] = {"principal": problems}
    return {"authorization": {"rules": errors}} if errors else {}


MAX_PROVIDERS = 4
MAX_JWKS = 65_536
CLAIM = re.compile(r"[A-Za-z0-9_\-.:/]{1,253}")
PROVIDER_LATER = ["recomputeRoute"]


def jwks_uri_field(**kwargs) -> serializers.CharField:
    def check(value: str) -> None:
        try:
            parsed = urlsplit(value)
            port = parsed.port
        except ValueError:
            raise serializers.ValidationError("must be a URI with a valid port") from None
        if parsed.scheme not in ("http", "https"):
            raise serializers.ValidationError("the scheme must be http or https")
        if not parsed.hostname:
            raise serializers.ValidationError("must name a host")
        host = parsed.hostname
        if not (is_ip_address(host) or PRECISE_HOSTNAME.fullmatch(host)):
            raise serializers.ValidationError("the host must be a DNS name or an IP address")
        if port == 0:
            raise serializers.ValidationError("the port must be 1–65535")
        if (
            parsed.username is not None
            or parsed.password is not None
            or control_problem(value)
            or " " in value
            or "\\" in value
        ):
            raise serializers.ValidationError("must be a plain URI without credentials or spaces")
        reason = current_policy().check_uri(value)
        if reason:
            raise serializers.ValidationError(reason)

    return serializers.CharField(trim_whitespace=False, max_length=2048, validators=[check],
                                 **kwargs)  # fmt: skip


class RemoteJWKSSerializer(StrictSerializer):
    uri = jwks_uri_field()


class LocalJWKSSerializer(StrictSerializer):
    type = serializers.ChoiceField(choices=["Inline"], default="Inline")
    inline = serializers.CharField(trim_whitespace=False, max_length=MAX_JWKS)

    def validate_inline(self, value):
        try:
            document = json.loads(value)
        except ValueError:
            raise serializers.ValidationError("must be a JSON Web Key Set (JSON)") from None
        keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(keys, list) or not keys:
            raise serializers.ValidationError('must be a JSON Web Key Set: {"keys": [...]}')
        for index, key in enumerate(keys):
            if not isinstance(key, dict) or key.get("kty") not in ("RSA", "EC", "OKP", "oct"):
                raise serializers.ValidationError(f"keys[{index}] must be a JSON Web Key")
            problem = _key_problem(key)
            if problem:
                raise serializers.ValidationError(f"keys[{index}]: {problem}")
        return value


CURVES = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}


def _b64url_int(value: str) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", value):
        raise ValueError("not base64url")
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


def _key_problem(key: dict) -> str | None:
    """Why Envoy could not load ``key`` (the public key is built to be sure), or None."""
    kind = key["kty"]
    try:
        if kind == "RSA":
            rsa.RSAPublicNumbers(_b64url_int(key.get("e")), _b64url_int(key.get("n"))).public_key()
        elif kind == "EC":
            if key.get("crv") not in CURVES:
                return f"crv must be one of {', '.join(CURVES)}"
            curve = CURVES[key["crv"]]()
            x, y = _b64url_int(key.get("x")), _b64url_int(key.get("y"))
            ec.EllipticCurvePublicNumbers(x, y, curve).public_key()
        elif kind == "OKP":
            if key.get("crv") != "Ed25519":
                return "crv must be Ed25519"
            raw = _b64url_int(key.get("x")).to_bytes(32, "big")
            ed25519.Ed25519PublicKey.from_public_bytes(raw)
        else:
            _b64url_int(key.get("k"))
    except (ValueError, TypeError, OverflowError, UnsupportedAlgorithm):
        return f"not a valid {kind} public key"
    return None


class ClaimToHeaderSerializer(StrictSerializer):
    header = header_name_field()
    claim = pattern_field(CLAIM, "must be a claim name (nested claims joined with '.')")


class TokenHeaderSerializer(StrictSerializer):
    name = header_name_field()
    valuePrefix = text_field(required=False, max_length=64)


class CredentialSourcesSerializer(StrictSerializer):
    """Where a credential is read from: headers (each subclass says how they are named),
    query parameters or cookies — at least one."""

    params = serializers.ListField(
        child=pattern_field(QUERY_PARAM, "must be a query parameter name"), required=False,
        max_length=8,
    )  # fmt: skip
    cookies = serializers.ListField(
        child=pattern_field(COOKIE_NAME, "must be a cookie name (RFC 6265 token characters)"),
        required=False, max_length=8,
    )  # fmt: skip

    def validate(self, data):
        if not any(data.get(field) for field in ("headers", "params", "cookies")):
            raise serializers.ValidationError("must name at least one header, param or cookie")
        return data


class JWTExtractorSerializer(CredentialSourcesSerializer):
    headers = TokenHeaderSerializer(many=True, required=False, max_length=8)


class JWTProviderSerializer(LaterFieldsSerializer):
    later = PROVIDER_LATER
    name = serializers.RegexField(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", max_length=63)
    issuer = text_field(required=False, max_length=1024)
    audiences = serializers.ListField(child=text_field(max_length=1024), required=False,
                                      max_length=16)  # fmt: skip
    remoteJWKS = RemoteJWKSSerializer(required=False)
    localJWKS = LocalJWKSSerializer(required=False)
    claimToHeaders = ClaimToHeaderSerializer(many=True, required=False, max_length=16)
    extractFrom = JWTExtractorSerializer(required=False)
    forwardOriginalToken = serializers.BooleanField(required=False)

    def validate(self, data):
        if ("remoteJWKS" in data) == ("localJWKS" in data):
            raise serializers.ValidationError("must set exactly one of remoteJWKS, localJWKS")
        return data


class JWTSerializer(StrictSerializer):
    optional = serializers.BooleanField(
        required=False, help_text="a request without a token passes (one with an invalid token "
        "is still a 401)",
    )  # fmt: skip
    providers = JWTProviderSerializer(many=True, allow_empty=False, max_length=MAX_PROVIDERS)

    def validate_providers(self, providers):
        return unique(providers, [p["name"] for p in providers], "providers", "name")
