"""Optimistic concurrency and merge-patch helpers shared by every ``spec`` resource."""

from config.errors import StaleVersion, ValidationFailed


def expected_version(request) -> int | None:
    """The resourceVersion the caller based its write on: ``If-Match`` or the body's field."""
    header = request.headers.get("If-Match", "").strip()
    body = request.data if isinstance(request.data, dict) else {}
    raw = header.removeprefix("W/").strip('"') if header else body.get("resourceVersion")
    if raw in (None, "", "*"):
        return None
    try:
        return int(raw)
    except (TypeError, ValueError):
        path = "If-Match" if header else "resourceVersion"
        raise ValidationFailed.one(path, "must be a resourceVersion from a previous read") from None


def check_version(current: int, expected: int | None, what: str) -> None:
    if expected is not None and expected != current:
        raise StaleVersion(
            f"{what} has changed since you read it (your resourceVersion {expected}, "
            f"now {current}); read it again and re-apply your change"
        )


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch: objects merge, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
