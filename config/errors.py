"""Domain exceptions: the one place where errors a user can cause are defined.

Services raise these; the API turns them into the error envelope (``config.api.errors``) and
the console into form errors. Each carries an HTTP status and a stable machine ``code``.
"""

from dataclasses import dataclass


class GantryError(Exception):
    status = 400
    code = "invalid"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def extra(self) -> dict:
        """Fields added to the error envelope beside code and message."""
        return {}


@dataclass(frozen=True)
class FieldError:
    path: str  # JSON path of the offending value, e.g. "spec.listeners[1].port"
    message: str
    code: str = "invalid"


class ValidationFailed(GantryError):
    status = 400
    code = "invalid"

    def __init__(self, fields: list[FieldError]):
        self.fields = fields
        summary = "; ".join(f"{f.path or '(body)'}: {f.message}" for f in fields[:5])
        super().__init__(summary or "invalid request")

    @classmethod
    def one(cls, path: str, message: str, code: str = "invalid") -> "ValidationFailed":
        return cls([FieldError(path, message, code)])


class NotFound(GantryError):
    status = 404
    code = "not_found"


class Conflict(GantryError):
    status = 409
    code = "conflict"


class StaleVersion(Conflict):
    code = "stale_version"


class Forbidden(GantryError):
    status = 403
    code = "forbidden"


class TenantSuspended(Forbidden):
    code = "tenant_suspended"


class QuotaExceeded(GantryError):
    """A write would take the tenant past one of its plan's quotas."""

    status = 403
    code = "quota_exceeded"

    def __init__(
        self,
        quota: str,
        *,
        limit: int,
        used: int,
        requested: int = 1,
        plan: str = "",
        message: str | None = None,
    ):
        self.quota, self.limit, self.used, self.requested, self.plan = (
            quota,
            limit,
            used,
            requested,
            plan,
        )
        super().__init__(
            message
            or f"quota {quota} of plan {plan!r} is {limit}; the tenant uses {used} "
            f"and this request needs {requested} more"
        )

    def extra(self) -> dict:
        return {
            "quota": {
                "name": self.quota,
                "limit": self.limit,
                "used": self.used,
                "requested": self.requested,
                "plan": self.plan,
            }
        }


class PayloadTooLarge(GantryError):
    """The request body is larger than the API accepts (``GANTRY_MAX_REQUEST_BYTES``)."""

    status = 413
    code = "payload_too_large"

    def __init__(self, limit: int):
        super().__init__(f"the request body is larger than {limit} bytes, the most the API accepts")
        self.limit = limit

    def extra(self) -> dict:
        return {"limit": self.limit}


class DisallowedValue(GantryError):
    """A value the tenant's plan does not allow (a gateway size, say)."""

    status = 403
    code = "quota_exceeded"

    def __init__(self, path: str, message: str):
        super().__init__(message)
        self.path = path

    def extra(self) -> dict:
        return {"fields": [{"path": self.path, "message": self.message, "code": self.code}]}
