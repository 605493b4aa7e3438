"""Validation of SecurityPolicy ``cors`` and ``authorization``: Envoy Gateway's field names,
defaults and patterns.

- ``cors.allowOrigins``: Envoy Gateway's ``Origin`` — ``*``, or ``http(s)://host[:port]``
  where the host may be ``*`` or start with ``*.``.
- ``authorization``: ``defaultAction`` (default ``Deny``, as in Envoy Gateway) and ordered
  ``rules`` (the first whose principal matches decides). A principal names client CIDRs and,
  a Gantry extension, consumers: those match the consumer an ``apiKeyAuth`` or ``basicAuth``
  of the same policy authenticated, so they need one of them.
"""

import ipaddress
import re

from rest_framework import serializers

from gateways.validation.backend_traffic import duration_field
from gateways.validation.common import HEADER_NAME, pattern_field, text_field
from tenants.serializers import StrictSerializer

ORIGIN = re.compile(
    r"\*|https?://(\*|(\*\.)?([A-Za-z0-9_-]+\.)*[A-Za-z0-9_-]+)(:(?P<port>[0-9]{1,5}))?"
)
ORIGIN_MESSAGE = (
    "must be '*' or an origin such as https://example.com, https://*.example.com or "
    "http://localhost:8080"
)
METHOD = re.compile(r"\*|[A-Za-z0-9!#$%&'*+\-.^_`|~]{1,32}")
ACTIONS = ["Allow", "Deny"]
MAX_ITEMS = 64
PRINCIPAL_LATER = ["jwt", "headers", "sourceCIDRs"]


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


class PrincipalConsumerSerializer(StrictSerializer):
    kind = serializers.ChoiceField(choices=["Consumer"], default="Consumer")
    name = serializers.RegexField(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", max_length=63)


class PrincipalSerializer(StrictSerializer):
    clientCIDRs = serializers.ListField(child=cidr_field(), max_length=MAX_ITEMS, required=False)
    consumers = PrincipalConsumerSerializer(many=True, max_length=MAX_ITEMS, required=False)

    def to_internal_value(self, data):
        if isinstance(data, dict):
            later = [field for field in PRINCIPAL_LATER if field in data]
            if later:
                raise serializers.ValidationError(
                    {field: [f"{field} is not supported yet"] for field in later}
                )
        return super().to_internal_value(data)

    def validate(self, data):
        if not data.get("clientCIDRs") and not data.get("consumers"):
            raise serializers.ValidationError("must name clientCIDRs or consumers")
        return data


class AuthorizationRuleSerializer(StrictSerializer):
    name = text_field(required=False, max_length=253)
    action = serializers.ChoiceField(choices=ACTIONS)
    principal = PrincipalSerializer()


class AuthorizationSerializer(StrictSerializer):
    defaultAction = serializers.ChoiceField(choices=ACTIONS, default="Deny")
    rules = AuthorizationRuleSerializer(many=True, max_length=MAX_ITEMS, required=False)

    def validate_rules(self, rules):
        names = [rule.get("name") for rule in rules]
        errors = {
            index: {"name": [f"duplicates rules[{names.index(name)}]"]}
            for index, name in enumerate(names)
            if name is not None and name in names[:index]
        }
        if errors:
            raise serializers.ValidationError(errors)
        return rules


def consumer_rules_problems(spec: dict) -> dict:
    """Consumer principals need an apiKeyAuth or basicAuth in the same policy."""
    if spec.get("apiKeyAuth") or spec.get("basicAuth"):
        return {}
    rules = (spec.get("authorization") or {}).get("rules") or []
    errors = {
        index: {"principal": {"consumers": [
            "consumers are the ones apiKeyAuth or basicAuth authenticate: set one of them in "
            "this policy"]}}
        for index, rule in enumerate(rules)
        if rule["principal"].get("consumers")
    }  # fmt: skip
    return {"authorization": {"rules": errors}} if errors else {}
