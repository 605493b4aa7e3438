"""The operators' admin for tenant resources: read-only, and deletes go through the services.

Tenants change their resources through the API and the console; an operator may only delete
one (say, an abusive route), and that delete is the API's: audited, dependents refreshed, the
tenant's gateways reconciled.
"""

from django.contrib import admin

from gateways import services
from gateways.models import Backend, Certificate, Consumer, Gateway, Policy, Route
from tenants.admin_base import ServiceAdmin


class ReadOnlyAdmin(ServiceAdmin):
    """Read-only for operators: tenant resources are changed by tenants, through services."""

    list_display = ["name", "tenant", "generation", "resource_version", "updated_at"]
    list_filter = ["tenant"]
    search_fields = ["name", "tenant__slug"]
    delete_service = None  # the service function that deletes one object

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def service_delete(self, actor, obj):
        self.delete_service(actor, obj)


@admin.register(Gateway)
class GatewayAdmin(ReadOnlyAdmin):
    delete_service = staticmethod(services.delete_gateway)


@admin.register(Certificate)
class CertificateAdmin(ReadOnlyAdmin):
    exclude = ["private_key"]  # never shown, not even to operators
    delete_service = staticmethod(services.delete_certificate)


@admin.register(Backend)
class BackendAdmin(ReadOnlyAdmin):
    delete_service = staticmethod(services.delete_backend)


@admin.register(Route)
class RouteAdmin(ReadOnlyAdmin):
    list_display = ["name", "gateway", "generation", "resource_version", "updated_at"]
    list_filter = ["gateway__tenant"]
    search_fields = ["name", "gateway__name", "gateway__tenant__slug"]
    delete_service = staticmethod(services.delete_route)


@admin.register(Consumer)
class ConsumerAdmin(ReadOnlyAdmin):
    # Credentials are not registered: their secrets are never shown, not even here.
    delete_service = staticmethod(services.delete_consumer)


@admin.register(Policy)
class PolicyAdmin(RouteAdmin):
    list_display = ["name", "kind", "gateway", "generation", "resource_version", "updated_at"]
    delete_service = staticmethod(services.delete_policy)
