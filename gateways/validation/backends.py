"""Validation of backend specs (Envoy Gateway's ``Backend``, simplified).

A backend's endpoints are all IP addresses (an Envoy STATIC cluster) or all DNS names (a
STRICT_DNS cluster): Envoy has no cluster type that mixes them. Every endpoint must be one the
operator's egress policy lets gateways reach (``gateways/egress.py``).

Instead of ``endpoints``, a backend may name a Kubernetes Service (``kubernetesService``: a
registered cluster, a namespace the operator granted to the tenant there, the Service and its
port): its endpoints come from the Service's EndpointSlices (an Envoy EDS cluster,
docs/discovery.md). Which clusters and namespaces a tenant may name is checked by
``validate_backend_spec`` when given the tenant.
"""

import base64
import binascii
import ipaddress

from rest_framework import serializers

from config.errors import ValidationFailed
from config.validators import DNS_LABEL, DNS_LABEL_MESSAGE
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


def dns_label_field(**kwargs) -> serializers.CharField:
    def check(value: str) -> None:
        if not DNS_LABEL.match(value):
            raise serializers.ValidationError(DNS_LABEL_MESSAGE)

    return serializers.CharField(max_length=63, validators=[check], **kwargs)


class KubernetesServiceSerializer(StrictSerializer):
    """Gateway API's backendRef to a Service, with the registered cluster it lives in."""

    cluster = dns_label_field(
        required=False,
        help_text="a registered cluster your plan may use; default: the first (by name) "
        "that grants your tenant the namespace",
    )
    namespace = dns_label_field(help_text="a namespace the operator granted to your tenant")
    name = dns_label_field(help_text="the Service's name")
    port = port_field(help_text="the Service's port (its number, as in a Gateway API backendRef)")


class BackendSpecSerializer(StrictSerializer):
    endpoints = EndpointSerializer(
        many=True, allow_empty=False, max_length=MAX_ENDPOINTS, required=False
    )
    kubernetesService = KubernetesServiceSerializer(
        required=False,
        help_text="instead of endpoints: a Kubernetes Service whose ready endpoints receive "
        "the traffic, followed as pods come and go (docs/discovery.md)",
    )
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
        if ("endpoints" in data) == ("kubernetesService" in data):
            where = "kubernetesService" if "kubernetesService" in data else "endpoints"
            message = (
                "This field is required."
                if where == "endpoints"
                else "cannot be used with endpoints: a backend has one or the other"
            )
            raise serializers.ValidationError({where: [message]})
        dns = data.get("dns")
        if dns is not None and "endpoints" not in data:
            raise serializers.ValidationError({"dns": ["only for host-name (fqdn) endpoints"]})
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


def validate_backend_spec(raw, tenant=None) -> dict:
    """The spec with defaults filled in, or ValidationFailed naming each bad field. With the
    ``tenant``, a ``kubernetesService`` must name a cluster its plan may use and a namespace the
    operator granted it there; the cluster is filled in when omitted."""
    spec = run_spec_serializer(BackendSpecSerializer, raw)
    if tenant is not None and "kubernetesService" in spec:
        spec["kubernetesService"] = check_kubernetes_service(tenant, spec["kubernetesService"])
    return spec


def check_kubernetes_service(tenant, ref: dict) -> dict:
    """The reference with its cluster filled in, or ValidationFailed at its JSON path. Another
    tenant's grant never counts, and a cluster the plan may not use reads the same as one that
    does not exist (nothing tells a tenant which clusters others use)."""
    from provisioning.discovery.grants import cluster_granting, usable_clusters

    path = "spec.kubernetesService"
    usable = usable_clusters(tenant)
    if "cluster" in ref:
        cluster = next((c for c in usable if c.name == ref["cluster"]), None)
        if cluster is None:
            raise ValidationFailed.one(
                f"{path}.cluster", f"{ref['cluster']!r} is not a cluster your plan may use"
            )
        candidates = [cluster]
    else:
        candidates = usable
    cluster = cluster_granting(tenant, candidates, ref["namespace"])
    if cluster is None:
        where = "any cluster your plan may use"
        if "cluster" in ref:
            where = f"cluster {candidates[0].name!r}"
        raise ValidationFailed.one(
            f"{path}.namespace",
            f"namespace {ref['namespace']!r} of {where} is not granted to your tenant "
            "(an operator grants namespaces: docs/discovery.md)",
        )
    return {"cluster": cluster.name, **{k: v for k, v in ref.items() if k != "cluster"}}


def endpoint_kind(spec: dict) -> str:
    """``ip`` (an Envoy STATIC cluster), ``fqdn`` (STRICT_DNS) or ``kubernetesService`` (EDS)."""
    if "kubernetesService" in spec:
        return "kubernetesService"
    return "ip" if "ip" in spec["endpoints"][0] else "fqdn"
