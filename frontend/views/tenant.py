"""The home page (your tenants) and a tenant's dashboard."""

from django.contrib.auth.decorators import login_required
from django.db.models import Count, F, Max
from django.shortcuts import redirect, render

from frontend.access import page_context, tenant_access
from gateways.models import Backend, Certificate, Consumer, Gateway, Route
from provisioning.models import GatewayOperation
from tenants.models import AuditEvent
from tenants.scoping import visible_tenants

RECENT = 8  # operations and audit events on the dashboard


@login_required
def home(request):
    tenants = list(visible_tenants(request.user))
    if len(tenants) == 1:
        return redirect("frontend:tenant", tenant=tenants[0].slug)
    return render(request, "frontend/home.html", {"tenants": tenants})


def quota_use(tenant) -> list[dict]:
    """Each counted quota of the tenant's plan: what is used, of how many."""
    plan = tenant.plan
    routes = Route.objects.filter(gateway__tenant=tenant).values("gateway").annotate(n=Count("id"))
    most_routes = routes.aggregate(most=Max("n"))["most"] or 0
    rows = [
        ("Gateways", Gateway.objects.filter(tenant=tenant).count(), plan.max_gateways),
        ("Routes on the fullest gateway", most_routes, plan.max_routes_per_gateway),
        ("Backends", Backend.objects.filter(tenant=tenant).count(), plan.max_backends),
        ("Certificates", Certificate.objects.filter(tenant=tenant).count(), plan.max_certificates),
        ("Consumers", Consumer.objects.filter(tenant=tenant).count(), plan.max_consumers),
    ]
    return [
        {"label": label, "used": used, "limit": limit,
         "percent": min(100, round(100 * used / limit)) if limit else 100}
        for label, used, limit in rows
    ]  # fmt: skip


@login_required
def dashboard(request, tenant):
    access = tenant_access(request, tenant)
    operations = (
        GatewayOperation.objects.filter(gateway__tenant=access.tenant)
        .select_related("gateway")
        .annotate(revision_number=F("revision__number"))  # not the revision's compiled config
        .order_by("-started_at", "-id")[:RECENT]
    )
    audit = None
    if access.is_admin:  # the audit log is for admins, as in the API
        audit = AuditEvent.objects.filter(tenant=access.tenant).order_by("-created_at", "-id")
        audit = audit.only("created_at", "actor_name", "action", "object_type", "object_name")
    context = page_context(
        request,
        access,
        "frontend:tenant",
        gateways=Gateway.objects.filter(tenant=access.tenant).order_by("name")[:50],
        members=access.tenant.memberships.select_related("user"),
        operations=operations,
        audit_events=audit[:RECENT] if audit is not None else None,
        quotas=quota_use(access.tenant),
        max_replicas=access.tenant.plan.max_replicas_per_gateway,
        allowed_sizes=", ".join(access.tenant.plan.allowed_sizes),
    )
    return render(request, "frontend/tenant.html", context)
