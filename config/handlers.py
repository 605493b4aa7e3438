"""Django-level error pages: the API's JSON envelope under /api/, plain pages elsewhere."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse
from django.views import defaults

from config.api.errors import json_error_response


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def bad_request(request, exception):
    if isinstance(exception, RequestDataTooBig):
        return payload_too_large(request)
    if _is_api(request):
        return json_error_response(request, 400, "bad_request", "bad request")
    return defaults.bad_request(request, exception)


def payload_too_large(request):
    """413 naming the limit (Django's own answer would be a bare 400)."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    message = f"the request body is larger than {limit} bytes, the most accepted"
    if _is_api(request):
        return json_error_response(request, 413, "payload_too_large", message, limit=limit)
    return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")


def permission_denied(request, exception):
    if _is_api(request):
        return json_error_response(request, 403, "forbidden", "forbidden")
    return defaults.permission_denied(request, exception)


def not_found(request, exception):
    if _is_api(request):
        return json_error_response(request, 404, "not_found", "Not found.")
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _is_api(request):
        message = "internal error; quote the request id when reporting it"
        return json_error_response(request, 500, "internal_error", message)
    return defaults.server_error(request)
