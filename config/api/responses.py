"""Responses that carry a secret shown once (a new API token, a new API key)."""

from rest_framework import status as http
from rest_framework.response import Response


def secret_created(body: dict) -> Response:
    """201 with ``Cache-Control: no-store``: no browser or proxy may keep a copy of the secret."""
    response = Response(body, status=http.HTTP_201_CREATED)
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"  # HTTP/1.0 caches
    return response
