"""The base of every tenant-scoped API view: tenant resolution and role checks.

Order of checks, the same everywhere: authenticated (else 401) → member of the tenant in the
URL (else 404) → role allows the action (else 403) → tenant not suspended for writes (else 403).
"""

from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import permissions, viewsets
from rest_framework.exceptions import PermissionDenied

from config.api.ordering import AliasOrderingFilter
from config.errors import TenantSuspended
from tenants.audit import Actor
from tenants.roles import Role, at_least
from tenants.scoping import resolve


class TenantScopedViewSet(viewsets.GenericViewSet):
    read_role = Role.VIEWER
    write_role = Role.EDITOR
    ordering_aliases: dict[str, str] = {}
    filter_backends = [
        DjangoFilterBackend,
        AliasOrderingFilter,
    ]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.access = resolve(request.user, kwargs["tenant"], getattr(request, "auth", None))
        self.tenant = self.access.tenant
        self.role = self.access.role
        writing = request.method not in permissions.SAFE_METHODS
        required = self.write_role if writing else self.read_role
        if not at_least(self.role, required):
            verb = "change" if writing else "read"
            raise PermissionDenied(
                f"your role in {self.tenant.slug!r} is {self.role}; "
                f"to {verb} {self.resource_label()} you need {required} or above"
            )
        if writing and self.tenant.suspended and not request.user.is_staff:
            raise TenantSuspended(f"tenant {self.tenant.slug!r} is suspended and read-only")

    def resource_label(self) -> str:
        return self.basename.replace("-", " ") + "s"

    @property
    def actor(self) -> Actor:
        return Actor.from_request(self.request)
