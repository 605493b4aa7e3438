from django.contrib.auth import views as auth_views
from django.urls import include, path

from frontend.views import (
    audit,
    backends,
    budget,
    certificates,
    consumers,
    gateways,
    invoices,
    members,
    operations,
    policies,
    revisions,
    routes,
    tenant,
    tokens,
    traffic,
    usage,
)

app_name = "frontend"
GATEWAY = "t/<slug:tenant>/gateways/<slug:gateway>/"
ROUTE = GATEWAY + "routes/<slug:route>/"
POLICY = GATEWAY + "policies/<slug:policy>/"
BACKEND = "t/<slug:tenant>/backends/<slug:backend>/"
CERTIFICATE = "t/<slug:tenant>/certificates/<slug:certificate>/"
CONSUMER = "t/<slug:tenant>/consumers/<slug:consumer>/"
urlpatterns = [
    path("", tenant.home, name="home"),
    path("ops/", include("frontend.ops_urls")),  # the operators' pages
    path("login/", auth_views.LoginView.as_view(template_name="frontend/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("t/<slug:tenant>/", tenant.dashboard, name="tenant"),
    path("t/<slug:tenant>/tokens/", tokens.tokens, name="tokens"),
    path("t/<slug:tenant>/tokens/<str:prefix>/revoke/", tokens.revoke_token, name="revoke-token"),
    path("t/<slug:tenant>/audit/", audit.audit_log, name="audit"),
    path("t/<slug:tenant>/members/", members.member_list, name="members"),
    path("t/<slug:tenant>/members/<str:username>/", members.member_edit, name="member-edit"),
    path(
        "t/<slug:tenant>/members/<str:username>/remove/",
        members.member_remove,
        name="member-remove",
    ),  # fmt: skip
    path("t/<slug:tenant>/gateways/", gateways.gateway_list, name="gateways"),
    path("t/<slug:tenant>/gateways/new/", gateways.gateway_create, name="gateway-new"),
    path(GATEWAY, gateways.gateway_detail, name="gateway"),
    path(GATEWAY + "status/", gateways.gateway_status, name="gateway-status"),
    path(GATEWAY + "scale/", gateways.gateway_scale, name="gateway-scale"),
    path(GATEWAY + "delete/", gateways.gateway_delete, name="gateway-delete"),
    path(GATEWAY + "replicas/<int:index>/log/", gateways.replica_log, name="replica-log"),
    path("t/<slug:tenant>/backends/", backends.backend_list, name="backends"),
    path("t/<slug:tenant>/backends/new/", backends.backend_create, name="backend-new"),
    path(BACKEND, backends.backend_detail, name="backend"),
    path(BACKEND + "edit/", backends.backend_edit, name="backend-edit"),
    path(BACKEND + "delete/", backends.backend_delete, name="backend-delete"),
    path(GATEWAY + "revisions/", revisions.revision_list, name="revisions"),
    path(GATEWAY + "revisions/compare/", revisions.revision_compare, name="revision-compare"),
    path(GATEWAY + "operations/", operations.operation_list, name="operations"),
    path(GATEWAY + "operations/<int:operation>/", operations.operation_detail, name="operation"),
    path(GATEWAY + "usage/", usage.gateway_usage, name="gateway-usage"),
    path(GATEWAY + "access-logs/", traffic.gateway_access_logs, name="gateway-access-logs"),
    path(GATEWAY + "usage/csv/", usage.gateway_usage_csv, name="gateway-usage-csv"),
    path("t/<slug:tenant>/usage/", usage.tenant_usage, name="usage"),
    path("t/<slug:tenant>/budget/", budget.budget, name="budget"),
    path("t/<slug:tenant>/invoices/", invoices.invoice_list, name="invoices"),
    path("t/<slug:tenant>/invoices/<str:number>/", invoices.invoice_detail, name="invoice"),
    path(
        "t/<slug:tenant>/invoices/<str:number>/<str:kind>/",
        invoices.invoice_download,
        name="invoice-download",
    ),
    path("t/<slug:tenant>/usage/csv/", usage.tenant_usage_csv, name="usage-csv"),
    path("t/<slug:tenant>/audit/<int:event>/", audit.audit_event, name="audit-event"),
    path(GATEWAY + "revisions/<int:number>/", revisions.revision_detail, name="revision"),
    path(
        GATEWAY + "revisions/<int:number>/rollback/",
        revisions.revision_rollback,
        name="revision-rollback",
    ),  # fmt: skip
    path("t/<slug:tenant>/certificates/", certificates.certificate_list, name="certificates"),
    path(
        "t/<slug:tenant>/certificates/new/", certificates.certificate_create, name="certificate-new"
    ),  # fmt: skip
    path(CERTIFICATE, certificates.certificate_detail, name="certificate"),
    path(CERTIFICATE + "edit/", certificates.certificate_edit, name="certificate-edit"),
    path(CERTIFICATE + "delete/", certificates.certificate_delete, name="certificate-delete"),
    path("t/<slug:tenant>/consumers/", consumers.consumer_list, name="consumers"),
    path("t/<slug:tenant>/consumers/new/", consumers.consumer_create, name="consumer-new"),
    path(CONSUMER, consumers.consumer_detail, name="consumer"),
    path(CONSUMER + "edit/", consumers.consumer_edit, name="consumer-edit"),
    path(CONSUMER + "delete/", consumers.consumer_delete, name="consumer-delete"),
    path(
        CONSUMER + "credentials/<str:credential>/delete/",
        consumers.credential_delete,
        name="credential-delete",
    ),  # fmt: skip
    path("t/<slug:tenant>/policies/", policies.tenant_policies, name="all-policies"),
    path(GATEWAY + "policies/", policies.policy_list, name="policies"),
    path(GATEWAY + "policies/new/", policies.policy_create, name="policy-new"),
    path(POLICY, policies.policy_detail, name="policy"),
    path(POLICY + "edit/", policies.policy_edit, name="policy-edit"),
    path(POLICY + "delete/", policies.policy_delete, name="policy-delete"),
    path(GATEWAY + "routes/", routes.route_list, name="routes"),
    path(GATEWAY + "routes/new/", routes.route_create, name="route-new"),
    path(ROUTE, routes.route_detail, name="route"),
    path(ROUTE + "edit/", routes.route_edit, name="route-edit"),
    path(ROUTE + "delete/", routes.route_delete, name="route-delete"),
]
