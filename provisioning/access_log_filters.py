"""Filters of ``GET …/gateways/{g}/access-logs/`` (query parameters in the API's camelCase)."""

import django_filters
from django import forms

from provisioning.models import AccessLogEntry
from tenants.filters import UtcIsoDateTimeFilter

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE")


class StatusField(forms.RegexField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("error_messages", {"invalid": "must be a status (404) or a class (5xx)"})
        super().__init__(r"^(?:[1-5][0-9]{2}|[1-5]xx)$", *args, **kwargs)


class StatusFilter(django_filters.Filter):
    """``404``: that status; ``5xx``: 500 to 599."""

    field_class = StatusField

    def filter(self, qs, value):
        if not value:
            return qs
        if value.endswith("xx"):
            low = int(value[0]) * 100
            return qs.filter(status__gte=low, status__lt=low + 100)
        return qs.filter(status=int(value))


class AccessLogFilter(django_filters.FilterSet):
    # "from" is a Python keyword: declared through the class namespace.
    locals()["from"] = UtcIsoDateTimeFilter(field_name="timestamp", lookup_expr="gte")
    to = UtcIsoDateTimeFilter(field_name="timestamp", lookup_expr="lt")
    status = StatusFilter()
    route = django_filters.CharFilter(field_name="route", max_length=63)
    consumer = django_filters.CharFilter(field_name="consumer", max_length=255)
    requestId = django_filters.CharFilter(field_name="request_id", max_length=128)
    method = django_filters.ChoiceFilter(choices=[(m, m) for m in METHODS])

    class Meta:
        model = AccessLogEntry
        fields = ["from", "to", "status", "route", "consumer", "requestId", "method"]
