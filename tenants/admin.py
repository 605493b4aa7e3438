"""The operators' admin: tenants, plans, memberships, tokens and the audit log.

Every write made here goes through ``tenants.services``, like the API's: checked and audited.
Tenants are created with their first owner (``POST /api/v1/tenants/`` or ``manage.py
create_tenant``), not here; tokens can only be revoked; audit events are read-only; a user who
is a member of a tenant cannot be deleted (deactivate them, or remove their memberships first).
"""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from tenants import services
from tenants.admin_base import ServiceAdmin
from tenants.audit import Actor
from tenants.models import ApiToken, AuditEvent, Membership, Plan, Tenant
from tenants.roles import Role

_PLAN_FIELDS = [
    "name",
    "display_name",
    "description",
    "max_gateways",
    "max_replicas_per_gateway",
    "max_routes_per_gateway",
    "max_backends",
    "max_certificates",
    "max_consumers",
    "max_tokens_per_user",
    "access_log_retention_days",
    "allowed_sizes",
]


def _keep_saved(obj, saved) -> None:
    """Points the admin's unsaved ``obj`` at the row a service created."""
    obj.pk = saved.pk
    obj._state.adding = False
    obj._state.db = saved._state.db


@admin.register(Plan)
class PlanAdmin(ServiceAdmin):
    list_display = [field for field in _PLAN_FIELDS if field != "description"]
    search_fields = ["name", "display_name"]
    readonly_fields = ["resource_version", "created_at", "updated_at"]

    def save_model(self, request, obj, form, change):
        actor = Actor.from_request(request)
        if change:
            changes = {field: form.cleaned_data[field] for field in form.changed_data}
            services.update_plan(actor, obj, changes)
        else:
            fields = {field: form.cleaned_data[field] for field in _PLAN_FIELDS}
            _keep_saved(obj, services.create_plan(actor, fields))

    def service_delete(self, actor, obj):
        services.delete_plan(actor, obj)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(ServiceAdmin):
    list_display = ["slug", "display_name", "plan", "suspended", "created_at"]
    list_filter = ["plan", "suspended"]
    search_fields = ["slug", "display_name"]
    readonly_fields = ["slug", "resource_version", "created_at", "updated_at"]
    inlines = [MembershipInline]

    def has_add_permission(self, request):
        return False  # a tenant needs its first owner: the API or manage.py create_tenant

    def save_model(self, request, obj, form, change):
        changes = {}
        for field in ("display_name", "suspended"):
            if field in form.changed_data:
                changes[field] = form.cleaned_data[field]
        if "plan" in form.changed_data:
            changes["plan"] = form.cleaned_data["plan"].name
        if changes:
            services.update_tenant(Actor.from_request(request), obj, changes)

    def service_delete(self, actor, obj):
        services.delete_tenant(actor, obj)

    def get_deleted_objects(self, objs, request):
        # Tokens cannot be deleted one by one here (they are revoked), but they go with their
        # tenant: that must not make deleting the tenant a permission error.
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, perms_needed - {ApiToken._meta.verbose_name}, protected

    def save_formset(self, request, form, formset, change):
        """Membership edits made inline, each through the services: removing a member revokes
        their tokens, a tenant keeps an owner, and every change is audited."""
        if formset.model is not Membership:
            return super().save_formset(request, form, formset, change)
        actor = Actor.from_request(request)
        # What the admin's history entry lists (formset.save() would have set these).
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for row in formset.forms:
            membership = row.instance
            if row in formset.deleted_forms and membership.pk:
                services.remove_member(actor, Role.OWNER, membership)
                formset.deleted_objects.append(membership)
            elif not row.has_changed() or not row.cleaned_data:
                continue
            elif membership.pk is None:
                user, role = row.cleaned_data["user"], row.cleaned_data["role"]
                added = services.add_member(actor, Role.OWNER, form.instance, user.username, role)
                formset.new_objects.append(added)
            elif "user" in row.changed_data:
                self.message_user(
                    request,
                    "A membership's user cannot be changed: remove it and add the other user.",
                    messages.WARNING,
                )
            else:
                role = row.cleaned_data["role"]
                services.change_member_role(actor, Role.OWNER, membership, role)
                formset.changed_objects.append((membership, ["role"]))
        return None


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = [
        "prefix",
        "name",
        "tenant",
        "user",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["tenant"]
    search_fields = ["prefix", "name", "user__username"]
    exclude = ["digest"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # tokens are created by their users, so the plaintext is shown only once

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # a token is revoked, never deleted: the audit log keeps naming it

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        actor = Actor.from_request(request)
        for token in queryset:
            services.revoke_token(actor, token)
        self.message_user(request, f"Revoked {queryset.count()} token(s).")


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "tenant_slug",
        "actor_name",
        "action",
        "object_type",
        "object_name",
        "request_id",
    ]
    list_filter = ["action", "object_type"]
    search_fields = ["tenant_slug", "actor_name", "object_name", "request_id"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


admin.site.unregister(get_user_model())


@admin.register(get_user_model())
class MemberAwareUserAdmin(UserAdmin):
    """Deleting a user would silently drop their memberships (maybe a tenant's last owner) and
    tokens, unaudited: members are deactivated instead, or removed from their tenants first."""

    def has_delete_permission(self, request, obj=None):
        if obj is not None and Membership.objects.filter(user=obj).exists():
            return False
        return super().has_delete_permission(request, obj)

    def get_deleted_objects(self, objs, request):
        # A user's tokens go with them (tokens have no delete permission of their own).
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, perms_needed - {ApiToken._meta.verbose_name}, protected
