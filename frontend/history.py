"""Who caused a gateway's operations and revisions: the audit event behind each.

A reconcile runs after a write (to the gateway, one of its routes or policies, or a backend,
certificate, consumer or credential of the tenant, which every gateway may use); it records
``system:reconcile`` as its actor. Its cause is the newest such audit event at or before the
moment it started (its revision: the moment that revision was stored). A rollback is its
own cause: the ``rollback`` audit event of the gateway written with it (just after).

Each lookup is a subquery of the list's one query, so a page costs the same queries for 3 rows
as for 40.
"""

from django.db.models import Case, F, OuterRef, Q, Subquery, When

from provisioning.models import ConfigRevision, GatewayOperation
from tenants.models import AuditEvent

TENANT_WIDE = ("backend", "certificate", "consumer", "credential")


def scope(gateway) -> Q:
    """The audit events whose write may change ``gateway``'s compiled config."""
    return (
        Q(object_type="gateway", object_name=gateway.name)
        | Q(object_type__in=("route", "policy"), object_name__startswith=f"{gateway.name}/")
        | Q(object_type__in=TENANT_WIDE)
    )


def _events(gateway):
    return AuditEvent.objects.filter(tenant_id=gateway.tenant_id)


def _cause(gateway, moment: str, is_rollback, field: str) -> Case:
    """``field`` of the audit event behind the row whose time is ``moment``."""
    write = (
        _events(gateway)
        .filter(scope(gateway), created_at__lte=OuterRef(moment))
        .order_by("-created_at", "-id")
    )
    rollback = (
        _events(gateway)
        .filter(
            action="rollback",
            object_type="gateway",
            object_name=gateway.name,
            created_at__gte=OuterRef(moment),
        )  # fmt: skip
        .order_by("created_at", "id")
    )
    return Case(
        When(is_rollback, then=Subquery(rollback.values(field)[:1])),
        default=Subquery(write.values(field)[:1]),
    )


def operations(gateway):
    """The gateway's operations, newest first, each with ``revision_number``, ``cause_id``
    and ``cause_actor`` (the audit event behind it, if any is kept)."""
    rollback = Q(kind=GatewayOperation.Kind.ROLLBACK)
    return (
        GatewayOperation.objects.filter(gateway=gateway)
        .annotate(
            revision_number=F("revision__number"),  # not the revision's compiled config
            cause_id=_cause(gateway, "started_at", rollback, "id"),
            cause_actor=_cause(gateway, "started_at", rollback, "actor_name"),
        )
        .order_by("-started_at", "-id")
    )


def revisions(gateway, columns=()):
    """The gateway's revisions (only ``columns`` when given: a list never loads the compiled
    config), each with ``operation_id`` (the operation that stored it), ``cause_id`` and
    ``cause_actor``."""
    made_by = GatewayOperation.objects.filter(revision=OuterRef("pk")).order_by("started_at", "id")
    rollback = Q(restored_from__isnull=False)
    rows = ConfigRevision.objects.filter(gateway=gateway)
    return (rows.only(*columns) if columns else rows).annotate(
        operation_id=Subquery(made_by.values("id")[:1]),
        cause_id=_cause(gateway, "created_at", rollback, "id"),
        cause_actor=_cause(gateway, "created_at", rollback, "actor_name"),
    )
