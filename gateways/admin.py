from django.contrib import admin

from gateways.models import Gateway


@admin.register(Gateway)
class GatewayAdmin(admin.ModelAdmin):
    """Read-only for operators: gateways are changed by tenants, through services."""

    list_display = ["name", "tenant", "generation", "resource_version", "updated_at"]
    list_filter = ["tenant"]
    search_fields = ["name", "tenant__slug"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
