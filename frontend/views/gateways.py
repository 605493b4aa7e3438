"""Gateways: list, create, detail with live status, scale, delete."""

from django import forms
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.db.models import F
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from frontend import structured_input
from frontend.access import actions, page_context, tenant_access
from frontend.forms import GatewayForm, ScaleForm
from frontend.tables import GatewayTable, condition
from frontend.views.common import posted, render_form, submit, table_page
from gateways import services
from gateways.filters import GatewayFilter
from gateways.models import Gateway
from provisioning.models import GatewayOperation, LocalReplica
from provisioning.runtimes.local.logs import tail
from tenants.audit import Actor
from tenants.roles import Role

DEFAULT_LISTENERS = [{"name": "http", "protocol": "HTTP", "port": 80}]
POLL_SECONDS = 2
LOG_LINES = 200  # the API's default tail


def get_gateway(access, name: str) -> Gateway:
    """The tenant's gateway ``name``, or Http404 (another tenant's is a 404 too)."""
    rows = Gateway.objects.select_related("tenant")
    return get_object_or_404(rows, tenant=access.tenant, name=name)


def settled(gateway: Gateway) -> bool:
    """Nothing is being applied: every replica runs the current generation, or the platform
    is stuck on the tenant's config (a rejected revision) and waits for a change."""
    programmed = condition(gateway, "Programmed")
    if programmed.get("reason") in ("Invalid", "Rejected"):
        return True
    return programmed.get("status") == "True" and gateway.status.get("phase") == "Ready"


def gateway_url(gateway: Gateway, view: str = "frontend:gateway") -> str:
    return reverse(view, args=[gateway.tenant.slug, gateway.name])


@login_required
def gateway_list(request, tenant):
    access = tenant_access(request, tenant)
    rows = Gateway.objects.filter(tenant=access.tenant).select_related("tenant")
    filterset, table = table_page(request, GatewayFilter, rows, GatewayTable, "Gateways")
    new = reverse("frontend:gateway-new", args=[access.tenant.slug])
    context = page_context(request, access, "frontend:gateways", filter=filterset, table=table,
                           actions=actions(access, ("New gateway", new, False)))  # fmt: skip
    return render(request, "frontend/gateways/list.html", context)


@login_required
def gateway_create(request, tenant):
    access = tenant_access(request, tenant, write=Role.EDITOR)
    initial = {"size": "small", "replicas": "1", "runtime": "local",
               "listeners": structured_input.dump(DEFAULT_LISTENERS)}  # fmt: skip
    form = GatewayForm(posted(request), initial=initial)

    def write():
        name, spec = form.name_and_spec()
        return services.create_gateway(Actor.from_request(request), access.tenant, name, spec)

    answer = submit(request, form, GatewayForm.FIELDS, write, "Gateway created.", gateway_url,
                    conflict_field="name")  # fmt: skip
    if answer is not None:
        return answer
    context = page_context(request, access, "frontend:gateways", form=form)
    return render_form(request, "frontend/gateways/form.html", context)


def _status_context(gateway: Gateway) -> dict:
    replicas = LocalReplica.objects.filter(gateway=gateway).order_by("index")
    return {
        "gateway": gateway,
        "settled": settled(gateway),
        "poll_seconds": POLL_SECONDS,
        "replica_rows": replicas.only("index", "state", "restarts", "message", "started_at"),
        "conditions": gateway.status.get("conditions", []),
        "listeners": _listeners(gateway),
    }


def _listeners(gateway: Gateway) -> list[dict]:
    """The spec's listeners with what status says of each (URL, conditions)."""
    reported = {entry.get("name"): entry for entry in gateway.status.get("listeners", [])}
    return [
        {**listener, "url": reported.get(listener["name"], {}).get("url", ""),
         "conditions": reported.get(listener["name"], {}).get("conditions", [])}
        for listener in gateway.spec.get("listeners", [])
    ]  # fmt: skip


def tabs(gateway: Gateway, current: str) -> list[dict]:
    return [
        {"label": "Overview", "url": gateway_url(gateway), "current": current == "overview"},
        {"label": f"Routes ({gateway.routes.count()})",
         "url": gateway_url(gateway, "frontend:routes"), "current": current == "routes"},
        {"label": f"Policies ({gateway.policies.count()})",
         "url": gateway_url(gateway, "frontend:policies"), "current": current == "policies"},
        {"label": "Revisions", "url": gateway_url(gateway, "frontend:revisions"),
         "current": current == "revisions"},
        {"label": "Operations", "url": gateway_url(gateway, "frontend:operations"),
         "current": current == "operations"},
        {"label": "Usage", "url": gateway_url(gateway, "frontend:gateway-usage"),
         "current": current == "usage"},
        {"label": "Access logs", "url": gateway_url(gateway, "frontend:gateway-access-logs"),
         "current": current == "access-logs"},
    ]  # fmt: skip


@login_required
def gateway_detail(request, tenant, gateway):
    access = tenant_access(request, tenant)
    gateway = get_gateway(access, gateway)
    operations = GatewayOperation.objects.filter(gateway=gateway).annotate(
        revision_number=F("revision__number")  # not the revision's compiled config
    )
    context = page_context(
        request,
        access,
        "frontend:gateways",
        tabs=tabs(gateway, "overview"),
        actions=actions(
            access,
            ("Scale", gateway_url(gateway, "frontend:gateway-scale"), False),
            ("Delete", gateway_url(gateway, "frontend:gateway-delete"), True),
        ),
        operations=operations.order_by("-started_at", "-id")[:10],
        **_status_context(gateway),
    )
    return render(request, "frontend/gateways/detail.html", context)


def gateway_status(request, tenant, gateway):
    """The live part of the detail page, polled by htmx until the gateway settles.

    Polling ends cleanly when the page outlives what it shows: signed out meanwhile, the whole
    page goes to sign-in (``HX-Redirect``); the gateway deleted meanwhile, the section says so
    and polling stops (286, htmx's "stop polling")."""
    page = request.path.removesuffix("status/")
    polled = request.headers.get("HX-Request") == "true"
    if not request.user.is_authenticated:
        to_login = redirect_to_login(page)
        if not polled:
            return to_login
        response = HttpResponse()
        response["HX-Redirect"] = to_login["Location"]
        return response
    access = tenant_access(request, tenant)
    try:
        gateway = get_gateway(access, gateway)
    except Http404:
        if not polled:
            raise
        return render(request, "frontend/gateways/status_gone.html", {"name": gateway}, status=286)
    return render(request, "frontend/gateways/status.html", _status_context(gateway))


@login_required
def gateway_scale(request, tenant, gateway):
    access = tenant_access(request, tenant, write=Role.EDITOR)
    gateway = get_gateway(access, gateway)
    form = ScaleForm(posted(request), initial={"replicas": gateway.spec.get("replicas")})

    def write():
        # A merge patch under the row lock: the gateway's status moves while it converges, so
        # the page's resourceVersion would often be stale for no reason a user would care about.
        services.patch_gateway_spec(
            Actor.from_request(request), gateway, {"replicas": form.cleaned_data["replicas"]}
        )

    answer = submit(request, form, ScaleForm.FIELDS, write, "Scaling applied.",
                    gateway_url(gateway))  # fmt: skip
    if answer is not None:
        return answer
    context = page_context(request, access, "frontend:gateways", gateway=gateway, form=form)
    return render_form(request, "frontend/gateways/scale.html", context)


@login_required
def gateway_delete(request, tenant, gateway):
    access = tenant_access(request, tenant, write=Role.EDITOR)
    gateway = get_gateway(access, gateway)
    form = forms.Form(posted(request))  # no fields: it carries the service's refusal

    def write():
        services.delete_gateway(Actor.from_request(request), gateway)

    answer = submit(request, form, {}, write, f"Gateway {gateway.name} deleted.",
                    reverse("frontend:gateways", args=[access.tenant.slug]))  # fmt: skip
    if answer is not None:
        return answer
    context = page_context(
        request, access, "frontend:gateways", gateway=gateway, form=form,
        routes=gateway.routes.count(), policies=gateway.policies.count(),
    )  # fmt: skip
    return render(request, "frontend/gateways/delete.html", context)


@login_required
def replica_log(request, tenant, gateway, index):
    """The last lines of one replica's Envoy log, as the API's ``replicas/{i}/log/`` gives."""
    access = tenant_access(request, tenant)
    gateway = get_gateway(access, gateway)
    replica = get_object_or_404(LocalReplica.objects.only("index", "state", "log_path"),
                                gateway=gateway, index=index)  # fmt: skip
    text = tail(replica.log_path, LOG_LINES) if replica.log_path else ""
    context = page_context(request, access, "frontend:gateways", gateway=gateway,
                           replica=replica, log=text, lines=LOG_LINES,
                           title=f"Replica {replica.index}")  # fmt: skip
    return render(request, "frontend/gateways/replica_log.html", context)
