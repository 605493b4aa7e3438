"""Validation of TCPRoute and TLSRoute specs: Gateway API ``v1alpha2`` TCPRoute and TLSRoute.

Both forward whole connections, so a rule has no matches and no filters: only ``backendRefs``
(weighted). A TCPRoute has one rule (Gateway API v1alpha2 allows more, without any way to tell
them apart); a TLSRoute adds ``hostnames``, the SNI names it takes (Gateway API hostnames,
``*.example.com`` wildcards included). ``parentRefs`` name listeners as in HTTPRoute.
"""

from rest_framework import serializers

from gateways.validation.common import hostname_field, is_ip_address, run_spec_serializer
from gateways.validation.routes import (
    BackendRefSerializer,
    ParentRefSerializer,
    RouteSpecSerializer,
    _check_size,
)
from tenants.serializers import StrictSerializer, dns_label_field


class StreamBackendRefSerializer(BackendRefSerializer):
    filters = None  # connections have no headers to change


class StreamRuleSerializer(StrictSerializer):
    name = dns_label_field(required=False)
    backendRefs = StreamBackendRefSerializer(
        many=True, allow_empty=False, max_length=16,
        help_text="where connections go, by weight; a missing backend refuses its share",
    )  # fmt: skip


class TCPRouteSpecSerializer(StrictSerializer):
    parentRefs = ParentRefSerializer(
        many=True, required=False, max_length=32,
        help_text="TCP listeners to attach to; omitted: every TCP listener",
    )  # fmt: skip
    rules = StreamRuleSerializer(
        many=True, allow_empty=False, max_length=1,
        help_text="one rule: a TCP listener cannot tell connections apart",
    )  # fmt: skip

    validate_parentRefs = RouteSpecSerializer.validate_parentRefs


class TLSRouteSpecSerializer(TCPRouteSpecSerializer):
    parentRefs = ParentRefSerializer(
        many=True, required=False, max_length=32,
        help_text="TLS listeners to attach to; omitted: every TLS listener whose hostname matches",
    )  # fmt: skip
    hostnames = serializers.ListField(
        child=hostname_field(), required=False, max_length=16,
        help_text="SNI names (a leading '*.' matches one or more labels); omitted: the listener's",
    )  # fmt: skip

    def validate_hostnames(self, hostnames):
        errors = {}
        for index, hostname in enumerate(hostnames):
            if is_ip_address(hostname):
                errors[index] = ["must be a DNS name, not an IP address (SNI carries names)"]
            elif hostname in hostnames[:index]:
                errors[index] = [f"duplicates hostnames[{hostnames.index(hostname)}]"]
        if errors:
            raise serializers.ValidationError(errors)
        return hostnames


def validate_tcp_route_spec(raw, listeners: list[str] | None = None) -> dict:
    """The spec, or ValidationFailed naming each bad field. ``listeners``: the gateway's
    listener names, which ``parentRefs`` may name."""
    _check_size(raw)
    return run_spec_serializer(TCPRouteSpecSerializer, raw, {"listeners": listeners})


def validate_tls_route_spec(raw, listeners: list[str] | None = None) -> dict:
    _check_size(raw)
    return run_spec_serializer(TLSRouteSpecSerializer, raw, {"listeners": listeners})
