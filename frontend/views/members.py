"""A tenant's members: every member reads the list; admins add people, change roles and
remove members (owners alone grant or take the owner role), through the API's services."""

from django import forms
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404
from django.urls import reverse

from frontend.access import page_context, tenant_access
from frontend.forms import MemberForm, checked_member
from frontend.tables import MemberTable
from frontend.views.common import posted, render_form, submit, table_page
from tenants import services
from tenants.audit import Actor
from tenants.filters import MemberFilter
from tenants.models import Membership
from tenants.roles import Role

SECTION = "frontend:members"


def _members_url(access) -> str:
    return reverse(SECTION, args=[access.tenant.slug])


def get_membership(access, username: str) -> Membership:
    rows = Membership.objects.select_related("user", "tenant")
    return get_object_or_404(rows, tenant=access.tenant, user__username=username)


@login_required
def member_list(request, tenant):
    """The members; for admins, the form adding one (a POST here adds)."""
    writing = request.method == "POST"
    access = tenant_access(request, tenant, write=Role.ADMIN if writing else None)
    form = MemberForm(posted(request), initial={"role": "viewer"}) if access.is_admin else None

    def write():
        username, role = checked_member(form.cleaned_data["user"], form.cleaned_data["role"])
        return services.add_member(Actor.from_request(request), access.role, access.tenant,
                                   username, role)  # fmt: skip

    if form is not None:
        answer = submit(request, form, MemberForm.FIELDS, write, "Member added.",
                        _members_url(access), conflict_field="user")  # fmt: skip
        if answer is not None:
            return answer
    rows = Membership.objects.filter(tenant=access.tenant).select_related("user", "tenant")
    filterset, table = table_page(request, MemberFilter, rows, MemberTable, "Members")
    may_manage = access.is_admin and (not access.tenant.suspended or request.user.is_staff)
    if not may_manage:
        table.columns.hide("manage")
    context = page_context(request, access, SECTION, filter=filterset, table=table, form=form,
                           may_manage=may_manage)  # fmt: skip
    return render_form(request, "frontend/members/list.html", context)


@login_required
def member_edit(request, tenant, username):
    access = tenant_access(request, tenant, write=Role.ADMIN)
    membership = get_membership(access, username)
    form = MemberForm(posted(request), initial={"user": username, "role": membership.role})
    del form.fields["user"]

    def write():
        _, role = checked_member(username, form.cleaned_data["role"])
        return services.change_member_role(Actor.from_request(request), access.role,
                                           membership, role)  # fmt: skip

    answer = submit(request, form, MemberForm.FIELDS, write, f"{username}'s role changed.",
                    _members_url(access))  # fmt: skip
    if answer is not None:
        return answer
    context = page_context(request, access, SECTION, form=form, membership=membership)
    return render_form(request, "frontend/members/edit.html", context)


@login_required
def member_remove(request, tenant, username):
    access = tenant_access(request, tenant, write=Role.ADMIN)
    membership = get_membership(access, username)
    form = forms.Form(posted(request))  # no fields: it carries the service's refusal

    def write():
        services.remove_member(Actor.from_request(request), access.role, membership)

    answer = submit(request, form, {}, write, f"{username} removed.", _members_url(access))
    if answer is not None:
        return answer
    context = page_context(request, access, SECTION, form=form, membership=membership)
    return render_form(request, "frontend/members/remove.html", context)
