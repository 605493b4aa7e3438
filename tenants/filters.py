"""List filters for the tenant API (query parameters use the API's camelCase names)."""

from datetime import UTC

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField

from tenants.models import ApiToken, AuditEvent, Membership, Tenant
from tenants.roles import Role


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 instant, in UTC: PostgreSQL refuses offsets beyond ±15:59 (``+16:00``)."""

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
            raise forms.ValidationError("out of range", code="invalid") from None


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class TenantFilter(django_filters.FilterSet):
    plan = django_filters.CharFilter(field_name="plan__name")
    suspended = django_filters.BooleanFilter()

    class Meta:
        model = Tenant
        fields = ["plan", "suspended"]


class MemberFilter(django_filters.FilterSet):
    role = django_filters.ChoiceFilter(choices=Role.choices)
    user = django_filters.CharFilter(field_name="user__username")

    class Meta:
        model = Membership
        fields = ["role", "user"]


class TokenFilter(django_filters.FilterSet):
    user = django_filters.CharFilter(field_name="user__username")
    active = django_filters.BooleanFilter(method="filter_active")

    class Meta:
        model = ApiToken
        fields = ["user", "active"]

    def filter_active(self, queryset, name, value):
        from django.db.models import Q
        from django.utils import timezone

        live = Q(revoked_at__isnull=True) & (
            Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
        )
        return queryset.filter(live) if value else queryset.exclude(live)


class AuditEventFilter(django_filters.FilterSet):
    objectType = django_filters.CharFilter(field_name="object_type")
    objectName = django_filters.CharFilter(field_name="object_name")
    actor = django_filters.CharFilter(field_name="actor_name")
    action = django_filters.CharFilter()
    requestId = django_filters.CharFilter(field_name="request_id")
    since = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ["objectType", "objectName", "actor", "action", "requestId", "since", "until"]
