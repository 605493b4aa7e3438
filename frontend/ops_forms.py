"""The operators' forms. Like the tenant console's (``frontend.forms``) they validate nothing
themselves: the API's body serializers and the services decide, and
``frontend.form_errors.apply_service_error`` shows the verdict at the field it names (each form
says which JSON path of the API's body each of its fields edits)."""

from django import forms

from frontend.forms import SecretTextarea
from gateways.sizes import SIZES
from gateways.validation.common import failed
from provisioning.models import DEFAULT_ENVOY_IMAGE, KubernetesCluster
from tenants.models import Plan


def _text(label: str, help_text: str = "", widget=None, **attrs) -> forms.CharField:
    widget = widget or forms.TextInput()
    widget.attrs.update(attrs)
    return forms.CharField(
        label=label, required=False, strip=False, help_text=help_text, widget=widget
    )


def _number(label: str, help_text: str = "") -> forms.CharField:
    return _text(label, help_text, forms.NumberInput(), min="0", inputmode="numeric")


def plan_choices() -> list[tuple[str, str]]:
    return [(name, f"{display} ({name})") for name, display in
            Plan.objects.order_by("name").values_list("name", "display_name")]  # fmt: skip


def checked(serializer_class, data: dict, **kwargs) -> dict:
    """The API body ``data`` validated by the API's serializer, or ValidationFailed with the
    API's paths and messages."""
    body = serializer_class(data=data, **kwargs)
    if not body.is_valid():
        raise failed(body.errors, prefix="")
    return dict(body.validated_data)


def _number_or_text(value: str):
    """A number input's text as the API would get it: an int when it is one, else the text
    (so the serializer's message is the API's)."""
    text = value.strip()
    return int(text) if text.lstrip("-").isdigit() and len(text) < 19 else text


class TenantCreateForm(forms.Form):
    FIELDS = {"slug": "slug", "display_name": "displayName", "plan": "plan", "owner": "owner"}
    slug = _text("Slug", "lowercase letters, digits and '-': its URLs and API paths",
                 autocomplete="off")  # fmt: skip
    display_name = _text("Display name", "shown in the console (default: the slug)")
    plan = _text("Plan", "", forms.Select())
    owner = _text("First owner", "the username of an existing, active user", autocomplete="off")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["plan"].widget.choices = plan_choices()

    def body(self) -> dict:
        data = self.cleaned_data
        body = {"slug": data["slug"], "owner": data["owner"], "plan": data["plan"]}
        if data["display_name"]:
            body["displayName"] = data["display_name"]
        return body


class TenantPlanForm(forms.Form):
    FIELDS = {"plan": "plan"}
    plan = _text("Plan", "its quotas apply at once; a plan too small for what the tenant "
                 "has is refused", forms.Select())  # fmt: skip
    resource_version = forms.CharField(required=False, widget=forms.HiddenInput())

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["plan"].widget.choices = plan_choices()


class PlanForm(forms.Form):
    FIELDS = {
        "name": "name",
        "display_name": "displayName",
        "description": "description",
        "max_gateways": "maxGateways",
        "max_replicas_per_gateway": "maxReplicasPerGateway",
        "max_routes_per_gateway": "maxRoutesPerGateway",
        "max_backends": "maxBackends",
        "max_certificates": "maxCertificates",
        "max_consumers": "maxConsumers",
        "max_tokens_per_user": "maxTokensPerUser",
        "allowed_sizes": "allowedSizes",
        "access_log_retention_days": "accessLogRetentionDays",
    }
    QUOTAS = [field for field in FIELDS if field.startswith("max_")]
    NUMBERS = [*QUOTAS, "access_log_retention_days"]
    name = _text("Name", "lowercase letters, digits and '-'; cannot be changed later",
                 autocomplete="off")  # fmt: skip
    display_name = _text("Display name")
    description = _text("Description", "", forms.Textarea(attrs={"rows": 3}))
    max_gateways = _number("Gateways")
    max_replicas_per_gateway = _number("Replicas per gateway")
    max_routes_per_gateway = _number("Routes per gateway")
    max_backends = _number("Backends")
    max_certificates = _number("Certificates")
    max_consumers = _number("Consumers")
    max_tokens_per_user = _number("API tokens per user")
    allowed_sizes = forms.MultipleChoiceField(
        label="Allowed gateway sizes", required=False, widget=forms.CheckboxSelectMultiple,
        choices=[(size, size) for size in SIZES],
    )  # fmt: skip
    access_log_retention_days = _number(
        "Access-log retention (days)", "how long each request's access-log entry is kept, 1–3650"
    )
    resource_version = forms.CharField(required=False, widget=forms.HiddenInput())

    @classmethod
    def initial_for(cls, plan: Plan) -> dict:
        initial = {field: getattr(plan, field) for field in cls.FIELDS}
        return initial | {"resource_version": plan.resource_version}

    def body(self) -> dict:
        data = self.cleaned_data
        body = {api: data[field] for field, api in self.FIELDS.items() if field in self.fields}
        for field in self.NUMBERS:
            body[self.FIELDS[field]] = _number_or_text(data[field])
        return body


class ClusterForm(forms.Form):
    FIELDS = {
        "name": "name",
        "in_cluster": "inCluster",
        "kubeconfig": "kubeconfig",
        "context": "context",
        "exposure": "exposure",
        "envoy_image": "envoyImage",
        "xds_address": "xdsAddress",
        "xds_port": "xdsPort",
        "plans": "plans",
    }
    name = _text("Name", "lowercase letters, digits and '-'; cannot be changed later",
                 autocomplete="off")  # fmt: skip
    in_cluster = forms.BooleanField(
        label="In-cluster credentials", required=False,
        help_text="use the service account Gantry itself runs as (no kubeconfig)",
    )  # fmt: skip
    kubeconfig = _text(
        "Kubeconfig",
        "stored encrypted and never shown again (on a change, leave empty to keep the stored one)",
        SecretTextarea(attrs={"rows": 8, "spellcheck": "false", "class": "code",
                              "autocomplete": "off"}),
    )  # fmt: skip
    context = _text("Context", "the kubeconfig context to use (empty: its current context)")
    exposure = _text("Exposure", "how gateways' listeners are exposed", forms.Select(
        choices=KubernetesCluster.Exposure.choices))  # fmt: skip
    envoy_image = _text("Envoy image")
    xds_address = _text("xDS address", "host name or IP the gateways' Envoys dial for their "
                        "configuration")  # fmt: skip
    xds_port = _text("xDS port", "", forms.NumberInput(), min="1", max="65535")
    plans = forms.MultipleChoiceField(
        label="Plans that may use it", required=False, widget=forms.CheckboxSelectMultiple,
        help_text="tenants on these plans may place Kubernetes gateways here",
    )  # fmt: skip

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["plans"].choices = plan_choices()
        self.initial["kubeconfig"] = ""  # never rendered back

    @staticmethod
    def initial_for(cluster: KubernetesCluster | None) -> dict:
        if cluster is None:
            return {"exposure": "LoadBalancer", "envoy_image": DEFAULT_ENVOY_IMAGE,
                    "xds_port": 18000}  # fmt: skip
        return {
            "name": cluster.name, "in_cluster": cluster.in_cluster, "context": cluster.context,
            "exposure": cluster.exposure, "envoy_image": cluster.envoy_image,
            "xds_address": cluster.xds_address, "xds_port": cluster.xds_port,
            "plans": [plan.name for plan in cluster.plans.all()],
        }  # fmt: skip

    def body(self) -> dict:
        data = self.cleaned_data
        body = {api: data[field] for field, api in self.FIELDS.items() if field in self.fields}
        body["xdsPort"] = _number_or_text(data["xds_port"])
        return body
