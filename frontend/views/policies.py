"""Policies of a gateway (SecurityPolicy, BackendTrafficPolicy, ClientTrafficPolicy): list,
create, detail, edit the spec as YAML or JSON, delete."""

from django import forms
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from frontend import structured_input
from frontend.access import actions, page_context, tenant_access
from frontend.forms import PolicyForm, checked_name
from frontend.tables import PolicyTable
from frontend.views.common import posted, submit, table_page
from frontend.views.editing import expected_version, for_create, form_page
from frontend.views.gateways import gateway_url, get_gateway, tabs
from gateways import services
from gateways.filters import PolicyFilter
from gateways.models import Policy
from tenants.audit import Actor
from tenants.roles import Role

SECTION = "frontend:gateways"


def get_policy(gateway, name: str) -> Policy:
    return get_object_or_404(Policy.objects.select_related("gateway__tenant"), gateway=gateway,
                             name=name)  # fmt: skip


def policy_url(policy: Policy, view: str = "frontend:policy") -> str:
    gateway = policy.gateway
    return reverse(view, args=[gateway.tenant.slug, gateway.name, policy.name])


@login_required
def tenant_policies(request, tenant):
    """Every gateway's policies in one table (each policy belongs to one gateway)."""
    access = tenant_access(request, tenant)
    rows = Policy.objects.filter(gateway__tenant=access.tenant).select_related("gateway__tenant")
    filterset, table = table_page(request, PolicyFilter, rows, PolicyTable, "Policies")
    context = page_context(request, access, "frontend:all-policies", filter=filterset,
                           table=table)  # fmt: skip
    return render(request, "frontend/policies/all.html", context)


@login_required
def policy_list(request, tenant, gateway):
    access = tenant_access(request, tenant)
    gateway = get_gateway(access, gateway)
    rows = Policy.objects.filter(gateway=gateway).select_related("gateway__tenant")
    filterset, table = table_page(request, PolicyFilter, rows, PolicyTable, "Policies")
    table.columns.hide("gateway")  # the page is one gateway's
    context = page_context(
        request, access, SECTION, gateway=gateway, filter=filterset, table=table,
        tabs=tabs(gateway, "policies"),
        actions=actions(access, ("New policy", gateway_url(gateway, "frontend:policy-new"), False)),
    )  # fmt: skip
    return render(request, "frontend/policies/list.html", context)


@login_required
def policy_create(request, tenant, gateway):
    access = tenant_access(request, tenant, write=Role.EDITOR)
    gateway = get_gateway(access, gateway)
    form = for_create(PolicyForm(posted(request), initial={"kind": "SecurityPolicy"}))

    def write():
        data = form.cleaned_data
        name = checked_name(data["name"])
        return services.create_policy(
            Actor.from_request(request), gateway, name, data["kind"], form.spec_value()
        )

    return form_page(
        request, form, write, fields=PolicyForm.FIELDS, done="Policy created.",
        success_url=policy_url, conflict_field="name", template="frontend/policies/form.html",
        context=lambda: page_context(request, access, SECTION, gateway=gateway, creating=True),
    )  # fmt: skip


@login_required
def policy_detail(request, tenant, gateway, policy):
    access = tenant_access(request, tenant)
    gateway = get_gateway(access, gateway)
    policy = get_policy(gateway, policy)
    context = page_context(
        request, access, SECTION, gateway=gateway, policy=policy,
        conditions=policy.status.get("conditions", []),
        spec_yaml=structured_input.dump(policy.spec), tabs=tabs(gateway, "policies"),
        actions=actions(access, ("Edit", policy_url(policy, "frontend:policy-edit"), False),
                        ("Delete", policy_url(policy, "frontend:policy-delete"), True)),
    )  # fmt: skip
    return render(request, "frontend/policies/detail.html", context)


@login_required
def policy_edit(request, tenant, gateway, policy):
    access = tenant_access(request, tenant, write=Role.EDITOR)
    gateway = get_gateway(access, gateway)
    policy = get_policy(gateway, policy)
    initial = {"spec": structured_input.dump(policy.spec), "kind": policy.kind,
               "resource_version": policy.resource_version}  # fmt: skip
    form = PolicyForm(posted(request), initial=initial)
    del form.fields["name"], form.fields["kind"]

    def write():
        return services.replace_policy_spec(Actor.from_request(request), policy,
                                            form.spec_value(), expected_version(form))  # fmt: skip

    return form_page(
        request, form, write, fields=PolicyForm.FIELDS, done="Policy saved.",
        success_url=policy_url, template="frontend/policies/form.html",
        context=lambda: page_context(request, access, SECTION, gateway=gateway, policy=policy),
    )  # fmt: skip


@login_required
def policy_delete(request, tenant, gateway, policy):
    access = tenant_access(request, tenant, write=Role.EDITOR)
    gateway = get_gateway(access, gateway)
    policy = get_policy(gateway, policy)
    form = forms.Form(posted(request))  # no fields: it carries the service's refusal

    def write():
        services.delete_policy(Actor.from_request(request), policy)

    answer = submit(request, form, {}, write, f"Policy {policy.name} deleted.",
                    gateway_url(gateway, "frontend:policies"))  # fmt: skip
    if answer is not None:
        return answer
    context = page_context(request, access, SECTION, gateway=gateway, policy=policy, form=form)
    return render(request, "frontend/policies/delete.html", context)
