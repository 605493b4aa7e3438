"""Operators' plan pages: list, create, edit (quotas and allowed sizes), through
``tenants.services`` and the API's plan serializer."""

from django.db.models import Count
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from frontend.ops_access import operator_required, ops_context
from frontend.ops_forms import PlanForm, checked
from frontend.ops_tables import OpsPlanTable
from frontend.views.common import posted, render_form, submit, version
from tenants import services
from tenants.audit import Actor
from tenants.models import Plan
from tenants.serializers import PlanSerializer, PlanUpdateSerializer

SECTION = "frontend:ops-plans"


def plan_url(plan: Plan) -> str:
    return reverse("frontend:ops-plan", args=[plan.name])


@operator_required
def plan_list(request):
    from django_tables2 import RequestConfig

    rows = Plan.objects.annotate(tenant_count=Count("tenants"))
    table = OpsPlanTable(rows)
    table.caption = "Plans"
    RequestConfig(request, paginate={"per_page": 25}).configure(table)
    context = ops_context(SECTION, table=table, new_url=reverse("frontend:ops-plan-new"))
    return render(request, "frontend/ops/plans/list.html", context)


@operator_required
def plan_create(request):
    form = PlanForm(posted(request), initial={"max_backends": 200, "max_certificates": 100,
                    "max_consumers": 1000, "max_tokens_per_user": 25})  # fmt: skip
    del form.fields["resource_version"]

    def write():
        return services.create_plan(Actor.from_request(request),
                                    checked(PlanSerializer, form.body()))  # fmt: skip

    answer = submit(request, form, PlanForm.FIELDS, write, "Plan created.", plan_url,
                    conflict_field="name")  # fmt: skip
    if answer is not None:
        return answer
    context = ops_context(SECTION, form=form, creating=True)
    return render_form(request, "frontend/ops/plans/form.html", context)


@operator_required
def plan_edit(request, name):
    plan = get_object_or_404(Plan, name=name)
    form = PlanForm(posted(request), initial=PlanForm.initial_for(plan))
    del form.fields["name"]

    def write():
        changes = checked(PlanUpdateSerializer, form.body())
        expected = version(form.cleaned_data["resource_version"])
        return services.update_plan(Actor.from_request(request), plan, changes, expected)

    answer = submit(request, form, PlanForm.FIELDS, write, "Plan saved.", plan_url)
    if answer is not None:
        return answer
    tenants = plan.tenants.count()
    context = ops_context(SECTION, form=form, plan=plan, tenant_count=tenants)
    return render_form(request, "frontend/ops/plans/form.html", context)
