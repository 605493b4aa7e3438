"""Routes of a gateway, of every kind: list, create, detail, edit, delete. An HTTPRoute is
edited through its common fields or as its whole spec; the other kinds (GRPCRoute) as their
whole spec. Names are unique per gateway whatever the kind, so one URL per route serves all."""

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404
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
from gateways.filters import AnyKindRouteFilter
from gateways.models import Route
from tenants.audit import Actor
from tenants.roles import Role


def get_route(gateway, name: str) -> Route:
    return get_object_or_404(
        Route.objects.select_related("gateway__tenant"), gateway=gateway, name=name
    )


def _kind(request) -> str:
    """The kind of route the create page makes (``?kind=``), HTTPRoute by default."""
    kind = request.GET.get("kind") or Route.Kind.HTTP
    if kind not in Route.Kind.values:
        raise Http404("no such kind of route")
    return kind


def route_url(route: Route, view: str = "frontend:route") -> str:
    gateway = route.gateway
    return reverse(view, args=[gateway.tenant.slug, gateway.name, route.name])


def _routes_url(gateway) -> str:
    return reverse("frontend:routes", args=[gateway.tenant.slug, gateway.name])


@login_required
def route_list(request, tenant, gateway):
    access = tenant_access(request, tenant)
    gateway = get_gateway(access, gateway)
    rows = Route.objects.filter(gateway=gateway).select_related("gateway__tenant")
    filterset, table = table_page(request, AnyKindRouteFilter, rows, RouteTable, "Routes")
    new = gateway_url(gateway, "frontend:route-new")
    context = page_context(
        request, access, "frontend:gateways", gateway=gateway, filter=filterset, table=table,
        tabs=tabs(gateway, "routes"),
        actions=actions(access, ("New route", new, False),
                        ("New gRPC route", f"{new}?kind={Route.Kind.GRPC}", False)),
    )  # fmt: skip
    return render(request, "frontend/routes/list.html", context)


def _common(form) -> list:
    names = ("hostnames", "path_type", "path_value", "backend")
    return [form[name] for name in names if name in form.fields]


def _mode(request, kind: str) -> str:
    if kind != Route.Kind.HTTP:
        return "spec"
    return "spec" if request.POST.get("mode") == "spec" else "fields"


def _fields(request, kind: str) -> dict[str, str]:
    return RouteForm.SPEC_FIELDS if _mode(request, kind) == "spec" else RouteForm.COMMON_FIELDS


@login_required
def route_create(request, tenant, gateway):
    access = tenant_access(request, tenant, write=Role.EDITOR)
    gateway = get_gateway(access, gateway)
    kind = _kind(request)
    form = for_create(RouteForm(posted(request), initial=RouteForm.initial_for({})))
    form.for_kind(kind)

    def write():
        name = checked_name(form.cleaned_data["name"])
        if _mode(request, kind) == "spec":
            spec = form.spec_from_text()
        else:
            spec = form.spec_from_fields({})
        return services.create_route(Actor.from_request(request), gateway, name, spec, kind)

    return form_page(
        request, form, write, fields=_fields(request, kind), done="Route created.",
        success_url=route_url, conflict_field="name", template="frontend/routes/form.html",
        context=lambda: page_context(request, access, "frontend:gateways", gateway=gateway,
                                     creating=True, kind=kind, common_fields=_common(form)),
    )  # fmt: skip


@login_required
def route_edit(request, tenant, gateway, route):
    access = tenant_access(request, tenant, write=Role.EDITOR)
    gateway = get_gateway(access, gateway)
    route = get_route(gateway, route)
    initial = {**RouteForm.initial_for(route.spec), "resource_version": route.resource_version}
    form = RouteForm(posted(request), initial=initial).for_kind(route.kind)
    del form.fields["name"]

    def write():
        if _mode(request, route.kind) == "spec":
            spec = form.spec_from_text()
        else:
            spec = form.spec_from_fields(route.spec)
        expected = expected_version(form)
        return services.replace_route_spec(Actor.from_request(request), route, spec, expected)

    return form_page(
        request, form, write, fields=_fields(request, route.kind), done="Route saved.",
        success_url=route_url, template="frontend/routes/form.html",
        context=lambda: page_context(request, access, "frontend:gateways", gateway=gateway,
                                     route=route, kind=route.kind,
                                     common_fields=_common(form)),
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
