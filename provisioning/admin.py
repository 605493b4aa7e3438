"""The operators' admin for Kubernetes clusters. A kubeconfig is write-only: the form never
shows the stored one, and leaving the field empty on a change keeps it.

The admin writes nothing itself: saves and deletes (bulk deletes included) call
``provisioning.cluster_services``, like the API, the operators' console and ``manage.py
clusters``: validated, audited without the kubeconfig, the gateways on a changed cluster
reconciled, and a cluster gateways run on refused deletion (the message names them).
"""

from django import forms
from django.contrib import admin

from provisioning import cluster_services
from provisioning.discovery import grants
from provisioning.models import DiscoveryGrant, KubernetesCluster
from tenants.admin_base import ServiceAdmin
from tenants.audit import Actor

# The form's fields the services take (all of them: the form has no other).
_FIELDS = ["name", "in_cluster", "kubeconfig", "context", "exposure", "envoy_image",
           "xds_address", "xds_port", "plans"]  # fmt: skip


def _service_value(field: str, value):
    return sorted(plan.name for plan in value) if field == "plans" else value


class _SecretTextarea(forms.Textarea):
    """Never renders a value: not even what was typed, when the form comes back with errors."""

    def format_value(self, value):
        return None


class KubernetesClusterForm(forms.ModelForm):
    kubeconfig = forms.CharField(
        required=False,
        strip=False,
        widget=_SecretTextarea(attrs={"rows": 8, "autocomplete": "off"}),
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
class KubernetesClusterAdmin(ServiceAdmin):
    form = KubernetesClusterForm
    list_display = ["name", "in_cluster", "exposure", "envoy_image", "xds_address", "xds_port"]
    search_fields = ["name"]
    filter_horizontal = ["plans"]

    def get_readonly_fields(self, request, obj=None):
        return ["name"] if obj is not None else []  # a cluster's name cannot be changed

    def save_model(self, request, obj, form, change):
        actor = Actor.from_request(request)
        if change:
            changes = {field: _service_value(field, form.cleaned_data[field])
                       for field in form.changed_data if field in _FIELDS}  # fmt: skip
            cluster_services.update_cluster(actor, obj, changes)
        else:
            fields = {field: _service_value(field, form.cleaned_data[field])
                      for field in _FIELDS if field in form.cleaned_data}  # fmt: skip
            saved = cluster_services.register_cluster(actor, fields)
            obj.pk, obj._state.adding, obj._state.db = saved.pk, False, saved._state.db

    def save_related(self, request, form, formsets, change):
        """The plans were set by the service (``form.save_m2m`` would set them unaudited)."""

    def service_delete(self, actor, obj):
        cluster_services.delete_cluster(actor, obj)


@admin.register(DiscoveryGrant)
class DiscoveryGrantAdmin(ServiceAdmin):
    """Which namespaces of a cluster a tenant's backends may name (docs/discovery.md). A grant
    is added or removed, never edited; both are audited, and a removal withdraws the endpoints
    from the tenant's gateways at once."""

    list_display = ["cluster", "tenant", "namespace", "created_at"]
    list_filter = ["cluster"]
    search_fields = ["tenant__slug", "namespace"]

    def get_readonly_fields(self, request, obj=None):
        return ["cluster", "tenant", "namespace"] if obj is not None else []

    def save_model(self, request, obj, form, change):
        if change:
            return
        saved = grants.grant_namespace(
            Actor.from_request(request), obj.cluster, obj.tenant, obj.namespace
        )
        obj.pk, obj._state.adding, obj._state.db = saved.pk, False, saved._state.db

    def service_delete(self, actor, obj):
        grants.revoke_grant(actor, obj)
