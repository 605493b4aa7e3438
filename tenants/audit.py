"""Who is acting, and the audit record every write leaves behind."""

import re
from dataclasses import dataclass

from tenants.models import AuditEvent, Tenant

REDACTED = "[redacted]"
_SECRET_KEY = re.compile(
    r"(password|secret|token|digest|private_?key|privatekey|kubeconfig|apikey|^key$|credential)",
    re.IGNORECASE,
)
# Policy fields whose names look secret but hold only references (consumers by name).
_NOT_SECRET = frozenset({"apiKeyAuth", "credentialRefs"})


@dataclass(frozen=True)
class Actor:
    """The user (or system component) behind a write, and where the request came from."""

    user: object | None  # a django.contrib.auth User, or None for system components
    name: str
    token_prefix: str = ""
    request_id: str = ""
    client_ip: str | None = None
    is_staff: bool = False

    @classmethod
    def from_request(cls, request) -> "Actor":
        user = request.user
        token = getattr(request, "auth", None)
        return cls(
            user=user,
            name=user.get_username(),
            token_prefix=getattr(token, "prefix", "") or "",
            request_id=getattr(request, "request_id", ""),
            client_ip=getattr(request, "client_ip", None),
            is_staff=bool(user.is_staff),
        )

    @classmethod
    def system(cls, component: str) -> "Actor":
        return cls(user=None, name=f"system:{component}", is_staff=True)


def redact(value):
    """A copy of ``value`` with every secret-looking field replaced by a marker."""
    if isinstance(value, dict):
        return {
            key: (
                REDACTED
                if _SECRET_KEY.search(str(key)) and key not in _NOT_SECRET and item
                else redact(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def record(
    actor: Actor,
    action: str,
    object_type: str,
    object_name: str,
    *,
    tenant: Tenant | None,
    before=None,
    after=None,
) -> AuditEvent:
    """Writes the audit event; call it inside the write's transaction."""
    user = actor.user if getattr(actor.user, "pk", None) else None
    return AuditEvent.objects.create(
        tenant=tenant,
        tenant_slug=tenant.slug if tenant else "",
        actor=user,
        actor_name=actor.name,
        token_prefix=actor.token_prefix,
        action=action,
        object_type=object_type,
        object_name=object_name,
        before=redact(before),
        after=redact(after),
        request_id=actor.request_id,
        client_ip=actor.client_ip,
    )
