"""The tenant's audit log, for admins (as in the API)."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render

from frontend.access import page_context, tenant_access
from frontend.tables import AuditTable
from frontend.views.common import table_page
from tenants.filters import AuditEventFilter
from tenants.models import AuditEvent

COLUMNS = ("created_at", "actor_name", "token_prefix", "action", "object_type", "object_name",
           "request_id")  # fmt: skip


@login_required
def audit_log(request, tenant):
    access = tenant_access(request, tenant)
    if not access.is_admin:
        raise PermissionDenied(
            f"your role in {access.tenant.slug!r} is {access.role}; "
            "to read the audit log you need admin or above"
        )
    rows = AuditEvent.objects.filter(tenant=access.tenant).only(*COLUMNS)
    filterset, table = table_page(request, AuditEventFilter, rows, AuditTable, "Audit events")
    context = page_context(request, access, "frontend:audit", filter=filterset, table=table)
    return render(request, "frontend/audit.html", context)
