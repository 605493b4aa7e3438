"""The REST API's routes: ``/api/v1/…``."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from billing.metrics_views import GatewayMetricsViewSet
from billing.views import BudgetView, InvoiceViewSet, PriceBookView, RevenueView, UsageViewSet
from config.api.root import ApiRootView
from gateways.declarative.views import DeclarativeViewSet
from gateways.views import (
    BackendViewSet,
    CertificateViewSet,
    ConsumerViewSet,
    CredentialViewSet,
    DubboRouteViewSet,
    GatewayViewSet,
    GRPCRouteViewSet,
    PolicyViewSet,
    RouteViewSet,
    TCPRouteViewSet,
    TLSRouteViewSet,
)
from provisioning.access_log_views import AccessLogViewSet
from provisioning.cluster_views import ClusterViewSet
from provisioning.replica_views import ReplicaViewSet
from provisioning.views import OperationViewSet, RevisionViewSet
from tenants.views import (
    AuditEventViewSet,
    MemberViewSet,
    MeView,
    PlanViewSet,
    TenantViewSet,
    TokenViewSet,
)

platform = SimpleRouter(trailing_slash=True)
platform.register("plans", PlanViewSet, basename="plan")
platform.register("tenants", TenantViewSet, basename="tenant")
platform.register("clusters", ClusterViewSet, basename="cluster")

per_tenant = SimpleRouter(trailing_slash=True)
per_tenant.register("members", MemberViewSet, basename="member")
per_tenant.register("tokens", TokenViewSet, basename="token")
per_tenant.register("audit-events", AuditEventViewSet, basename="audit-event")
per_tenant.register("gateways", GatewayViewSet, basename="gateway")
per_tenant.register("certificates", CertificateViewSet, basename="certificate")
per_tenant.register("backends", BackendViewSet, basename="backend")
per_tenant.register("consumers", ConsumerViewSet, basename="consumer")
per_tenant.register("usage", UsageViewSet, basename="usage")
per_tenant.register("invoices", InvoiceViewSet, basename="invoice")

per_consumer = SimpleRouter(trailing_slash=True)
per_consumer.register("credentials", CredentialViewSet, basename="credential")

per_gateway = SimpleRouter(trailing_slash=True)
per_gateway.register("routes", RouteViewSet, basename="route")
per_gateway.register("grpcroutes", GRPCRouteViewSet, basename="grpcroute")
per_gateway.register("tcproutes", TCPRouteViewSet, basename="tcproute")
per_gateway.register("tlsroutes", TLSRouteViewSet, basename="tlsroute")
per_gateway.register("dubboroutes", DubboRouteViewSet, basename="dubboroute")
per_gateway.register("policies", PolicyViewSet, basename="policy")
per_gateway.register("revisions", RevisionViewSet, basename="revision")
per_gateway.register("operations", OperationViewSet, basename="operation")
per_gateway.register("replicas", ReplicaViewSet, basename="replica")
per_gateway.register("metrics", GatewayMetricsViewSet, basename="gateway-metrics")
per_gateway.register("access-logs", AccessLogViewSet, basename="access-log")

urlpatterns = [
    path("", ApiRootView.as_view(), name="api-root"),
    path("me/", MeView.as_view(), name="me"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path(
        "tenants/<slug:tenant>/budget/",
        BudgetView.as_view({"get": "retrieve", "put": "update"}),
        name="budget",
    ),
    path(
        "tenants/<slug:tenant>/apply/",
        DeclarativeViewSet.as_view({"post": "apply"}),
        name="tenant-apply",
    ),
    path(
        "tenants/<slug:tenant>/export/",
        DeclarativeViewSet.as_view({"get": "export"}),
        name="tenant-export",
    ),
    path("revenue/", RevenueView.as_view(), name="revenue"),
    path("plans/<slug:name>/prices/", PriceBookView.as_view(), name="plan-prices"),
    path("tenants/<slug:tenant>/", include(per_tenant.urls)),
    path("tenants/<slug:tenant>/gateways/<slug:gateway>/", include(per_gateway.urls)),
    path("tenants/<slug:tenant>/consumers/<slug:consumer>/", include(per_consumer.urls)),
    path("", include(platform.urls)),
]
