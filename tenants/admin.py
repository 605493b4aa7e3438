"""The operators' admin: tenants, plans, memberships, tokens and the audit log.

Writes made here are audited like API writes; tokens and audit events are read-only.
"""

from django.contrib import admin

from tenants import audit, services
from tenants.audit import Actor
from tenants.models import ApiToken, AuditEvent, Membership, Plan, Tenant


class AuditedAdmin(admin.ModelAdmin):
    """Records an audit event for every save and delete made through the admin."""

    object_type = ""

    def snapshot(self, obj) -> dict:
        raise NotImplementedError

    def tenant_of(self, obj):
        return None

    def save_model(self, request, obj, form, change):
        before = self.snapshot(type(obj).objects.get(pk=obj.pk)) if change else None
        if change and hasattr(obj, "resource_version"):
            obj.resource_version += 1
        super().save_model(request, obj, form, change)
        audit.record(
            Actor.from_request(request),
            "update" if change else "create",
            self.object_type,
            str(obj),
            tenant=self.tenant_of(obj),
            before=before,
            after=self.snapshot(obj),
        )

    def delete_model(self, request, obj):
        audit.record(
            Actor.from_request(request),
            "delete",
            self.object_type,
            str(obj),
            tenant=self.tenant_of(obj),
            before=self.snapshot(obj),
        )
        super().delete_model(request, obj)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Plan)
class PlanAdmin(AuditedAdmin):
    object_type = "plan"
    list_display = [
        "name",
        "display_name",
        "max_gateways",
        "max_replicas_per_gateway",
        "max_routes_per_gateway",
        "allowed_sizes",
    ]
    search_fields = ["name", "display_name"]
    readonly_fields = ["resource_version", "created_at", "updated_at"]

    def snapshot(self, obj):
        return services.snapshot_plan(obj)


@admin.register(Tenant)
class TenantAdmin(AuditedAdmin):
    object_type = "tenant"
    list_display = ["slug", "display_name", "plan", "suspended", "created_at"]
    list_filter = ["plan", "suspended"]
    search_fields = ["slug", "display_name"]
    readonly_fields = ["resource_version", "created_at", "updated_at"]
    inlines = [MembershipInline]

    def snapshot(self, obj):
        return services.snapshot_tenant(obj)

    def tenant_of(self, obj):
        return obj if obj.pk else None

    def save_formset(self, request, form, formset, change):
        """Membership edits made inline are audited one by one, like the API's."""
        actor = Actor.from_request(request)
        before = {m.pk: m.role for m in formset.queryset} if formset.model is Membership else {}
        instances = formset.save(commit=False)
        for membership in formset.deleted_objects:
            audit.record(
                actor,
                "delete",
                "member",
                membership.user.username,
                tenant=membership.tenant,
                before={"role": before.get(membership.pk)},
            )
            membership.delete()
        for membership in instances:
            action = "update" if membership.pk else "create"
            membership.save()
            audit.record(
                actor,
                action,
                "member",
                membership.user.username,
                tenant=membership.tenant,
                before={"role": before.get(membership.pk)} if action == "update" else None,
                after={"role": membership.role},
            )
        formset.save_m2m()


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

    def has_add_permission(self, request):
        return False  # tokens are created by their users, so the plaintext is shown only once

    def has_change_permission(self, request, obj=None):
        return False


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
