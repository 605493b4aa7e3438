"""A gateway's operations timeline: each reconcile or rollback, its stages with their timings,
the revision it stored and the audit event that caused it."""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import F
from django.shortcuts import get_object_or_404, render

from frontend import history
from frontend.access import page_context, tenant_access
from frontend.views.common import PER_PAGE
from frontend.views.gateways import get_gateway, tabs
from provisioning import receipts

SECTION = "frontend:gateways"
# The stages an operation records (``GatewayOperation.timings``), in the order they run.
STAGES = (
    ("queue", "Queued", "waiting for a worker"),
    ("lock", "Locked", "waiting for the gateway's other writers"),
    ("compile", "Compiled", "desired state loaded and compiled to Envoy config"),
    ("validate", "Validated", "checked by Envoy"),
    ("store", "Stored", "the revision written and announced to the xDS servers"),
    ("status", "Status", "old revisions pruned, the gateway's status refreshed"),
    ("runtime", "Runtime", "the runtime's objects applied"),
)


def stages(operation) -> list[dict]:
    """The recorded stages, known ones first in order, then any other, each with its ms."""
    timings = operation.timings or {}
    known = [{"name": label, "help": help_, "ms": timings[key]}
             for key, label, help_ in STAGES if key in timings]  # fmt: skip
    names = {key for key, _, _ in STAGES}
    other = [{"name": key, "help": "", "ms": value} for key, value in timings.items()
             if key not in names]  # fmt: skip
    return known + other


def _milliseconds(start, end) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds() * 1000, 1)


def _decorate(operation, gateway) -> None:
    operation.stages = stages(operation)
    operation.receipt = None
    if operation.revision is not None:
        operation.receipt = receipts.of(operation.revision, gateway).text
    operation.total_ms = _milliseconds(operation.started_at, operation.finished_at)
    # Programmed: every replica has the revision (after the operation, for a new revision).
    programmed = operation.revision_programmed_at
    operation.applied_ms = (
        _milliseconds(operation.finished_at, programmed)
        if programmed and operation.finished_at and programmed >= operation.finished_at
        else None
    )


def _rows(gateway):
    return (
        history.operations(gateway)
        .annotate(revision_programmed_at=F("revision__programmed_at"))
        .select_related("revision")
        .defer("revision__resources", "revision__desired_state", "revision__manifest")
        .prefetch_related("revision__receipts")
    )


@login_required
def operation_list(request, tenant, gateway):
    access = tenant_access(request, tenant)
    gateway = get_gateway(access, gateway)
    page = Paginator(_rows(gateway), PER_PAGE).get_page(request.GET.get("page"))
    for operation in page:
        _decorate(operation, gateway)
    context = page_context(request, access, SECTION, gateway=gateway, page=page,
                           tabs=tabs(gateway, "operations"))  # fmt: skip
    return render(request, "frontend/operations/list.html", context)


@login_required
def operation_detail(request, tenant, gateway, operation):
    access = tenant_access(request, tenant)
    gateway = get_gateway(access, gateway)
    operation = get_object_or_404(_rows(gateway), pk=operation)
    _decorate(operation, gateway)
    context = page_context(request, access, SECTION, gateway=gateway, operation=operation,
                           tabs=tabs(gateway, "operations"))  # fmt: skip
    return render(request, "frontend/operations/detail.html", context)
