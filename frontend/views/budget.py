"""The tenant's monthly budget: what the running month has cost so far against it, this
month's alerts, and (admins) a form to set or clear it through ``billing.budgets.set_budget``,
the API's service."""

from django import forms
from django.contrib.auth.decorators import login_required
from django.urls import reverse

from billing import budgets
from config.errors import Conflict
from frontend.access import page_context, tenant_access
from frontend.views.common import posted, render_form, submit
from tenants.audit import Actor
from tenants.roles import Role


class BudgetForm(forms.Form):
    amount = forms.CharField(
        required=False,
        max_length=40,
        label="Monthly budget",
        help_text="In the plan's currency, e.g. 100.00; empty or 0 removes the budget.",
    )


@login_required
def budget(request, tenant):
    write = Role.ADMIN if request.method == "POST" else None
    access = tenant_access(request, tenant, write=write)
    form = BudgetForm(posted(request))

    def save():
        amount = form.cleaned_data["amount"].strip() or None
        return budgets.set_budget(Actor.from_request(request), access.tenant, {"amount": amount})

    url = reverse("frontend:budget", args=[access.tenant.slug])
    done = submit(request, form, {"amount": "amount"}, save, "Budget saved.", url)
    if done is not None:
        return done
    try:
        state = budgets.status(access.tenant)
    except Conflict:  # the plan has no price book
        state = None
    if state and request.method != "POST" and state["amount"]:
        form = BudgetForm(initial={"amount": state["amount"]})
    may_set = access.is_admin and (not access.tenant.suspended or request.user.is_staff)
    context = page_context(
        request, access, "frontend:invoices", form=form, state=state, may_set=may_set
    )
    return render_form(request, "frontend/budget.html", context)
