"""A gateway's config revisions, and rolling back to one (after a confirmation page)."""

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django_tables2 import RequestConfig

from frontend import history, side_by_side
from frontend.access import page_context, tenant_access
from frontend.tables import RevisionHistoryTable
from frontend.views.common import PER_PAGE, posted, submit
from frontend.views.gateways import gateway_url, get_gateway, tabs
from provisioning import receipts, revisions, rollback
from provisioning.models import ConfigRevision
from tenants.audit import Actor
from tenants.roles import Role

SECTION = "frontend:gateways"
COLUMNS = ("number", "state", "current", "restored_from", "created_at", "created_by",
           "programmed_at", "message", "requested_at", "gateway")  # fmt: skip


@login_required
def revision_list(request, tenant, gateway):
    access = tenant_access(request, tenant)
    gateway = get_gateway(access, gateway)
    # The compiled config (large, encrypted) is never loaded for a list.
    rows = history.revisions(gateway, COLUMNS).prefetch_related("receipts")
    table = RevisionHistoryTable(rows, gateway=gateway, can_write=access.can_write,
                                 show_audit=access.is_admin)  # fmt: skip
    table.caption = "Revisions"
    RequestConfig(request, paginate={"per_page": PER_PAGE}).configure(table)
    numbers = list(
        ConfigRevision.objects.filter(gateway=gateway)
        .order_by("-number")
        .values_list("number", flat=True)
    )
    context = page_context(request, access, SECTION, gateway=gateway, table=table,
                           tabs=tabs(gateway, "revisions"), numbers=numbers,
                           compare_from=numbers[1] if len(numbers) > 1 else None,
                           compare_to=numbers[0] if numbers else None)  # fmt: skip
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
    revision = get_object_or_404(history.revisions(gateway), number=number)
    receipt = receipts.of(revision, gateway)
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
        receipt=receipt,
    )  # fmt: skip
    return render(request, "frontend/revisions/detail.html", context)


def _number(raw: str | None, name: str, errors: list[str]) -> int | None:
    raw = (raw or "").strip()
    if raw.isascii() and raw.isdigit() and len(raw) <= 9:
        return int(raw)
    errors.append(f"{name}: {raw!r} is not a revision number" if raw else f"{name}: choose a "
                  "revision")  # fmt: skip
    return None


@login_required
def revision_compare(request, tenant, gateway):
    """Two revisions' compiled configs side by side (``?from=3&to=7``), secrets redacted as on
    a revision's page. A number that is not one is a 400 naming it; a revision the gateway
    does not have (another gateway's, or one pruned) is a 404."""
    access = tenant_access(request, tenant)
    gateway = get_gateway(access, gateway)
    errors: list[str] = []
    old_number = _number(request.GET.get("from"), "from", errors)
    new_number = _number(request.GET.get("to"), "to", errors)
    rows = ConfigRevision.objects.filter(gateway=gateway)
    numbers = list(rows.order_by("-number").values_list("number", flat=True))
    context = page_context(request, access, SECTION, gateway=gateway, errors=errors,
                           tabs=tabs(gateway, "revisions"), numbers=numbers,
                           compare_from=old_number, compare_to=new_number)  # fmt: skip
    if errors:
        return render(request, "frontend/revisions/compare.html", context, status=400)
    found = {revision.number: revision for revision in rows.filter(
        number__in=(old_number, new_number))}  # fmt: skip
    missing = [n for n in (old_number, new_number) if n not in found]
    if missing:
        raise Http404(f"gateway {gateway.name!r} has no revision {missing[0]}")
    old, new = found[old_number], found[new_number]
    context.update(old=old, new=new)
    try:
        revisions.check_readable(*{old.pk: old, new.pk: new}.values())  # each once
        context["diff"] = _side_by_side(old, new)
    except revisions.TooLarge as error:
        context["omitted"] = error.message
    return render(request, "frontend/revisions/compare.html", context)


def _side_by_side(old: ConfigRevision, new: ConfigRevision) -> side_by_side.SideBySide:
    """Revisions never change: their comparison is worked out once and cached as their YAML is."""
    key = f"revision-side-by-side:{revisions.rendering_key(old)}:{revisions.rendering_key(new)}"
    found = cache.get(key)
    if found is None:
        found = side_by_side.compare(revisions.as_yaml(old), revisions.as_yaml(new))
        cache.set(key, found, revisions.YAML_CACHE_SECONDS)
    return found
