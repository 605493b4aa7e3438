"""The operators' tables (django-tables2), over the API's FilterSets where the API has one."""

import django_tables2 as tables
from django.urls import reverse

from frontend.tables import badge


class OpsTenantTable(tables.Table):
    slug = tables.Column(linkify=lambda record: reverse("frontend:ops-tenant", args=[record.slug]))
    display_name = tables.Column(verbose_name="Display name")
    plan = tables.Column(accessor="plan__name", order_by="plan__name", verbose_name="Plan")
    suspended = tables.Column(verbose_name="State")
    gateway_count = tables.Column(verbose_name="Gateways")
    member_count = tables.Column(verbose_name="Members")
    created_at = tables.DateTimeColumn(format="Y-m-d", verbose_name="Created")

    class Meta:
        fields = ["slug", "display_name", "plan", "suspended", "gateway_count", "member_count",
                  "created_at"]  # fmt: skip
        order_by = "slug"
        empty_text = "No tenants match."
        attrs = {"class": "data"}

    def render_suspended(self, value):
        return badge("suspended", "bad") if value else badge("active", "good")


class OpsPlanTable(tables.Table):
    name = tables.Column(linkify=lambda record: reverse("frontend:ops-plan", args=[record.name]))
    display_name = tables.Column(verbose_name="Display name")
    max_gateways = tables.Column(verbose_name="Gateways")
    max_replicas_per_gateway = tables.Column(verbose_name="Replicas / gateway")
    max_routes_per_gateway = tables.Column(verbose_name="Routes / gateway")
    max_backends = tables.Column(verbose_name="Backends")
    allowed_sizes = tables.Column(orderable=False, verbose_name="Sizes")
    tenant_count = tables.Column(verbose_name="Tenants")

    class Meta:
        fields = [
            "name",
            "display_name",
            "max_gateways",
            "max_replicas_per_gateway",
            "max_routes_per_gateway",
            "max_backends",
            "allowed_sizes",
            "tenant_count",
        ]
        order_by = "name"
        empty_text = "No plans."
        attrs = {"class": "data"}

    def render_allowed_sizes(self, value):
        return ", ".join(value) or "—"


class OpsClusterTable(tables.Table):
    name = tables.Column(linkify=lambda record: reverse("frontend:ops-cluster", args=[record.name]))
    in_cluster = tables.BooleanColumn(verbose_name="Credentials", yesno="in-cluster,kubeconfig")
    exposure = tables.Column()
    xds = tables.Column(accessor="xds_address", verbose_name="xDS")
    plans = tables.Column(accessor="pk", orderable=False, verbose_name="Plans")
    gateway_count = tables.Column(verbose_name="Gateways")

    class Meta:
        fields = ["name", "in_cluster", "exposure", "xds", "plans", "gateway_count"]
        order_by = "name"
        empty_text = "No cluster is registered: Kubernetes gateways have nowhere to run."
        attrs = {"class": "data"}

    def render_xds(self, value, record):
        return f"{value}:{record.xds_port}"

    def render_plans(self, record):
        return ", ".join(sorted(plan.name for plan in record.plans.all())) or "—"
