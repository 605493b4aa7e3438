"""API shapes of the Kubernetes clusters operators register (camelCase). The kubeconfig is
write-only: answers say only whether one is stored."""

from rest_framework import serializers

from provisioning.models import KubernetesCluster
from tenants.serializers import StrictSerializer, dns_label_field


class PlanNamesField(serializers.ListField):
    """The names of the plans that may use a cluster (sorted), or those to set."""

    def __init__(self, **kwargs):
        super().__init__(child=serializers.CharField(max_length=63), **kwargs)

    def get_attribute(self, cluster):
        return sorted(plan.name for plan in cluster.plans.all())


class ClusterSerializer(StrictSerializer):
    name = dns_label_field()
    inCluster = serializers.BooleanField(
        source="in_cluster", required=False, default=False,
        help_text="use the service account Gantry runs as (no kubeconfig)",
    )  # fmt: skip
    kubeconfig = serializers.CharField(
        write_only=True, required=False, allow_blank=True, trim_whitespace=False,
        max_length=1_000_000,
        help_text="stored encrypted, never returned; on an update, empty or absent keeps it",
    )  # fmt: skip
    hasKubeconfig = serializers.SerializerMethodField()
    context = serializers.CharField(
        required=False, allow_blank=True, max_length=253,
        help_text="the kubeconfig context (empty: its current context)",
    )  # fmt: skip
    exposure = serializers.ChoiceField(
        choices=KubernetesCluster.Exposure.choices, required=False,
        default=KubernetesCluster.Exposure.LOAD_BALANCER,
    )  # fmt: skip
    envoyImage = serializers.CharField(source="envoy_image", required=False, max_length=255)
    xdsAddress = serializers.CharField(
        source="xds_address", max_length=253,
        help_text="host name or IP the Envoys dial for their configuration",
    )  # fmt: skip
    xdsPort = serializers.IntegerField(
        source="xds_port", required=False, min_value=1, max_value=65535, default=18000
    )
    plans = PlanNamesField(
        required=False, default=list,
        help_text="names of the plans whose tenants may place gateways here",
    )  # fmt: skip
    gateways = serializers.SerializerMethodField(help_text="gateways placed on it")
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)
    updatedAt = serializers.DateTimeField(source="updated_at", read_only=True)

    def get_hasKubeconfig(self, cluster) -> bool:
        return bool(cluster.kubeconfig)

    def get_gateways(self, cluster) -> int:
        count = getattr(cluster, "gateway_count", None)
        return cluster.placements.count() if count is None else count


class ClusterUpdateSerializer(ClusterSerializer):
    """A change: every field optional and nothing defaulted (absent: unchanged)."""

    name = dns_label_field(required=False)
    inCluster = serializers.BooleanField(source="in_cluster", required=False)
    exposure = serializers.ChoiceField(choices=KubernetesCluster.Exposure.choices, required=False)
    xdsAddress = serializers.CharField(source="xds_address", max_length=253, required=False)
    xdsPort = serializers.IntegerField(
        source="xds_port", required=False, min_value=1, max_value=65535
    )
    plans = PlanNamesField(required=False)


class ConnectionTestSerializer(serializers.Serializer):
    ok = serializers.BooleanField(read_only=True)
    message = serializers.CharField(read_only=True)
    latencyMs = serializers.FloatField(source="latency_ms", read_only=True, allow_null=True)
    serverVersion = serializers.CharField(source="server_version", read_only=True)
