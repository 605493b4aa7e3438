"""Routes of a gateway: list, create, detail, edit (common fields or the whole spec), delete."""

from django import forms
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from frontend import structured_input
from frontend.access import actions, page_context, tenant_access
from frontend.forms import RouteForm, checked_name
from frontend.tables import RouteTable
from frontend.views.common import posted, submit, table_page
from frontend.views.editing import expected_version, for_create, form_page
from frontend.views.gateways import gateway_url, get_gateway, tabs
from frontend.views.traffic import traffic_charts
from gateways import services
from gateways.filters import RouteFilter
from gateways.models import Route
from tenants.audit import Actor
from tenants.roles import Role


def get_route(gateway, name: str) -> Route:
    """An HTTPRoute of the gateway (GRPCRoutes are managed through the API: docs/grpc.md)."""
    return get_object_or_404(Route.objects.select_related("gateway__tenant"), gateway=gateway,
                             name=name, kind=Route.Kind.HTTP)  # fmt: skip


def route_url(route: Route, view: str = "frontend:route") -> str:
    gateway = route.gateway
    return reverse(view, args=[gateway.tenant.slug, gateway.name, route.name])


def _routes_url(gateway) -> str:
    return reverse("frontend:routes", args=[gateway.tenant.slug, gateway.name])


@login_required
def route_list(request, tenant, gateway):
    access = tenant_access(request, tenant)
    gateway = get_gateway(access, gateway)
    rows = Route.objects.filter(gateway=gateway, kind=Route.Kind.HTTP).select_related(
        "gateway__tenant"
    )
    filterset, table = table_page(request, RouteFilter, rows, RouteTable, "Routes")
    context = page_context(
        request, access, "frontend:gateways", gateway=gateway, filter=filterset, table=table,
        tabs=tabs(gateway, "routes"),
        actions=actions(access, ("New route", gateway_url(gateway, "frontend:route-new"), False)),
    )  # fmt: skip
    return render(request, "frontend/routes/list.html", context)


def _common(form) -> list:
    return [form[name] for name in ("hostnames", "path_type", "path_value", "backend")]


def _mode(request) -> str:
    return "spec" if request.POST.get("mode") == "spec" else "fields"


def _fields(request) -> dict[str, str]:
    return RouteForm.SPEC_FIELDS if _mode(request) == "spec" else RouteForm.COMMON_FIELDS


@login_required
def route_create(request, tenant, gateway):
    access = tenant_access(request, tenant, write=Role.EDITOR)
    gateway = get_gateway(access, gateway)
    form = for_create(RouteForm(posted(request), initial=RouteForm.initial_for({})))

    def write():
        name = checked_name(form.cleaned_data["name"])
        spec = form.spec_from_text() if _mode(request) == "spec" else form.spec_from_fields({})
        return services.create_route(Actor.from_request(request), gateway, name, spec)

    return form_page(
        request, form, write, fields=_fields(request), done="Route created.",
        success_url=route_url, conflict_field="name", template="frontend/routes/form.html",
        context=lambda: page_context(request, access, "frontend:gateways", gateway=gateway,
                                     creating=True, common_fields=_common(form)),
    )  # fmt: skip


@login_required
def route_edit(request, tenant, gateway, route):
    access = tenant_access(request, tenant, write=Role.EDITOR)
    gateway = get_gateway(access, gateway)
    route = get_route(gateway, route)
    initial = {**RouteForm.initial_for(route.spec), "resource_version": route.resource_version}
    form = RouteForm(posted(request), initial=initial)
    del form.fields["name"]

    def write():
        spec = (
            form.spec_from_text() if _mode(request) == "spec" else form.spec_from_fields(route.spec)
        )
        expected = expected_version(form)
        return services.replace_route_spec(Actor.from_request(request), route, spec, expected)

    return form_page(
        request, form, write, fields=_fields(request), done="Route saved.",
        success_url=route_url, template="frontend/routes/form.html",
        context=lambda: page_context(request, access, "frontend:gateways", gateway=gateway,
                                     route=route, common_fields=_common(form)),
    )  # fmt: skip


@login_required
def route_detail(request, tenant, gateway, route):
    access = tenant_access(request, tenant)
    gateway = get_gateway(access, gateway)
    route = get_route(gateway, route)
    context = page_context(
        request, access, "frontend:gateways", gateway=gateway, route=route,
        conditions=route.status.get("conditions", []),
        attached=route.status.get("attachedListeners", []),
        spec_yaml=structured_input.dump(route.spec), tabs=tabs(gateway, "routes"),
        traffic=traffic_charts(access.tenant, f"route {route.name}", gateway.name, route.name),
        traffic_note="Requests this route matched, by every consumer and none.",
        actions=actions(access, ("Edit", route_url(route, "frontend:route-edit"), False),
                        ("Delete", route_url(route, "frontend:route-delete"), True)),
    )  # fmt: skip
    return render(request, "frontend/routes/detail.html", context)


@login_required
def route_delete(request, tenant, gateway, route):
    access = tenant_access(request, tenant, write=Role.EDITOR)
    gateway = get_gateway(access, gateway)
    route = get_route(gateway, route)
    form = forms.Form(posted(request))  # no fields: it carries the service's refusal

    def write():
        services.delete_route(Actor.from_request(request), route)

    answer = submit(request, form, {}, write, f"Route {route.name} deleted.",
                    _routes_url(gateway))  # fmt: skip
    if answer is not None:
        return answer
    context = page_context(request, access, "frontend:gateways", gateway=gateway, route=route,
                           form=form)  # fmt: skip
    return render(request, "frontend/routes/delete.html", context)
