"""Validation of HTTPRoute filters and of the URL paths that matches and filters share.

Field names, enums and limits are Gateway API's (``HTTPRouteFilter`` and friends), and so are
the CEL rules its CRDs enforce: the filter's type names the one config field present, at most
one of each filter type but RequestMirror, no RequestRedirect together with URLRewrite or with
backendRefs, and ReplacePrefixMatch only where every match of the rule is a PathPrefix.
"""

import re

from rest_framework import serializers

from gateways.validation.common import (
    METHOD,
    header_name_field,
    header_or_star_field,
    origin_field,
    pattern_field,
    port_field,
    precise_hostname_field,
    text_field,
)
from tenants.serializers import StrictSerializer, dns_label_field

# Gateway API's HTTPPathMatch rule for Exact and PathPrefix values.
_PATH_CHARACTERS = re.compile(r"(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})+")
_PATH_FORBIDDEN = ("//", "/./", "/../", "%2f", "%2F", "#")
MAX_HEADERS = 16
# Headers no filter may set, add or remove. Envoy itself refuses only Host and ':'-prefixed
# pseudo-headers (which the header name rule already keeps out); it would accept the others,
# and then the message's framing (content-length, transfer-encoding), the connection's
# hop-by-hop handling, or the identity Gantry forwards upstream would be the tenant's to forge.
_FRAMING_HEADERS = {
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
}
PLATFORM_PREFIX = "x-gantry-"  # e.g. x-gantry-consumer: the consumer a request authenticated as


def reserved_header_problem(name: str) -> str | None:
    """Why a header filter may not act on ``name``, or None."""
    lowered = name.lower()
    if lowered == "host":
        return "Envoy does not let header filters change Host; use a URLRewrite filter's hostname"
    if lowered in _FRAMING_HEADERS:
        return (
            f"{lowered} is a framing or hop-by-hop header that the proxy manages; "
            "a filter may not set, add or remove it"
        )
    if lowered.startswith(PLATFORM_PREFIX):
        return (
            f"headers starting with {PLATFORM_PREFIX} are the platform's own "
            "(x-gantry-consumer names the authenticated consumer); a filter may not touch them"
        )
    return None


def path_problem(value: str) -> str | None:
    """Why ``value`` is not a normalised absolute URL path, or None."""
    if not value.startswith("/"):
        return "must start with '/'"
    for forbidden in _PATH_FORBIDDEN:
        if forbidden in value:
            return f"must not contain {forbidden!r}"
    if value.endswith(("/..", "/.")):
        return "must not end with '/..' or '/.'"
    if not _PATH_CHARACTERS.fullmatch(value):
        return (
            "must only contain URL path characters (letters, digits, "
            "-._~!$&'()*+,;=:@/ and %XX escapes)"
        )
    return None


class HeaderSerializer(StrictSerializer):
    name = header_name_field()
    value = text_field(max_length=4096)


class HeaderModifierSerializer(StrictSerializer):
    """Set, add or remove headers; one action per header name (case-insensitive)."""

    set = HeaderSerializer(many=True, required=False, max_length=MAX_HEADERS)
    add = HeaderSerializer(many=True, required=False, max_length=MAX_HEADERS)
    remove = serializers.ListField(
        child=header_name_field(), required=False, max_length=MAX_HEADERS
    )

    def validate(self, data):
        errors: dict = {}
        seen: dict[str, str] = {}
        for action in ("set", "add", "remove"):
            for index, item in enumerate(data.get(action, [])):
                name = item if action == "remove" else item["name"]
                problem = reserved_header_problem(name)
                if problem is None and name.lower() in seen:
                    problem = f"{seen[name.lower()]} already acts on this header; one action each"
                seen.setdefault(name.lower(), f"{action}[{index}]")
                if problem:
                    detail = [problem] if action == "remove" else {"name": [problem]}
                    errors.setdefault(action, {})[index] = detail
        if errors:
            raise serializers.ValidationError(errors)
        return data


class PathModifierSerializer(StrictSerializer):
    type = serializers.ChoiceField(choices=["ReplaceFullPath", "ReplacePrefixMatch"])
    replaceFullPath = serializers.CharField(max_length=1024, required=False, trim_whitespace=False)
    replacePrefixMatch = serializers.CharField(
        max_length=1024, required=False, allow_blank=True, trim_whitespace=False
    )

    def validate(self, data):
        wanted, other = ("replaceFullPath", "replacePrefixMatch")
        if data["type"] == "ReplacePrefixMatch":
            wanted, other = other, wanted
        errors = {}
        if wanted not in data:
            errors[wanted] = [f"required when type is {data['type']}"]
        if other in data:
            errors[other] = [f"only allowed when type is {other[0].upper()}{other[1:]}"]
        value = data.get(wanted)
        # An empty replacePrefixMatch is allowed: /prefix/rest becomes /rest.
        if value is not None and (value or wanted == "replaceFullPath"):
            problem = path_problem(value)
            if problem:
                errors[wanted] = [problem]
        if errors:
            raise serializers.ValidationError(errors)
        return data


class RedirectSerializer(StrictSerializer):
    scheme = serializers.ChoiceField(choices=["http", "https"], required=False)
    hostname = precise_hostname_field(required=False)
    path = PathModifierSerializer(required=False)
    port = port_field(required=False)
    statusCode = serializers.ChoiceField(choices=[301, 302, 303, 307, 308], default=302)


class URLRewriteSerializer(StrictSerializer):
    hostname = precise_hostname_field(required=False)
    path = PathModifierSerializer(required=False)


class BackendObjectRefSerializer(StrictSerializer):
    name = dns_label_field(help_text="a backend of the tenant")
    port = port_field(required=False, help_text="accepted for Gateway API compatibility")


class FractionSerializer(StrictSerializer):
    numerator = serializers.IntegerField(min_value=0, max_value=1_000_000)
    denominator = serializers.IntegerField(min_value=1, max_value=1_000_000, default=100)

    def validate(self, data):
        if data["numerator"] > data["denominator"]:
            raise serializers.ValidationError(
                {"numerator": [f"must not be more than denominator ({data['denominator']})"]}
            )
        return data


class MirrorSerializer(StrictSerializer):
    backendRef = BackendObjectRefSerializer()
    percent = serializers.IntegerField(
        min_value=0, max_value=100, required=False, help_text="default: every request"
    )
    fraction = FractionSerializer(required=False, help_text="numerator/denominator of requests")

    def validate(self, data):
        if "percent" in data and "fraction" in data:
            raise serializers.ValidationError(
                {"fraction": ["only one of percent and fraction may be set"]}
            )
        return data


class CORSFilterSerializer(StrictSerializer):
    """Gateway API's HTTPCORSFilter: SecurityPolicy ``cors``'s checks, ``maxAge`` in seconds."""

    allowOrigins = serializers.ListField(child=origin_field(), max_length=64, allow_empty=False)
    allowMethods = serializers.ListField(
        child=pattern_field(METHOD, "must be an HTTP method or '*'"), max_length=64,
        required=False,
    )  # fmt: skip
    allowHeaders = serializers.ListField(child=header_or_star_field(), max_length=64,
                                         required=False)  # fmt: skip
    exposeHeaders = serializers.ListField(child=header_or_star_field(), max_length=64,
                                          required=False)  # fmt: skip
    maxAge = serializers.IntegerField(min_value=1, max_value=86400 * 365, default=5,
                                      help_text="seconds; Gateway API's default is 5")  # fmt: skip
    allowCredentials = serializers.BooleanField(required=False)


# Filter type → the field holding its configuration.
FILTER_FIELDS = {
    "RequestHeaderModifier": "requestHeaderModifier",
    "ResponseHeaderModifier": "responseHeaderModifier",
    "RequestRedirect": "requestRedirect",
    "URLRewrite": "urlRewrite",
    "RequestMirror": "requestMirror",
    "CORS": "cors",
}
# What a backendRef's own filters may be (Gateway API allows these two on a backend's share).
BACKEND_FILTERS = ("RequestHeaderModifier", "ResponseHeaderModifier")


class FilterSerializer(StrictSerializer):
    type = serializers.ChoiceField(choices=list(FILTER_FIELDS))
    requestHeaderModifier = HeaderModifierSerializer(required=False)
    responseHeaderModifier = HeaderModifierSerializer(required=False)
    requestRedirect = RedirectSerializer(required=False)
    urlRewrite = URLRewriteSerializer(required=False)
    requestMirror = MirrorSerializer(required=False)
    cors = CORSFilterSerializer(required=False)

    def validate(self, data):
        wanted = FILTER_FIELDS[data["type"]]
        errors = {}
        if wanted not in data:
            errors[wanted] = [f"required when type is {data['type']}"]
        for filter_type, field in FILTER_FIELDS.items():
            if field != wanted and field in data:
                errors[field] = [f"only allowed when type is {filter_type}"]
        if errors:
            raise serializers.ValidationError(errors)
        return data


def rule_filter_errors(rule: dict) -> list[dict]:
    """Errors of each of the rule's filters that only the whole rule shows ({} if none)."""
    filters = rule.get("filters", [])
    errors: list[dict] = [{} for _ in filters]
    first: dict[str, int] = {}
    for index, item in enumerate(filters):
        kind = item["type"]
        if kind != "RequestMirror" and kind in first:
            errors[index]["type"] = [f"{kind} cannot be repeated (filters[{first[kind]}] is one)"]
        first.setdefault(kind, index)
    if "RequestRedirect" in first and "URLRewrite" in first:
        later = max(first["RequestRedirect"], first["URLRewrite"])
        errors[later].setdefault("type", []).append(
            "RequestRedirect and URLRewrite cannot be used in the same rule"
        )
    if "RequestRedirect" in first and rule.get("backendRefs"):
        errors[first["RequestRedirect"]].setdefault("type", []).append(
            "RequestRedirect cannot be used together with backendRefs (the redirect answers)"
        )
    not_prefix = [
        (index, match["path"]["type"])
        for index, match in enumerate(rule["matches"])
        if match["path"]["type"] != "PathPrefix"
    ]
    for index, item in enumerate(filters):
        field = FILTER_FIELDS[item["type"]]
        path = (
            item.get(field, {}).get("path") if field in ("requestRedirect", "urlRewrite") else None
        )
        if path and path["type"] == "ReplacePrefixMatch" and not_prefix:
            match_index, match_type = not_prefix[0]
            errors[index][field] = {
                "path": {
                    "type": [
                        "ReplacePrefixMatch needs every match of the rule to be a PathPrefix "
                        f"match (matches[{match_index}] is {match_type})"
                    ]
                }
            }
    return errors
