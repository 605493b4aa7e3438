"""Helpers shared by every spec validator: running a serializer, and common field rules."""

import ipaddress
import re

from rest_framework import serializers

from config.api.errors import flatten
from config.errors import FieldError, ValidationFailed
from tenants.serializers import StrictSerializer

# Gateway API ``Hostname``: a lowercase DNS name, optionally with a leading ``*.`` label.
HOSTNAME = re.compile(
    r"^(\*\.)?[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$"
)
HOSTNAME_MESSAGE = "must be a lowercase DNS name, optionally starting with '*.'"
# Gateway API ``PreciseHostname``: the same without the wildcard.
PRECISE_HOSTNAME = re.compile(
    r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$"
)
PRECISE_HOSTNAME_MESSAGE = "must be a lowercase DNS name (letters, digits, '-' and '.')"
# RFC 7230 token characters: what Gateway API's ``HTTPHeaderName`` allows.
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")
HEADER_NAME_MESSAGE = "must be an HTTP header name (RFC 7230 token characters, no ':')"
# Control characters (tab excepted) are invalid in header values, PostgreSQL refuses NUL, and
# unpaired surrogates cannot be encoded as UTF-8.
_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")


def is_ip_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def pattern_field(pattern: re.Pattern, message: str, **kwargs) -> serializers.CharField:
    """A string that must match ``pattern`` whole (``$`` alone would allow a trailing newline)."""

    def check(value: str) -> None:
        if not pattern.fullmatch(value):
            raise serializers.ValidationError(message, code="invalid")

    return serializers.CharField(trim_whitespace=False, validators=[check], **kwargs)


def hostname_field(**kwargs) -> serializers.CharField:
    return pattern_field(HOSTNAME, HOSTNAME_MESSAGE, max_length=253, **kwargs)


def precise_hostname_field(**kwargs) -> serializers.CharField:
    return pattern_field(PRECISE_HOSTNAME, PRECISE_HOSTNAME_MESSAGE, max_length=253, **kwargs)


def header_name_field(**kwargs) -> serializers.CharField:
    return pattern_field(HEADER_NAME, HEADER_NAME_MESSAGE, max_length=256, **kwargs)


def control_problem(value: str) -> str | None:
    if _UNSAFE.search(value):
        return "must not contain control characters (such as NUL, CR or LF) or lone surrogates"
    return None


def no_control_characters(value: str) -> None:
    problem = control_problem(value)
    if problem:
        raise serializers.ValidationError(problem, code="invalid")


def text_field(**kwargs) -> serializers.CharField:
    """Free text kept exactly as sent (no trimming), without control characters."""
    return serializers.CharField(
        trim_whitespace=False, validators=[no_control_characters], **kwargs
    )


def port_field(**kwargs) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=65535, **kwargs)


def run_spec_serializer(serializer_class, raw, context: dict | None = None) -> dict:
    """The validated spec as plain JSON values, or ValidationFailed naming each bad field."""
    if not isinstance(raw, dict):
        raise ValidationFailed.one("spec", "must be an object")
    serializer = serializer_class(data=raw, context=context or {})
    if not serializer.is_valid():
        raise failed(serializer.errors)
    return plain(serializer.validated_data)


def failed(detail, prefix: str = "spec") -> ValidationFailed:
    fields = flatten(detail, prefix)
    return ValidationFailed([FieldError(f["path"], f["message"], f["code"]) for f in fields])


def plain(value):
    """OrderedDicts and ReturnLists to plain JSON values (stored in a JSON column)."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def cidr_field() -> serializers.CharField:
    def check(value: str) -> None:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise serializers.ValidationError(
                "must be a CIDR such as 10.0.0.0/8, 192.168.1.7/32 or 2001:db8::/32",
                code="invalid",
            ) from None
        if "/" not in value:
            raise serializers.ValidationError("must have a prefix length (/n)", code="invalid")

    return serializers.CharField(trim_whitespace=False, max_length=64, validators=[check])


class LaterFieldsSerializer(StrictSerializer):
    """Refuses by name the Envoy Gateway fields Gantry does not translate yet (``later``),
    instead of calling them unknown."""

    later: list[str] = []

    def to_internal_value(self, data):
        if isinstance(data, dict):
            later = [name for name in self.later if name in data]
            if later:
                raise serializers.ValidationError(
                    {name: [f"{name} is not supported yet"] for name in later}
                )
        return super().to_internal_value(data)


def duplicate_errors(keys: list, what: str = "", field: str | None = None) -> dict:
    """{index: error} for each item whose key an earlier item has ("duplicates <what>[i]",
    under ``field`` when given); ``None`` keys are never duplicates."""
    errors, first = {}, {}
    for index, key in enumerate(keys):
        if key is None:
            continue
        if key in first:
            message = [f"duplicates {what}[{first[key]}]"]
            errors[index] = {field: message} if field else message
        first.setdefault(key, index)
    return errors


def unique(items: list, keys: list, what: str = "", field: str | None = None) -> list:
    """``items``, or a ValidationError naming each duplicate (see ``duplicate_errors``)."""
    errors = duplicate_errors(keys, what, field)
    if errors:
        raise serializers.ValidationError(errors)
    return items


# CORS: Envoy Gateway's Origin and method patterns (SecurityPolicy cors, HTTPRoute CORS filter).
ORIGIN = re.compile(
    r"\*|https?://(\*|(\*\.)?([A-Za-z0-9_-]+\.)*[A-Za-z0-9_-]+)(:(?P<port>[0-9]{1,5}))?"
)
ORIGIN_MESSAGE = (
    "must be '*' or an origin such as https://example.com, https://*.example.com or "
    "http://localhost:8080"
)
METHOD = re.compile(r"\*|[A-Za-z0-9!#$%&'*+\-.^_`|~]{1,32}")


def origin_field() -> serializers.CharField:
    def check(value: str) -> None:
        match = ORIGIN.fullmatch(value)
        if not match:
            raise serializers.ValidationError(ORIGIN_MESSAGE, code="invalid")
        if match.group("port") and not 1 <= int(match.group("port")) <= 65535:
            raise serializers.ValidationError("the port must be 1–65535", code="invalid")

    return serializers.CharField(trim_whitespace=False, max_length=253, validators=[check])


def header_or_star_field() -> serializers.CharField:
    return pattern_field(
        re.compile(rf"\*|{HEADER_NAME.pattern[1:-1]}"),
        "must be an HTTP header name or '*'", max_length=256,
    )  # fmt: skip
