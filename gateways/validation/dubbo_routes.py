"""Validation of DubboRoute specs (a Gantry kind: Gateway API has no Dubbo route).

A DubboRoute attaches to ``Dubbo`` listeners (``parentRefs`` by ``sectionName``, as other
routes) and routes Dubbo calls by the called interface (``service``), ``method``, the
``group`` and ``version`` the call names, and its attachments, to weighted backends. There are
no hostnames (a Dubbo call names no host) and no filters.
"""

import re

from rest_framework import serializers

from gateways.validation.common import pattern_field, run_spec_serializer
from gateways.validation.gateways import DUBBO
from gateways.validation.routes import (
    BackendRefSerializer,
    HeaderMatchSerializer,
    RouteSpecSerializer,
    _check_size,
    _duplicates,
)
from tenants.serializers import StrictSerializer, dns_label_field

# A Java interface's full name (org.apache.dubbo.samples.Greeter); no wildcard, which Envoy
# would read as a prefix or suffix match.
SERVICE = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*(?:\.[A-Za-z_$][A-Za-z0-9_$]*)*")
METHOD = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
# Dubbo groups and versions: names such as "blue", "1.0.0", "cn-east:canary".
LABEL = re.compile(r"[A-Za-z0-9_.:\-]+")
# Attachment names Envoy can match (it matches them as lowercase HTTP header names).
ATTACHMENT = re.compile(r"[a-z0-9][a-z0-9_.\-]*")


class AttachmentMatchSerializer(HeaderMatchSerializer):
    name = pattern_field(
        ATTACHMENT, "must be a lowercase attachment name (letters, digits, '_', '.', '-')",
        max_length=256,
    )  # fmt: skip


class DubboMatchSerializer(StrictSerializer):
    service = pattern_field(
        SERVICE, "must be a Java interface name such as org.apache.dubbo.samples.Greeter",
        max_length=512, help_text="the called interface (exact)",
    )  # fmt: skip
    method = pattern_field(
        METHOD, "must be a method name such as sayHello", max_length=256, required=False,
        help_text="the called method (exact); omitted: every method",
    )  # fmt: skip
    group = pattern_field(
        LABEL, "must be a Dubbo group (letters, digits, '_', '.', ':', '-')", max_length=128,
        required=False, help_text="the group the call names (its 'group' attachment); omitted: any",
    )  # fmt: skip
    version = pattern_field(
        LABEL, "must be a Dubbo version such as 1.0.0", max_length=128, required=False,
        help_text="the service version the call names; omitted: any",
    )  # fmt: skip
    attachments = AttachmentMatchSerializer(many=True, required=False, max_length=16)

    def validate_attachments(self, attachments):
        errors = _duplicates([item["name"] for item in attachments], "attachments")
        if errors:
            raise serializers.ValidationError(errors)
        return attachments


class DubboBackendRefSerializer(BackendRefSerializer):
    filters = None  # a Dubbo call carries no HTTP headers to modify


class DubboRuleSerializer(StrictSerializer):
    name = dns_label_field(required=False)
    matches = DubboMatchSerializer(many=True, allow_empty=False, max_length=64)
    backendRefs = DubboBackendRefSerializer(many=True, required=False, max_length=16)


class DubboRouteSpecSerializer(RouteSpecSerializer):
    hostnames = None
    rules = DubboRuleSerializer(many=True, allow_empty=False, max_length=16)

    def validate_parentRefs(self, refs):
        refs = super().validate_parentRefs(refs)
        protocols = self.context.get("protocols") or {}
        errors = {}
        for index, ref in enumerate(refs):
            protocol = protocols.get(ref["sectionName"])
            if protocol is not None and protocol != DUBBO:
                errors[index] = {"sectionName": [
                    f"listener {ref['sectionName']!r} has protocol {protocol}; "
                    "a DubboRoute attaches to Dubbo listeners"
                ]}  # fmt: skip
        if errors:
            raise serializers.ValidationError(errors)
        return refs


def validate_dubbo_route_spec(
    raw, listeners: list[str] | None = None, protocols: dict[str, str] | None = None
) -> dict:
    """The spec with its defaults filled in, or ValidationFailed naming each bad field.

    ``listeners``: names of the gateway's listeners, which ``parentRefs`` may name;
    ``protocols``: their protocols (a parentRef must name a Dubbo listener)."""
    _check_size(raw)
    context = {"listeners": listeners, "protocols": protocols}
    spec = run_spec_serializer(DubboRouteSpecSerializer, raw, context)
    _check_size(spec)
    return spec
