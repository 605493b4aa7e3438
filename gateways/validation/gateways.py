"""Validation of gateway specs: one place, used by the API, the console and the commands.

Errors name the JSON path of the offending value (``spec.listeners[1].port``).
"""

from rest_framework import serializers

from gateways.route_kinds import allows
from gateways.sizes import SIZES
from gateways.validation.common import HOSTNAME, run_spec_serializer
from tenants.serializers import StrictSerializer, dns_label_field

RUNTIMES = ["local", "kubernetes"]
PROTOCOLS = ["HTTP", "HTTPS"]
# Layer-4 listeners (docs/tcp-tls.md): TCP forwards connections, TLS passes them through by SNI.
PROTOCOLS += ["TCP", "TLS"]
# A Gantry extension (Gateway API has no Dubbo): a listener whose connections speak the Dubbo
# protocol, routed by DubboRoutes (docs/dubbo.md).
DUBBO = "Dubbo"
PROTOCOLS += [DUBBO]


def accepts_kind(listener: dict, kind: str | None) -> bool:
    """Whether a listener (its spec) takes routes of ``kind`` (None: an HTTPRoute)."""
    return allows(listener, kind or "HTTPRoute")


TLS_MODES = ["Terminate", "Passthrough"]


class ObjectRefSerializer(StrictSerializer):
    name = dns_label_field()


class ListenerTLSSerializer(StrictSerializer):
    mode = serializers.ChoiceField(choices=TLS_MODES, default="Terminate")
    certificateRefs = ObjectRefSerializer(
        many=True, allow_empty=False, max_length=64, required=False,
        help_text="Terminate: the certificates served; Passthrough: none",
    )  # fmt: skip

    def validate(self, data):
        if data["mode"] == "Terminate" and "certificateRefs" not in data:
            raise serializers.ValidationError({"certificateRefs": ["required for mode Terminate"]})
        if data["mode"] == "Passthrough" and "certificateRefs" in data:
            raise serializers.ValidationError(
                {"certificateRefs": ["not allowed for mode Passthrough (the backend serves TLS)"]}
            )
        return data


class ListenerSerializer(StrictSerializer):
    name = dns_label_field()
    protocol = serializers.ChoiceField(choices=PROTOCOLS)
    port = serializers.IntegerField(min_value=1, max_value=65535)
    hostname = serializers.RegexField(
        HOSTNAME,
        max_length=253,
        required=False,
        error_messages={"invalid": "must be a lowercase DNS name, optionally starting with '*.'"},
    )
    tls = ListenerTLSSerializer(required=False)

    def validate(self, data):
        protocol, tls = data["protocol"], data.get("tls")
        if protocol in ("HTTPS", "TLS") and tls is None:
            raise serializers.ValidationError({"tls": [f"required for protocol {protocol}"]})
        if protocol in ("HTTP", "TCP", DUBBO) and tls is not None:
            raise serializers.ValidationError({"tls": [f"not allowed for protocol {protocol}"]})
        if protocol == "HTTPS" and tls["mode"] != "Terminate":
            raise serializers.ValidationError({"tls": {"mode": [
                "HTTPS listeners terminate TLS; use protocol TLS to pass TLS through"
            ]}})  # fmt: skip
        if protocol == "TLS" and tls["mode"] != "Passthrough":
            raise serializers.ValidationError({"tls": {"mode": [
                "protocol TLS supports mode Passthrough only (TLSRoutes by SNI); "
                "use protocol HTTPS to terminate TLS"
            ]}})  # fmt: skip
        if protocol == "TCP" and "hostname" in data:
            raise serializers.ValidationError(
                {"hostname": ["not allowed for protocol TCP (a TCP connection carries no name)"]}
            )
        if protocol == DUBBO and "hostname" in data:
            raise serializers.ValidationError(
                {"hostname": ["not allowed for protocol Dubbo (a Dubbo call names no host)"]}
            )
        return data


class AutoscalingSerializer(StrictSerializer):
    """Kubernetes runtime: a HorizontalPodAutoscaler on CPU between the two bounds."""

    minReplicas = serializers.IntegerField(min_value=1, max_value=1000)
    maxReplicas = serializers.IntegerField(min_value=1, max_value=1000)
    targetCPUUtilizationPercentage = serializers.IntegerField(
        min_value=1, max_value=100, default=70
    )

    def validate(self, data):
        if data["maxReplicas"] < data["minReplicas"]:
            raise serializers.ValidationError({"maxReplicas": ["must be at least minReplicas"]})
        return data


def _default_listeners():
    return [{"name": "http", "protocol": "HTTP", "port": 80}]


class GatewaySpecSerializer(StrictSerializer):
    size = serializers.ChoiceField(choices=list(SIZES), default="small")
    replicas = serializers.IntegerField(min_value=1, max_value=1000, default=1)
    runtime = serializers.ChoiceField(choices=RUNTIMES, default="local")
    autoscaling = AutoscalingSerializer(required=False)
    listeners = ListenerSerializer(
        many=True, max_length=64, allow_empty=False, default=_default_listeners
    )

    def validate_listeners(self, listeners):
        errors: list = [{} for _ in listeners]
        seen_names: dict[str, int] = {}
        by_port: dict[int, list[int]] = {}
        for index, listener in enumerate(listeners):
            if listener["name"] in seen_names:
                errors[index]["name"] = [f"duplicates listeners[{seen_names[listener['name']]}]"]
            seen_names.setdefault(listener["name"], index)
            by_port.setdefault(listener["port"], []).append(index)
        for indexes in by_port.values():
            first = listeners[indexes[0]]
            hostnames = set()
            for index in indexes:
                listener = listeners[index]
                if listener["protocol"] != first["protocol"]:
                    errors[index]["protocol"] = [
                        f"port {listener['port']} is already used by listeners[{indexes[0]}] "
                        f"with protocol {first['protocol']}"
                    ]
                host = listener.get("hostname", "")
                tcp = listener["protocol"] == first["protocol"] == "TCP"
                if tcp and index != indexes[0]:
                    errors[index].setdefault("port", [
                        f"port {listener['port']} is already used by listeners[{indexes[0]}]: "
                        "a TCP listener has its port to itself"
                    ])  # fmt: skip
                elif host in hostnames:
                    errors[index]["hostname"] = [
                        f"another listener on port {listener['port']} has the same hostname"
                    ]
                hostnames.add(host)
        if any(errors):
            raise serializers.ValidationError(errors)
        return listeners

    def validate(self, data):
        if "autoscaling" in data and data["runtime"] != "kubernetes":
            raise serializers.ValidationError(
                {"autoscaling": ["needs runtime kubernetes (local replicas are a fixed count)"]}
            )
        return data


def validate_gateway_spec(raw) -> dict:
    """The spec with defaults filled in, or ValidationFailed naming each bad field."""
    return run_spec_serializer(GatewaySpecSerializer, raw)
