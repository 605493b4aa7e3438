"""The operators' admin for Kubernetes clusters. A kubeconfig is write-only: the form never
shows the stored one, and leaving the field empty on a change keeps it."""

from django import forms
from django.contrib import admin

from provisioning.models import KubernetesCluster


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
