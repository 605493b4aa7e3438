from django.contrib import admin

from gateways.models import Backend, Certificate, Consumer, Gateway, Policy, Route


class ReadOnlyAdmin(admin.ModelAdmin):
    """Read-only for operators: tenant resources are changed by tenants, through services."""

    list_display = ["name", "tenant", "generation", "resource_version", "updated_at"]
    list_filter = ["tenant"]
    search_fields = ["name", "tenant__slug"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Gateway)
class GatewayAdmin(ReadOnlyAdmin):
    pass


@admin.register(Certificate)
class CertificateAdmin(ReadOnlyAdmin):
    exclude = ["private_key"]  # never shown, not even to operators


@admin.register(Backend)
class BackendAdmin(ReadOnlyAdmin):
    pass


@admin.register(Route)
class RouteAdmin(ReadOnlyAdmin):
    list_display = ["name", "gateway", "generation", "resource_version", "updated_at"]
    list_filter = ["gateway__tenant"]
    search_fields = ["name", "gateway__name", "gateway__tenant__slug"]


@admin.register(Consumer)
class ConsumerAdmin(ReadOnlyAdmin):
    pass  # credentials are not registered: their secrets are never shown, not even here


@admin.register(Policy)
class PolicyAdmin(RouteAdmin):
    list_display = ["name", "kind", "gateway", "generation", "resource_version", "updated_at"]
