"""Status conditions, with Kubernetes semantics: lastTransitionTime moves only on a change."""

from django.utils import timezone


def set_condition(
    conditions: list[dict], type_: str, status: str, reason: str, message: str, generation: int
) -> list[dict]:
    """A copy of ``conditions`` with ``type_`` set; other conditions keep their order."""
    now = timezone.now().isoformat()
    result, found = [], False
    for condition in conditions:
        if condition.get("type") == type_:
            found = True
            changed = condition.get("status") != status
            condition = {
                "type": type_,
                "status": status,
                "reason": reason,
                "message": message,
                "observedGeneration": generation,
                "lastTransitionTime": now if changed else condition.get("lastTransitionTime", now),
            }
        result.append(condition)
    if not found:
        result.append(
            {
                "type": type_,
                "status": status,
                "reason": reason,
                "message": message,
                "observedGeneration": generation,
                "lastTransitionTime": now,
            }
        )
    return result
