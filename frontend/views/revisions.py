"""A gateway's config revisions, and rolling back to one (after a confirmation page)."""

from django import forms
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render
from django_tables2 import RequestConfig

from frontend.access import page_context, tenant_access
from frontend.tables import RevisionTable
from frontend.views.common import PER_PAGE, posted, submit
from frontend.views.gateways import gateway_url, get_gateway, tabs
from provisioning import revisions, rollback
from provisioning.models import ConfigRevision
from tenants.audit import Actor
from tenants.roles import Role

SECTION = "frontend:gateways"
COLUMNS = ("number", "state", "current", "restored_from", "created_at", "created_by",
           "programmed_at", "message")  # fmt: skip


@login_required
def revision_list(request, tenant, gateway):
    access = tenant_access(request, tenant)
    gateway = get_gateway(access, gateway)
    # The compiled config (large, encrypted) is never loaded for a list.
    rows = ConfigRevision.objects.filter(gateway=gateway).only(*COLUMNS)
    table = RevisionTable(rows, gateway=gateway, can_write=access.can_write)
    table.caption = "Revisions"
    RequestConfig(request, paginate={"per_page": PER_PAGE}).configure(table)
    context = page_context(request, access, SECTION, gateway=gateway, table=table,
                           tabs=tabs(gateway, "revisions"))  # fmt: skip
    return render(request, "frontend/revisions/list.html", context)


@login_required
def revision_rollback(request, tenant, gateway, number):
    access = tenant_access(request, tenant, write=Role.EDITOR)
    gateway = get_gateway(access, gateway)
    rows = ConfigRevision.objects.filter(gateway=gateway).only(*COLUMNS)
    revision = get_object_or_404(rows, number=number)
    current = rows.filter(current=True).first()
    form = forms.Form(posted(request))  # no fields: it carries the service's refusal

    def write():
        rollback.rollback(Actor.from_request(request), gateway, number)

    answer = submit(request, form, {}, write, f"Rolled back: the gateway now serves revision "
                    f"{number}'s routing and policy as a new revision.",
                    gateway_url(gateway))  # fmt: skip
    if answer is not None:
        return answer
    context = page_context(request, access, SECTION, gateway=gateway, revision=revision,
                           current=current, form=form)  # fmt: skip
    return render(
        request, "frontend/revisions/rollback.html", context, status=400 if form.errors else 200
    )


@login_required
def revision_detail(request, tenant, gateway, number):
    """A revision's compiled Envoy config as YAML, secrets redacted (the API's rendering), and
    what changed since the revision before it."""
    access = tenant_access(request, tenant)
    gateway = get_gateway(access, gateway)
    rows = ConfigRevision.objects.filter(gateway=gateway)
    revision = get_object_or_404(rows, number=number)
    previous = rows.filter(number__lt=number).order_by("-number").first()
    config, diff, omitted = "", "", ""
    try:
        revisions.check_readable(revision)
        config = revisions.as_yaml(revision)
        if previous is not None:
            diff = revisions.unified_diff(previous, revision)
    except revisions.TooLarge as error:
        omitted = error.message
    context = page_context(
        request, access, SECTION, gateway=gateway, revision=revision, previous=previous,
        config=config, diff=diff, omitted=omitted, tabs=tabs(gateway, "revisions"),
    )  # fmt: skip
    return render(request, "frontend/revisions/detail.html", context)
