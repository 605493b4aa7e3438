"""The operators' admin for Kubernetes clusters. A kubeconfig is write-only: the form never
shows the stored one, and leaving the field empty on a change keeps it.

Clusters are platform settings with no tenant-facing service: every save and delete made here
(bulk deletes included) leaves an audit event, without the kubeconfig. A cluster gateways are
placed on cannot be deleted (the placements protect it)."""

from django import forms
from django.contrib import admin

from provisioning.models import KubernetesCluster
from tenants import audit
from tenants.audit import Actor


def snapshot(cluster: KubernetesCluster) -> dict:
    return {
        "name": cluster.name,
        "inCluster": cluster.in_cluster,
        "context": cluster.context,
        "exposure": cluster.exposure,
        "envoyImage": cluster.envoy_image,
        "xdsAddress": cluster.xds_address,
        "xdsPort": cluster.xds_port,
    }


class KubernetesClusterForm(forms.ModelForm):
    kubeconfig = forms.CharField(
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 8, "autocomplete": "off"}),
        help_text="paste a kubeconfig; stored encrypted and never shown again "
        "(leave empty to keep the stored one)",
    )

    class Meta:
        model = KubernetesCluster
        fields = [
            "name",
            "in_cluster",
            "kubeconfig",
            "context",
            "exposure",
            "envoy_image",
            "xds_address",
            "xds_port",
            "plans",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial["kubeconfig"] = ""  # never render the stored secret
        self.had_kubeconfig = bool(self.instance.pk and self.instance.kubeconfig)

    def clean_kubeconfig(self):
        value = self.cleaned_data.get("kubeconfig", "")
        if not value and self.had_kubeconfig and not self.data.get("in_cluster"):
            return self.instance.kubeconfig  # unchanged
        return value


@admin.register(KubernetesCluster)
class KubernetesClusterAdmin(admin.ModelAdmin):
    form = KubernetesClusterForm
    list_display = ["name", "in_cluster", "exposure", "envoy_image", "xds_address", "xds_port"]
    search_fields = ["name"]
    filter_horizontal = ["plans"]

    def save_model(self, request, obj, form, change):
        before = snapshot(KubernetesCluster.objects.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)
        action = "update" if change else "create"
        audit.record(Actor.from_request(request), action, "kubernetes-cluster", obj.name,
                     tenant=None, before=before, after=snapshot(obj))  # fmt: skip

    def delete_model(self, request, obj):
        self.delete_queryset(request, KubernetesCluster.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        actor = Actor.from_request(request)
        for cluster in queryset:
            audit.record(actor, "delete", "kubernetes-cluster", cluster.name, tenant=None,
                         before=snapshot(cluster))  # fmt: skip
            cluster.delete()
