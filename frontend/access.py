"""Who may see and do what in the console: the API's rules (``tenants.scoping`` and
``tenants.api_base``), applied to pages.

A tenant the user is not a member of, and anything in it, is a 404 page; a write above the
user's role, or any write in a suspended tenant, is a 403 page. Pages show write controls only
to those who may use them (``can_write``), and the write views check again on every request.
"""

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.urls import reverse

from tenants.roles import Role, at_least
from tenants.scoping import TenantAccess, resolve, visible_tenants

# The tenant navigation: (label, URL name, role needed to see it).
NAVIGATION = [
    ("Dashboard", "frontend:tenant", Role.VIEWER),
    ("Gateways", "frontend:gateways", Role.VIEWER),
    ("Backends", "frontend:backends", Role.VIEWER),
    ("Certificates", "frontend:certificates", Role.VIEWER),
    ("Consumers", "frontend:consumers", Role.VIEWER),
    ("Policies", "frontend:all-policies", Role.VIEWER),
    ("Usage", "frontend:usage", Role.VIEWER),
    ("Invoices", "frontend:invoices", Role.VIEWER),
    ("Members", "frontend:members", Role.VIEWER),
    ("API tokens", "frontend:tokens", Role.VIEWER),
    ("Audit log", "frontend:audit", Role.ADMIN),
]
SWITCHER_LIMIT = 50  # tenants listed in the switcher; the home page lists them all


@dataclass(frozen=True)
class ConsoleAccess:
    """The tenant, the user's role in it, and whether the user may change things in it."""

    tenant: object
    role: str
    can_write: bool
    is_admin: bool


def _may_write(request, access: TenantAccess, required: str) -> bool:
    if not at_least(access.role, required):
        return False
    return not access.tenant.suspended or request.user.is_staff


def tenant_access(request, slug: str, *, write: str | None = None) -> ConsoleAccess:
    """The user's access to tenant ``slug`` (Http404 if not a member). ``write``: the role a
    write needs; PermissionDenied (403) if the user's role is below it or the tenant is
    suspended, with the API's wording."""
    access = resolve(request.user, slug)
    tenant = access.tenant
    if write is not None:
        if not at_least(access.role, write):
            raise PermissionDenied(
                f"your role in {tenant.slug!r} is {access.role}; "
                f"to make this change you need {write} or above"
            )
        if tenant.suspended and not request.user.is_staff:
            raise PermissionDenied(f"tenant {tenant.slug!r} is suspended and read-only")
    return ConsoleAccess(
        tenant=tenant,
        role=access.role,
        can_write=_may_write(request, access, Role.EDITOR),
        is_admin=at_least(access.role, Role.ADMIN),
    )


def page_context(request, access: ConsoleAccess, section: str = "", **extra) -> dict:
    """What every tenant page's layout needs (navigation, the tenant switcher), plus ``extra``.
    ``section``: the URL name of the navigation entry to mark current."""
    tenant = access.tenant
    nav = [
        {"label": label, "url": reverse(name, args=[tenant.slug]), "current": name == section}
        for label, name, role in NAVIGATION
        if at_least(access.role, role)
    ]
    return {
        "access": access,
        "tenant": tenant,
        "can_write": access.can_write,
        "nav": nav,
        "switch_tenants": visible_tenants(request.user)[:SWITCHER_LIMIT],
        **extra,
    }


def actions(access: ConsoleAccess, *items: tuple[str, str, bool]) -> list[dict]:
    """The write actions of a page header, (label, URL, dangerous); none for those who may
    not write (the views refuse them anyway)."""
    if not access.can_write:
        return []
    return [{"label": label, "url": url, "danger": danger} for label, url, danger in items]
