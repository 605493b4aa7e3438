"""Optimistic concurrency and merge-patch helpers shared by every ``spec`` resource."""

import re

from config.errors import StaleVersion, ValidationFailed

# ASCII digits only: int() also takes "٣", "1_0" and " 1 ", and a JSON true would pass as 1.
_VERSION = re.compile(r"[0-9]{1,19}")


def expected_version(request) -> int | None:
    """The resourceVersion the caller based its write on: ``If-Match`` or the body's field."""
    header = request.headers.get("If-Match", "").strip()
    body = request.data if isinstance(request.data, dict) else {}
    raw = header.removeprefix("W/").strip('"') if header else body.get("resourceVersion")
    if raw in (None, "", "*"):
        return None
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
        raw = str(raw)
    if not isinstance(raw, str) or not _VERSION.fullmatch(raw):
        path = "If-Match" if header else "resourceVersion"
        raise ValidationFailed.one(path, "must be a resourceVersion from a previous read")
    return int(raw)


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
