"""Gateway API durations (``1h30m``, ``500ms``) to milliseconds."""

import re

_PART = re.compile(r"([0-9]{1,5})(h|ms|m|s)")
_UNIT_MS = {"h": 3_600_000, "m": 60_000, "s": 1_000, "ms": 1}
DURATION = re.compile(r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")


def to_ms(value: str) -> int:
    if not DURATION.match(value):
        raise ValueError(f"not a Gateway API duration: {value!r}")
    return sum(int(n) * _UNIT_MS[unit] for n, unit in _PART.findall(value))
