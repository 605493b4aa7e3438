"""Which tenant a request may see, and with what role. Shared by the API and the console.

A tenant the caller is not a member of does not exist for them: every miss is a 404, never a
403, so the answer gives no hint that the tenant (or anything in it) exists.
"""

from dataclasses import dataclass

from django.http import Http404

from tenants.models import Membership, Tenant
from tenants.roles import Role


@dataclass(frozen=True)
class TenantAccess:
    tenant: Tenant
    role: str  # the caller's effective role


def visible_tenants(user, token=None):
    """Tenants the caller may list: a token sees its own tenant only; staff see all."""
    tenants = Tenant.objects.select_related("plan")
    if token is not None:
        tenants = tenants.filter(pk=token.tenant_id)
        return tenants if user.is_staff else tenants.filter(memberships__user=user)
    return tenants if user.is_staff else tenants.filter(memberships__user=user)


def resolve(user, slug: str, token=None) -> TenantAccess:
    """The tenant ``slug`` and the caller's role in it, or Http404."""
    if not user or not user.is_authenticated:
        raise Http404
    if token is not None and token.tenant.slug != slug:
        raise Http404
    tenant = Tenant.objects.select_related("plan").filter(slug=slug).first()
    if tenant is None:
        raise Http404
    if user.is_staff:
        return TenantAccess(tenant, Role.OWNER)
    membership = Membership.objects.filter(tenant=tenant, user=user).only("role").first()
    if membership is None:
        raise Http404
    return TenantAccess(tenant, membership.role)
