"""What a request's descriptors ask for: the compiled config puts each rule's limit in its
descriptor (an entry ``limit`` = ``<requests>/<Unit>``), so the service needs no config of its
own and a changed limit takes effect with the config that carries it. Pure functions."""

from dataclasses import dataclass

UNIT_SECONDS = {"Second": 1, "Minute": 60, "Hour": 3_600, "Day": 86_400}
LIMIT_KEY = "limit"
EXPECT_KEY = "expect"
MAX_KEY_LENGTH = 4_096


@dataclass(frozen=True)
class Limit:
    key: str  # the counter within the domain: every entry of the descriptor
    requests: int
    unit: str  # Second | Minute | Hour | Day

    @property
    def window(self) -> int:
        return UNIT_SECONDS[self.unit]


def parse_limit(value: str) -> tuple[int, str] | None:
    requests, _, unit = value.partition("/")
    if unit not in UNIT_SECONDS or not requests.isdigit():
        return None
    count = int(requests)
    return (count, unit) if 0 < count < 2**32 else None


def limit_of(entries: list[tuple[str, str]]) -> Limit | None:
    """The limit of one descriptor's ``(key, value)`` entries; None when it names none (or
    not one this service reads): such a descriptor is never limited."""
    for position, (key, value) in enumerate(entries):
        # ``expect``: the entry before it must have this value (a client address inside a
        # selector's CIDR), else the rule does not count the request.
        if key == EXPECT_KEY and (position == 0 or entries[position - 1][1] != value):
            return None
    found = [value for key, value in entries if key == LIMIT_KEY]
    if len(found) != 1:
        return None
    parsed = parse_limit(found[0])
    if parsed is None:
        return None
    key = "\x1f".join(f"{k}\x1e{v}" for k, v in entries)
    if len(key) > MAX_KEY_LENGTH:
        return None
    return Limit(key, *parsed)


def window_start(now: float, window: int) -> int:
    """Fixed windows aligned on the epoch: every replica and every service process agree on
    which window a moment belongs to without talking to each other."""
    return int(now // window) * window
