"""The tenant's audit log, for admins (as in the API): the list with the API's filters, and
one event with its before and after side by side and what changed field by field."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, render
from django.utils.http import urlencode

from frontend import field_diff, structured_input
from frontend.access import page_context, tenant_access
from frontend.tables import AuditEventTable
from frontend.views.common import table_page
from tenants.audit import redact
from tenants.filters import AuditEventFilter
from tenants.models import AuditEvent

# The API's filter names (its query parameters), labelled for people.
FILTER_LABELS = {
    "actor": ("Actor", "a username, or system:<component>"),
    "objectType": ("Object type", "gateway, route, policy, backend, certificate, consumer, …"),
    "objectName": ("Object name", "routes and policies: <gateway>/<name>"),
    "action": ("Action", "create, update, delete, rollback, …"),
    "requestId": ("Request id", ""),
    "since": ("From", "ISO 8601, e.g. 2026-12-01T00:00:00Z"),
    "until": ("Until (before)", "ISO 8601, e.g. 2026-12-02T00:00:00Z"),
}
COLUMNS = ("created_at", "actor_name", "token_prefix", "action", "object_type", "object_name",
           "request_id", "tenant_slug")  # fmt: skip


def _admin_access(request, tenant):
    access = tenant_access(request, tenant)
    if not access.is_admin:
        raise PermissionDenied(
            f"your role in {access.tenant.slug!r} is {access.role}; "
            "to read the audit log you need admin or above"
        )
    return access


@login_required
def audit_log(request, tenant):
    access = _admin_access(request, tenant)
    rows = AuditEvent.objects.filter(tenant=access.tenant).only(*COLUMNS)
    filterset, table = table_page(request, AuditEventFilter, rows, AuditEventTable,
                                  "Audit events")  # fmt: skip
    for name, (label, placeholder) in FILTER_LABELS.items():
        field = filterset.form.fields[name]
        field.label = filterset.form[name].label = label  # the bound field is made already
        if placeholder:
            field.widget.attrs["placeholder"] = placeholder
    context = page_context(request, access, "frontend:audit", filter=filterset, table=table)
    return render(request, "frontend/audit.html", context)


@login_required
def audit_event(request, tenant, event):
    """One event: before and after as YAML side by side, and each field that changed. Secrets
    were redacted when the event was written; they are redacted again here, so an event
    written before a field was known to be secret shows none either."""
    access = _admin_access(request, tenant)
    event = get_object_or_404(AuditEvent.objects.filter(tenant=access.tenant), pk=event)
    before, after = redact(event.before), redact(event.after)
    context = page_context(
        request, access, "frontend:audit", event=event,
        before=None if before is None else structured_input.dump(before),
        after=None if after is None else structured_input.dump(after),
        changes=field_diff.changes(before, after),
        same_object="?" + urlencode({"objectType": event.object_type,
                                     "objectName": event.object_name}),
    )  # fmt: skip
    return render(request, "frontend/audit_event.html", context)
