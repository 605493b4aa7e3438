"""Operators' tenant pages: list, create (with the first owner), detail, change plan,
suspend and resume. Every write is ``tenants.services``', as from the API."""

from django import forms
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from frontend.ops_access import operator_required, ops_context
from frontend.ops_forms import TenantCreateForm, TenantPlanForm, checked
from frontend.ops_tables import OpsTenantTable
from frontend.views.common import posted, render_form, submit, table_page, version
from frontend.views.tenant import quota_use
from tenants import services
from tenants.audit import Actor
from tenants.filters import TenantFilter
from tenants.models import Tenant
from tenants.serializers import TenantCreateSerializer

SECTION = "frontend:ops-tenants"


def tenant_url(tenant: Tenant, view: str = "frontend:ops-tenant") -> str:
    return reverse(view, args=[tenant.slug])


def get_tenant(slug: str) -> Tenant:
    return get_object_or_404(Tenant.objects.select_related("plan"), slug=slug)


@operator_required
def tenant_list(request):
    rows = Tenant.objects.select_related("plan").annotate(
        gateway_count=Count("gateways", distinct=True),
        member_count=Count("memberships", distinct=True),
    )
    filterset, table = table_page(request, TenantFilter, rows, OpsTenantTable, "Tenants")
    context = ops_context(SECTION, filter=filterset, table=table,
                          new_url=reverse("frontend:ops-tenant-new"))  # fmt: skip
    return render(request, "frontend/ops/tenants/list.html", context)


@operator_required
def tenant_create(request):
    form = TenantCreateForm(posted(request))

    def write():
        body = checked(TenantCreateSerializer, form.body())
        return services.create_tenant(
            Actor.from_request(request), body["slug"], body["owner"],
            display_name=body.get("display_name", ""), plan=body.get("plan", ""),
        )  # fmt: skip

    answer = submit(request, form, TenantCreateForm.FIELDS, write, "Tenant created.",
                    tenant_url, conflict_field="slug")  # fmt: skip
    if answer is not None:
        return answer
    return render_form(request, "frontend/ops/tenants/form.html", ops_context(SECTION, form=form))


@operator_required
def tenant_detail(request, slug):
    tenant = get_tenant(slug)
    gateways = tenant.gateways.order_by("name").only("name", "status", "spec")[:50]
    context = ops_context(
        SECTION, tenant_row=tenant, gateways=gateways, quotas=quota_use(tenant),
        gateway_total=tenant.gateways.count(), member_count=tenant.memberships.count(),
        owners=list(tenant.memberships.filter(role="owner").values_list("user__username",
                                                                         flat=True)),
    )  # fmt: skip
    return render(request, "frontend/ops/tenants/detail.html", context)


@operator_required
def tenant_plan(request, slug):
    tenant = get_tenant(slug)
    initial = {"plan": tenant.plan.name, "resource_version": tenant.resource_version}
    form = TenantPlanForm(posted(request), initial=initial)

    def write():
        expected = version(form.cleaned_data["resource_version"])
        changes = {"plan": form.cleaned_data["plan"]}
        return services.update_tenant(Actor.from_request(request), tenant, changes, expected)

    answer = submit(request, form, TenantPlanForm.FIELDS, write, "Plan changed.", tenant_url)
    if answer is not None:
        return answer
    context = ops_context(SECTION, tenant_row=tenant, form=form)
    return render_form(request, "frontend/ops/tenants/plan.html", context)


@operator_required
def tenant_suspension(request, slug, suspend: bool):
    """Suspend a tenant (``/suspend/``) or resume it (``/resume/``), after confirmation. A
    tenant already in that state is shown as it is (a repeated POST changes nothing)."""
    tenant = get_tenant(slug)
    if tenant.suspended == suspend:
        return redirect(tenant_url(tenant))
    form = forms.Form(posted(request))  # no fields: it carries the service's refusal

    def write():
        return services.update_tenant(Actor.from_request(request), tenant,
                                      {"suspended": suspend})  # fmt: skip

    done = f"Tenant {tenant.slug} {'suspended' if suspend else 'resumed'}."
    answer = submit(request, form, {}, write, done, tenant_url)
    if answer is not None:
        return answer
    context = ops_context(SECTION, tenant_row=tenant, form=form, suspend=suspend)
    return render_form(request, "frontend/ops/tenants/suspension.html", context)
