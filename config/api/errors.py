"""One error envelope for every API error.

{"error": {"status": 400, "code": "invalid", "message": "...",
           "fields": [{"path": "spec.listeners[0].port", "message": "...", "code": "..."}],
           "requestId": "..."}}
"""

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from config.errors import GantryError, PayloadTooLarge, ValidationFailed

_DRF_CODES = {
    drf.NotAuthenticated: "not_authenticated",
    drf.AuthenticationFailed: "not_authenticated",
    drf.PermissionDenied: "forbidden",
    drf.NotFound: "not_found",
    drf.MethodNotAllowed: "method_not_allowed",
    drf.NotAcceptable: "not_acceptable",
    drf.UnsupportedMediaType: "unsupported_media_type",
    drf.Throttled: "throttled",
    drf.ParseError: "parse_error",
}


def flatten(detail, path: str = "") -> list[dict]:
    """Turns DRF's nested error detail into a flat list of {path, message, code}."""
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            if key in ("non_field_errors", "__all__"):
                out += flatten(value, path)
            elif isinstance(key, int):  # ListSerializer reports items by index
                out += flatten(value, f"{path}[{key}]")
            else:
                out += flatten(value, f"{path}.{key}" if path else str(key))
        return out
    if isinstance(detail, list):
        if all(isinstance(item, (str, drf.ErrorDetail)) for item in detail):
            return [_leaf(item, path) for item in detail]
        out = []
        for index, item in enumerate(detail):
            if item:  # DRF leaves {} for list items without errors
                out += flatten(item, f"{path}[{index}]")
        return out
    return [_leaf(detail, path)]


def _leaf(item, path: str) -> dict:
    return {"path": path, "message": str(item), "code": getattr(item, "code", None) or "invalid"}


def envelope(status: int, code: str, message: str, request=None, **extra) -> dict:
    body = {"status": status, "code": code, "message": message, **extra}
    request_id = getattr(request, "request_id", None)
    if request_id:
        body["requestId"] = request_id
    return {"error": body}


def exception_handler(exc, context):
    request = context.get("request")
    if isinstance(exc, RequestDataTooBig):  # Django's own check, where it reads the body
        exc = PayloadTooLarge(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    if isinstance(exc, ValidationFailed):
        fields = [{"path": f.path, "message": f.message, "code": f.code} for f in exc.fields]
        data = envelope(exc.status, exc.code, exc.message, request, fields=fields)
        return Response(data, status=exc.status)
    if isinstance(exc, GantryError):
        data = envelope(exc.status, exc.code, exc.message, request, **exc.extra())
        return Response(data, status=exc.status)
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a bug: Django's 500 handler answers with the envelope
    if isinstance(exc, drf.ValidationError):
        fields = flatten(exc.detail)
        summary = "; ".join(f"{f['path'] or '(body)'}: {f['message']}" for f in fields[:5])
        response.data = envelope(400, "invalid", summary, request, fields=fields)
        return response
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
    message = str(exc.detail) if not isinstance(exc.detail, (list, dict)) else str(exc)
    response.data = envelope(response.status_code, code, message, request)
    if response.status_code == 401:
        response["WWW-Authenticate"] = 'Bearer realm="gantry"'
    return response


def json_error_response(request, status: int, code: str, message: str, **extra) -> JsonResponse:
    return JsonResponse(envelope(status, code, message, request, **extra), status=status)
