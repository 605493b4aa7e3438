"""Console helpers for billing: the budget banner every tenant page shows."""

from django import template

from billing import budgets
from tenants.models import Tenant

register = template.Library()


@register.simple_tag
def budget_banner(tenant) -> str:
    """ "You have used 83 % of your monthly budget (USD 100.00)." once this month's 80 % or
    100 % alert exists; "" otherwise."""
    if not isinstance(tenant, Tenant):
        return ""
    return budgets.banner(tenant) or ""
