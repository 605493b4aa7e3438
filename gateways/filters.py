"""List filters for gateways, certificates, backends and routes."""

import django_filters

from gateways.models import Backend, Certificate, Consumer, Credential, Gateway, Policy, Route
from gateways.sizes import SIZES
from gateways.validation import RUNTIMES
from gateways.validation.backends import APP_PROTOCOLS


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


class CertificateFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Certificate
        fields = ["name"]


class BackendFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")
    appProtocol = django_filters.ChoiceFilter(
        field_name="spec__appProtocol", choices=[(p, p) for p in APP_PROTOCOLS]
    )

    class Meta:
        model = Backend
        fields = ["name", "appProtocol"]


class RouteFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Route
        fields = ["name"]


class AnyKindRouteFilter(RouteFilter):
    """The console's list shows every kind of route; the API has a URL per kind."""

    kind = django_filters.ChoiceFilter(
        choices=[(kind, kind) for kind in Route.Kind.values], empty_label="any kind"
    )

    class Meta(RouteFilter.Meta):
        fields = ["name", "kind"]


class ConsumerFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Consumer
        fields = ["name"]


class CredentialFilter(django_filters.FilterSet):
    type = django_filters.ChoiceFilter(choices=Credential.Type.choices)

    class Meta:
        model = Credential
        fields = ["type"]


class PolicyFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")
    kind = django_filters.ChoiceFilter(choices=Policy.Kind.choices)

    class Meta:
        model = Policy
        fields = ["name", "kind"]
