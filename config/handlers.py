"""Django-level error pages: the API's JSON envelope under /api/, plain pages elsewhere."""

from django.views import defaults

from config.api.errors import json_error_response


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def bad_request(request, exception):
    if _is_api(request):
        return json_error_response(request, 400, "bad_request", "bad request")
    return defaults.bad_request(request, exception)


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
