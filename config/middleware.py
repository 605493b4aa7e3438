"""Request context: a request id and the client's address on every request."""

import re
import uuid

from django.conf import settings

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def client_address(request) -> str | None:
    """The client's IP, trusting only as many X-Forwarded-For hops as configured."""
    hops = settings.GANTRY_TRUSTED_PROXY_COUNT
    if hops:
        forwarded = [p.strip() for p in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [p for p in forwarded if p]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return request.META.get("REMOTE_ADDR") or None


class RequestContextMiddleware:
    """Gives each request an id (the caller's X-Request-ID when well-formed) and echoes it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.client_ip = client_address(request)
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response
