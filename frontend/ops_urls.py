"""The operators' pages, under ``/ops/`` (included from ``frontend.urls``)."""

from django.shortcuts import redirect
from django.urls import path

from frontend.ops_access import operator_required
from frontend.views.ops import clusters, health, plans, revenue, tenants

TENANT = "tenants/<slug:slug>/"
CLUSTER = "clusters/<slug:name>/"


@operator_required
def ops_home(request):
    return redirect("frontend:ops-tenants")


urlpatterns = [
    path("", ops_home, name="ops-home"),
    path("tenants/", tenants.tenant_list, name="ops-tenants"),
    path("tenants/new/", tenants.tenant_create, name="ops-tenant-new"),
    path(TENANT, tenants.tenant_detail, name="ops-tenant"),
    path(TENANT + "plan/", tenants.tenant_plan, name="ops-tenant-plan"),
    path(
        TENANT + "suspend/", tenants.tenant_suspension, {"suspend": True}, name="ops-tenant-suspend"
    ),  # fmt: skip
    path(
        TENANT + "resume/", tenants.tenant_suspension, {"suspend": False}, name="ops-tenant-resume"
    ),  # fmt: skip
    path("plans/", plans.plan_list, name="ops-plans"),
    path("plans/new/", plans.plan_create, name="ops-plan-new"),
    path("plans/<slug:name>/", plans.plan_edit, name="ops-plan"),
    path("clusters/", clusters.cluster_list, name="ops-clusters"),
    path("clusters/new/", clusters.cluster_create, name="ops-cluster-new"),
    path(CLUSTER, clusters.cluster_detail, name="ops-cluster"),
    path(CLUSTER + "test/", clusters.cluster_test, name="ops-cluster-test"),
    path(CLUSTER + "edit/", clusters.cluster_edit, name="ops-cluster-edit"),
    path(CLUSTER + "delete/", clusters.cluster_delete, name="ops-cluster-delete"),
    path("health/", health.platform_health, name="ops-health"),
    path("revenue/", revenue.revenue, name="ops-revenue"),
]
