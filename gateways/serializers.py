"""API representation of gateways: name, spec (written by the user), status (read-only)."""

from rest_framework import serializers

from gateways.validation import GatewaySpecSerializer
from tenants.serializers import StrictSerializer, dns_label_field


class ConditionSerializer(serializers.Serializer):
    type = serializers.CharField()
    status = serializers.ChoiceField(choices=["True", "False", "Unknown"])
    reason = serializers.CharField()
    message = serializers.CharField(allow_blank=True)
    observedGeneration = serializers.IntegerField()
    lastTransitionTime = serializers.DateTimeField()


class ReplicaCountsSerializer(serializers.Serializer):
    desired = serializers.IntegerField()
    ready = serializers.IntegerField(help_text="replicas running the current config revision")


class GatewayStatusSerializer(serializers.Serializer):
    phase = serializers.CharField(help_text="Pending | Ready | Degraded")
    observedGeneration = serializers.IntegerField()
    conditions = ConditionSerializer(many=True)
    replicas = ReplicaCountsSerializer(required=False)
    listeners = serializers.ListField(
        child=serializers.DictField(), help_text="name, conditions and the url where it answers"
    )


class GatewaySerializer(serializers.Serializer):
    name = serializers.CharField(read_only=True)
    spec = GatewaySpecSerializer(read_only=True)
    status = GatewayStatusSerializer(read_only=True)
    generation = serializers.IntegerField(read_only=True)
    resourceVersion = serializers.CharField(source="resource_version", read_only=True)
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)
    updatedAt = serializers.DateTimeField(source="updated_at", read_only=True)


class GatewayCreateSerializer(StrictSerializer):
    """The body of a create. ``spec`` is validated whole by the service, not here."""

    name = dns_label_field()
    spec = serializers.JSONField(required=False, default=dict)


class GatewayReplaceSerializer(StrictSerializer):
    """PUT/PATCH body: the spec (whole or a merge patch) and an optional resourceVersion."""

    name = serializers.CharField(required=False, help_text="must match the URL if given")
    spec = serializers.JSONField()
    resourceVersion = serializers.CharField(required=False)


class GatewayCreateDoc(StrictSerializer):
    name = dns_label_field()
    spec = GatewaySpecSerializer(required=False)


class GatewayReplaceDoc(StrictSerializer):
    spec = GatewaySpecSerializer()
    resourceVersion = serializers.CharField(required=False)
