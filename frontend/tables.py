"""The console's tables (django-tables2). Sorting is by the model's columns and JSON keys the
API lists; the rows are the API's FilterSets' querysets."""

import django_tables2 as tables
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from gateways.models import Gateway, Route
from provisioning import receipts


def badge(text: str, kind: str):
    return format_html('<span class="badge {}">{}</span>', kind, text)


PHASE_BADGES = {"Ready": "good", "Degraded": "bad", "Pending": "neutral"}


def condition(record, type_: str) -> dict:
    return next((c for c in record.status.get("conditions", []) if c.get("type") == type_), {})


def condition_badge(record, type_: str):
    found = condition(record, type_)
    if not found:
        return "—"
    kind = {"True": "good", "False": "bad"}.get(found.get("status"), "neutral")
    return badge(f"{found.get('status')} · {found.get('reason', '')}", kind)


class GatewayTable(tables.Table):
    name = tables.Column(linkify=lambda record: record_url(record))
    phase = tables.Column(
        accessor="status__phase", order_by="status__phase", default="Pending", verbose_name="Phase"
    )
    replicas = tables.Column(
        accessor="spec__replicas", order_by="spec__replicas", verbose_name="Replicas"
    )
    runtime = tables.Column(
        accessor="spec__runtime", order_by="spec__runtime", verbose_name="Runtime"
    )
    size = tables.Column(accessor="spec__size", order_by="spec__size", verbose_name="Size")
    listeners = tables.Column(accessor="spec__listeners", orderable=False, verbose_name="Listeners")

    class Meta:
        model = Gateway
        fields = ["name", "phase", "replicas", "runtime", "size", "listeners"]
        order_by = "name"
        empty_text = "No gateways match."
        attrs = {"class": "data"}

    def render_phase(self, value):
        return badge(value, PHASE_BADGES.get(value, "neutral"))

    def render_replicas(self, value, record):
        counts = record.status.get("replicas") or {}
        return f"{counts.get('ready', 0)} of {counts.get('desired', value)} ready"

    def render_listeners(self, value):
        return format_html_join(
            ", ", "{} {}:{}", ((item["name"], item["protocol"], item["port"]) for item in value)
        )


def record_url(gateway: Gateway) -> str:
    return reverse("frontend:gateway", args=[gateway.tenant.slug, gateway.name])


class RouteTable(tables.Table):
    name = tables.Column(
        linkify=lambda record: reverse(
            "frontend:route", args=[record.gateway.tenant.slug, record.gateway.name, record.name]
        )
    )
    kind = tables.Column(verbose_name="Kind")
    hostnames = tables.Column(
        accessor="spec__hostnames", orderable=False, default="any", verbose_name="Hostnames"
    )
    rules = tables.Column(accessor="spec__rules", orderable=False, verbose_name="Rules")
    backends = tables.Column(accessor="spec__rules", orderable=False, verbose_name="Backends")
    accepted = tables.Column(accessor="status", orderable=False, verbose_name="Accepted")
    resolved = tables.Column(accessor="status", orderable=False, verbose_name="Resolved refs")
    updated_at = tables.DateTimeColumn(format="Y-m-d H:i", verbose_name="Updated")

    class Meta:
        model = Route
        fields = ["name", "kind", "hostnames", "rules", "backends", "accepted", "resolved",
                  "updated_at"]  # fmt: skip
        order_by = "name"
        empty_text = "No routes match."
        attrs = {"class": "data"}

    def render_hostnames(self, value):
        return ", ".join(value) if value else "any"

    def render_kind(self, value):
        return value  # the Gateway API kind as users write it (HTTPRoute, GRPCRoute)

    def render_rules(self, value):
        return len(value)

    def render_backends(self, value):
        names = dict.fromkeys(ref["name"] for rule in value for ref in rule.get("backendRefs", []))
        return ", ".join(names) or "—"

    def render_accepted(self, record):
        return condition_badge(record, "Accepted")

    def render_resolved(self, record):
        return condition_badge(record, "ResolvedRefs")


class AuditTable(tables.Table):
    """The audit log without ``before``/``after``: the API serves those to admins who ask."""

    created_at = tables.DateTimeColumn(format="Y-m-d H:i:s", verbose_name="When")
    actor_name = tables.Column(verbose_name="Who")
    token_prefix = tables.Column(verbose_name="Token", default="")
    action = tables.Column()
    object_type = tables.Column(verbose_name="Type")
    object_name = tables.Column(verbose_name="Object")
    request_id = tables.Column(verbose_name="Request", orderable=False)

    class Meta:
        fields = ["created_at", "actor_name", "token_prefix", "action", "object_type",
                  "object_name", "request_id"]  # fmt: skip
        order_by = "-created_at"
        empty_text = "No audit events match."
        attrs = {"class": "data"}


class BackendTable(tables.Table):
    name = tables.Column(
        linkify=lambda record: reverse("frontend:backend", args=[record.tenant.slug, record.name])
    )
    endpoints = tables.Column(accessor="spec__endpoints", orderable=False, verbose_name="Endpoints")
    protocol = tables.Column(
        accessor="spec__appProtocol", order_by="spec__appProtocol", verbose_name="Protocol"
    )
    tls = tables.Column(accessor="spec", orderable=False, verbose_name="TLS")
    accepted = tables.Column(accessor="status", orderable=False, verbose_name="Accepted")
    resolved = tables.Column(accessor="status", orderable=False, verbose_name="Resolved refs")
    updated_at = tables.DateTimeColumn(format="Y-m-d H:i", verbose_name="Updated")

    class Meta:
        fields = ["name", "endpoints", "protocol", "tls", "accepted", "resolved", "updated_at"]
        order_by = "name"
        empty_text = "No backends match."
        attrs = {"class": "data"}

    def render_endpoints(self, value):
        shown = []
        for endpoint in value[:3]:
            item = endpoint.get("ip") or endpoint.get("fqdn") or {}
            shown.append(f"{item.get('address') or item.get('hostname')}:{item.get('port')}")
        more = f" and {len(value) - 3} more" if len(value) > 3 else ""
        return ", ".join(shown) + more

    def render_tls(self, value):
        return "yes" if "tls" in value else "no"

    def render_accepted(self, record):
        return condition_badge(record, "Accepted")

    def render_resolved(self, record):
        return condition_badge(record, "ResolvedRefs")


class RevisionTable(tables.Table):
    """A gateway's config revisions, newest first; a roll-back link on the valid ones that are
    not served now (``can_write``: only for those who may roll back)."""

    number = tables.Column(verbose_name="Revision")
    state = tables.Column()

    def render_number(self, value):
        gateway = self.gateway
        url = reverse("frontend:revision", args=[gateway.tenant.slug, gateway.name, value])
        return format_html('<a href="{}">{}</a>', url, value)

    current = tables.BooleanColumn(yesno="serving,", verbose_name="Served")
    restored_from = tables.Column(verbose_name="Restores", default="")
    created_at = tables.DateTimeColumn(format="Y-m-d H:i:s", verbose_name="Created")
    created_by = tables.Column(verbose_name="By")
    programmed_at = tables.DateTimeColumn(format="Y-m-d H:i:s", verbose_name="Programmed",
                                          default="—")  # fmt: skip
    applied = tables.Column(accessor="number", orderable=False, verbose_name="Replicas",
                            empty_values=())  # fmt: skip
    message = tables.Column(orderable=False, default="")
    rollback = tables.Column(accessor="number", orderable=False, verbose_name="",
                             empty_values=())  # fmt: skip

    class Meta:
        fields = ["number", "state", "current", "restored_from", "created_at", "created_by",
                  "programmed_at", "applied", "message", "rollback"]  # fmt: skip
        order_by = "-number"
        empty_text = "No revision yet: the gateway's first reconcile makes one."
        attrs = {"class": "data"}

    def __init__(self, *args, gateway=None, can_write=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.gateway, self.can_write = gateway, can_write

    def render_applied(self, record):
        """``applied 2/2 in 41 ms``: its receipts (rows with ``receipts`` prefetched)."""
        return receipts.of(record, self.gateway).text

    def render_state(self, value):
        return badge(value, "good" if value == "valid" else "bad")

    def render_message(self, value):
        return value if len(value) <= 160 else value[:159] + "…"

    def render_rollback(self, record):
        if not self.can_write or record.current or record.state != "valid":
            return ""
        gateway = self.gateway
        url = reverse(
            "frontend:revision-rollback", args=[gateway.tenant.slug, gateway.name, record.number]
        )
        return format_html('<a href="{}">Roll back to {}</a>', url, record.number)


class CertificateTable(tables.Table):
    """What a certificate's status says of it; the key only as whether there is one."""

    name = tables.Column(
        linkify=lambda record: reverse(
            "frontend:certificate", args=[record.tenant.slug, record.name]
        )
    )
    subject = tables.Column(accessor="status__subject", orderable=False, verbose_name="Subject")
    dns_names = tables.Column(accessor="status__dnsNames", orderable=False,
                              verbose_name="DNS names", default="—")  # fmt: skip
    not_after = tables.Column(accessor="status__notAfter", order_by="status__notAfter",
                              verbose_name="Expires")  # fmt: skip
    has_key = tables.BooleanColumn(accessor="status__hasPrivateKey", orderable=False,
                                   verbose_name="Key", yesno="stored,CA only")  # fmt: skip
    accepted = tables.Column(accessor="status", orderable=False, verbose_name="Accepted")

    class Meta:
        fields = ["name", "subject", "dns_names", "not_after", "has_key", "accepted"]
        order_by = "name"
        empty_text = "No certificates match."
        attrs = {"class": "data"}

    def render_dns_names(self, value):
        return ", ".join(value[:4]) + (f" and {len(value) - 4} more" if len(value) > 4 else "")

    def render_not_after(self, value):
        return value[:10]

    def render_accepted(self, record):
        return condition_badge(record, "Accepted")


class ConsumerTable(tables.Table):
    name = tables.Column(
        linkify=lambda record: reverse("frontend:consumer", args=[record.tenant.slug, record.name])
    )
    description = tables.Column(accessor="spec__description", orderable=False, default="",
                                verbose_name="Description")  # fmt: skip
    updated_at = tables.DateTimeColumn(format="Y-m-d H:i", verbose_name="Updated")

    class Meta:
        fields = ["name", "description", "updated_at"]
        order_by = "name"
        empty_text = "No consumers match."
        attrs = {"class": "data"}


class PolicyTable(tables.Table):
    name = tables.Column(
        linkify=lambda record: reverse(
            "frontend:policy", args=[record.gateway.tenant.slug, record.gateway.name, record.name]
        )
    )
    gateway = tables.Column(accessor="gateway__name", order_by="gateway__name",
                            verbose_name="Gateway")  # fmt: skip
    kind = tables.Column()
    targets = tables.Column(accessor="spec__targetRefs", orderable=False, default="—",
                            verbose_name="Targets")  # fmt: skip
    accepted = tables.Column(accessor="status", orderable=False, verbose_name="Accepted")
    updated_at = tables.DateTimeColumn(format="Y-m-d H:i", verbose_name="Updated")

    class Meta:
        fields = ["name", "gateway", "kind", "targets", "accepted", "updated_at"]
        order_by = "name"
        empty_text = "No policies match."
        attrs = {"class": "data"}

    def render_targets(self, value):
        return ", ".join(
            f"{ref.get('kind', '')} {ref.get('name', '')}"
            + (f" ({ref['sectionName']})" if ref.get("sectionName") else "")
            for ref in value
        )

    def render_accepted(self, record):
        return condition_badge(record, "Accepted")


class MemberTable(tables.Table):
    user = tables.Column(accessor="user__username", order_by="user__username",
                         verbose_name="User")  # fmt: skip
    role = tables.Column()
    created_at = tables.DateTimeColumn(format="Y-m-d", verbose_name="Member since")
    manage = tables.Column(accessor="user__username", orderable=False, verbose_name="",
                           empty_values=())  # fmt: skip

    class Meta:
        fields = ["user", "role", "created_at", "manage"]
        order_by = "user"
        empty_text = "No members match."
        attrs = {"class": "data"}

    def render_manage(self, record):
        slug, name = record.tenant.slug, record.user.username
        return format_html(
            '<a href="{}">Change role<span class="sr-only"> of {}</span></a> · '
            '<a href="{}">Remove<span class="sr-only"> {}</span></a>',
            reverse("frontend:member-edit", args=[slug, name]), name,
            reverse("frontend:member-remove", args=[slug, name]), name,
        )  # fmt: skip


class RevisionHistoryTable(RevisionTable):
    """The revisions table with who caused each revision (the actor of the audit event behind
    it, linked to that event for those who may read the audit log) and the operation that
    stored it (rows from ``frontend.history.revisions``)."""

    caused_by = tables.Column(accessor="cause_actor", orderable=False, verbose_name="Caused by",
                              default="—")  # fmt: skip
    operation = tables.Column(accessor="operation_id", orderable=False, verbose_name="Operation",
                              default="—")  # fmt: skip

    class Meta(RevisionTable.Meta):
        fields = ["number", "state", "current", "restored_from", "created_at", "caused_by",
                  "operation", "programmed_at", "applied", "message", "rollback"]  # fmt: skip
        sequence = fields
        exclude = ["created_by"]

    def __init__(self, *args, show_audit=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.show_audit = show_audit

    def render_caused_by(self, value, record):
        if not self.show_audit or record.cause_id is None:
            return value
        url = reverse("frontend:audit-event", args=[self.gateway.tenant.slug, record.cause_id])
        return format_html('<a href="{}">{}<span class="sr-only"> (audit event)</span></a>',
                           url, value)  # fmt: skip

    def render_operation(self, value):
        gateway = self.gateway
        url = reverse("frontend:operation", args=[gateway.tenant.slug, gateway.name, value])
        return format_html('<a href="{}">#{}</a>', url, value)


class AuditEventTable(AuditTable):
    """The audit log with a link from each event to its page (before and after)."""

    created_at = tables.DateTimeColumn(
        format="Y-m-d H:i:s", verbose_name="When",
        linkify=lambda record: reverse("frontend:audit-event",
                                       args=[record.tenant_slug, record.pk]),
    )  # fmt: skip


class AccessLogTable(tables.Table):
    """A gateway's access log, newest first (the API's fields; everything shown as text)."""

    timestamp = tables.DateTimeColumn(format="Y-m-d H:i:s", verbose_name="When (UTC)")
    method = tables.Column()
    path = tables.Column(orderable=False)
    status = tables.Column()
    flags = tables.Column(verbose_name="Flags", orderable=False, default="")
    route = tables.Column(default="—")
    consumer = tables.Column(default="—")
    duration_ms = tables.Column(verbose_name="ms", default="—")
    upstream_ms = tables.Column(verbose_name="Upstream ms", default="—")
    bytes_sent = tables.Column(verbose_name="Bytes sent")
    request_id = tables.Column(verbose_name="Request", orderable=False)

    class Meta:
        fields = ["timestamp", "method", "path", "status", "flags", "route", "consumer",
                  "duration_ms", "upstream_ms", "bytes_sent", "request_id"]  # fmt: skip
        order_by = "-timestamp"
        empty_text = "No requests match."
        attrs = {"class": "data"}
