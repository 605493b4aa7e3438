"""Validation of backend specs (Envoy Gateway's ``Backend``, simplified).

A backend's endpoints are all IP addresses (an Envoy STATIC cluster) or all DNS names (a
STRICT_DNS cluster): Envoy has no cluster type that mixes them. Every endpoint must be one the
operator's egress policy lets gateways reach (``gateways/egress.py``).
"""

import base64
import binascii
import ipaddress

from rest_framework import serializers

from gateways.egress import current_policy, loose_ipv4
from gateways.validation.backend_traffic import duration_field
from gateways.validation.common import (
    PRECISE_HOSTNAME,
    PRECISE_HOSTNAME_MESSAGE,
    is_ip_address,
    port_field,
    precise_hostname_field,
    run_spec_serializer,
)
from gateways.validation.gateways import ObjectRefSerializer
from provisioning.ir.durations import to_ms
from tenants.serializers import StrictSerializer

# "dubbo": a Dubbo server (TCP, for DubboRoutes); Envoy speaks no HTTP to it.
APP_PROTOCOLS = ["HTTP/1.1", "h2c", "gRPC", "dubbo"]
MAX_DESCRIPTOR_BYTES = 64 * 1024
MAX_DESCRIPTOR_BASE64 = (MAX_DESCRIPTOR_BYTES + 2) // 3 * 4


def descriptor_set_problem(value: str) -> str | None:
    """Why Envoy's gRPC-JSON transcoder could not use this base64 FileDescriptorSet, or None:
    it must decode, parse, build (every import included) and define at least one service."""
    from google.protobuf import descriptor_pb2, descriptor_pool

    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return "must be base64"
    if len(raw) > MAX_DESCRIPTOR_BYTES:
        return f"is {len(raw)} bytes; at most {MAX_DESCRIPTOR_BYTES} (64 KiB) are allowed"
    try:
        files = descriptor_pb2.FileDescriptorSet.FromString(raw)
    except Exception:  # noqa: BLE001 - any parse error means the same to the user
        return "is not a serialized protobuf FileDescriptorSet"
    pool = descriptor_pool.DescriptorPool()
    try:
        for file in files.file:
            pool.Add(file)
        for file in files.file:
            pool.FindFileByName(file.name)
    except Exception as error:  # noqa: BLE001
        return f"does not build: {str(error)[:200]} (include every imported file)"
    if not any(file.service for file in files.file):
        return "defines no service"
    return None


MAX_ENDPOINTS = 64


class IPEndpointSerializer(StrictSerializer):
    address = serializers.CharField(max_length=45, help_text="an IPv4 or IPv6 address")
    port = port_field()

    def validate_address(self, value: str) -> str:
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise serializers.ValidationError("must be an IPv4 or IPv6 address") from None
        if getattr(address, "scope_id", None):
            raise serializers.ValidationError("must not carry a zone (such as %eth0)")
        if address.is_unspecified or address.is_multicast:
            raise serializers.ValidationError(
                "must be a unicast address (not unspecified or multicast)"
            )
        return str(address)  # canonical form: 2001:DB8:0::1 → 2001:db8::1


class FQDNEndpointSerializer(StrictSerializer):
    hostname = serializers.CharField(max_length=253, trim_whitespace=False)
    port = port_field()

    def validate_hostname(self, value: str) -> str:
        if not PRECISE_HOSTNAME.fullmatch(value):
            raise serializers.ValidationError(PRECISE_HOSTNAME_MESSAGE)
        if is_ip_address(value) or loose_ipv4(value):
            raise serializers.ValidationError("is an IP address: use an ip endpoint instead")
        return value


class EndpointSerializer(StrictSerializer):
    ip = IPEndpointSerializer(required=False)
    fqdn = FQDNEndpointSerializer(required=False)

    def validate(self, data):
        if ("ip" in data) == ("fqdn" in data):
            raise serializers.ValidationError("must have exactly one of ip or fqdn")
        return data


class BackendTLSSerializer(StrictSerializer):
    sni = precise_hostname_field(
        required=False, help_text="server name (SNI) sent to the backend; default: none"
    )
    caCertificateRefs = ObjectRefSerializer(
        many=True,
        required=False,
        max_length=8,
        help_text="certificates whose chains verify the backend's certificate; "
        "without any, it is not verified",
    )


class BackendDNSSerializer(StrictSerializer):
    """How a backend's host names are followed (docs/discovery.md#dns-backends)."""

    resolution = serializers.ChoiceField(
        choices=["Strict", "Logical"],
        default="Strict",
        help_text="Strict: every address of every name is an endpoint (Envoy STRICT_DNS); "
        "Logical: the first address of the one name (LOGICAL_DNS, for large DNS-balanced "
        "services)",
    )
    respectTtl = serializers.BooleanField(
        default=True, help_text="re-resolve when the answer's TTL runs out"
    )
    refreshRate = duration_field(
        1000,
        default="30s",
        help_text="how often names are resolved again (with respectTtl: when the answer has "
        "no TTL); at least 1s",
    )

    def validate_refreshRate(self, value):
        if to_ms(value) > 24 * 3_600_000:
            raise serializers.ValidationError("must be at most 24h")
        return value


class BackendSpecSerializer(StrictSerializer):
    endpoints = EndpointSerializer(many=True, allow_empty=False, max_length=MAX_ENDPOINTS)
    dns = BackendDNSSerializer(
        required=False, help_text="for host-name endpoints: resolution, TTL, refresh rate"
    )
    appProtocol = serializers.ChoiceField(choices=APP_PROTOCOLS, default="HTTP/1.1")
    tls = BackendTLSSerializer(required=False)
    grpcDescriptorSet = serializers.CharField(
        required=False,
        max_length=MAX_DESCRIPTOR_BASE64,
        help_text="base64 protobuf FileDescriptorSet of the backend's gRPC services (with its "
        "imports): REST clients call them as JSON (docs/grpc.md); at most 64 KiB",
    )

    def validate_grpcDescriptorSet(self, value):
        problem = descriptor_set_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value

    def validate(self, data):
        dns = data.get("dns")
        if dns is not None and "ip" in data["endpoints"][0]:
            raise serializers.ValidationError(
                {"dns": ["only for host-name (fqdn) endpoints; these are IP addresses"]}
            )
        if dns and dns["resolution"] == "Logical" and len(data["endpoints"]) != 1:
            raise serializers.ValidationError(
                {"endpoints": ["resolution Logical takes exactly one endpoint (one host name)"]}
            )
        if "grpcDescriptorSet" in data and data.get("appProtocol") not in ("gRPC", "h2c"):
            raise serializers.ValidationError(
                {
                    "grpcDescriptorSet": [
                        "needs appProtocol gRPC (the backend is called over HTTP/2)"
                    ]
                }
            )
        return data

    def validate_endpoints(self, endpoints):
        errors: list = [{} for _ in endpoints]
        kind = "ip" if "ip" in endpoints[0] else "fqdn"
        seen: dict[tuple, int] = {}
        for index, endpoint in enumerate(endpoints):
            this = "ip" if "ip" in endpoint else "fqdn"
            if this != kind:
                errors[index] = [
                    f"cannot mix ip and fqdn endpoints in one backend (endpoints[0] is {kind})"
                ]
                continue
            value = endpoint[this]
            key = (value.get("address") or value.get("hostname"), value["port"])
            if key in seen:
                errors[index] = {this: [f"duplicates endpoints[{seen[key]}]"]}
            seen.setdefault(key, index)
        policy = current_policy()
        for index, endpoint in enumerate(endpoints):
            if errors[index]:
                continue
            this = "ip" if "ip" in endpoint else "fqdn"
            field = "address" if this == "ip" else "hostname"
            reason = policy.check(endpoint[this][field], endpoint[this]["port"])
            if reason:
                errors[index] = {this: {field: [reason]}}
        if any(errors):
            raise serializers.ValidationError(errors)
        return endpoints

    def validate_tls(self, tls):
        names = [ref["name"] for ref in tls.get("caCertificateRefs", [])]
        errors = {}
        for index, name in enumerate(names):
            if name in names[:index]:
                errors[index] = {"name": [f"duplicates caCertificateRefs[{names.index(name)}]"]}
        if errors:
            raise serializers.ValidationError({"caCertificateRefs": errors})
        return tls


def validate_backend_spec(raw) -> dict:
    """The spec with defaults filled in, or ValidationFailed naming each bad field."""
    return run_spec_serializer(BackendSpecSerializer, raw)


def endpoint_kind(spec: dict) -> str:
    """``ip`` (an Envoy STATIC cluster) or ``fqdn`` (STRICT_DNS)."""
    return "ip" if "ip" in spec["endpoints"][0] else "fqdn"
