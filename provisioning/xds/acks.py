"""What an Envoy said about a response: accepted (ACK) or rejected (NACK, with its message)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Ack:
    """The replica holds ``version`` of ``type_url`` (``error`` is None), or rejected it and
    keeps serving what it had before (``error`` is Envoy's message)."""

    type_url: str
    version: str
    error: str | None = None


def rejection(request) -> str | None:
    """Envoy's message if the request is a NACK (``error_detail`` set), else None."""
    if not request.HasField("error_detail"):
        return None
    return request.error_detail.message or f"rejected (gRPC code {request.error_detail.code})"
