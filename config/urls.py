"""Top-level URLs: the API, the console, the operators' admin and metrics."""

from django.contrib import admin
from django.http import HttpResponse
from django.urls import include, path

from config import handlers
from provisioning import prometheus

urlpatterns = [
    path("api/v1/", include("config.api.urls")),
    path("admin/", admin.site.urls),
    path("metrics", prometheus.metrics, name="metrics"),
    path("healthz", lambda request: HttpResponse("ok\n", content_type="text/plain")),
    path("", include("frontend.urls")),
]

handler400 = handlers.bad_request
handler403 = handlers.permission_denied
handler404 = handlers.not_found
handler500 = handlers.server_error
