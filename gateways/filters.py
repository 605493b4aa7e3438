"""List filters for gateways."""

import django_filters

from gateways.models import Gateway
from gateways.sizes import SIZES
from gateways.validation import RUNTIMES


class GatewayFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")
    size = django_filters.ChoiceFilter(field_name="spec__size", choices=[(s, s) for s in SIZES])
    runtime = django_filters.ChoiceFilter(
        field_name="spec__runtime", choices=[(r, r) for r in RUNTIMES]
    )
    phase = django_filters.CharFilter(field_name="status__phase")

    class Meta:
        model = Gateway
        fields = ["name", "size", "runtime", "phase"]
