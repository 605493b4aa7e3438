"""Two texts side by side: rows of (old line, new line), changed lines marked, long runs of
unchanged lines collapsed to a count. Pure: the revision pages feed it redacted YAML."""

import difflib
from dataclasses import dataclass

CONTEXT = 3  # unchanged lines kept on each side of a change


@dataclass(frozen=True)
class Row:
    """One row of the side-by-side view. ``kind``: same, changed, removed (only on the left),
    added (only on the right) or skipped (``skipped`` unchanged lines collapsed)."""

    kind: str
    old_number: int | None = None
    old: str = ""
    new_number: int | None = None
    new: str = ""
    skipped: int = 0


@dataclass(frozen=True)
class SideBySide:
    rows: list[Row]
    added: int
    removed: int
    changed: int

    @property
    def identical(self) -> bool:
        return not (self.added or self.removed or self.changed)


def _same(rows: list[Row], old: list[str], new: list[str], i1: int, i2: int, j1: int,
          first: bool, last: bool) -> None:  # fmt: skip
    """Unchanged lines old[i1:i2] (== new[j1:j1+n]): kept within CONTEXT of a change, the
    rest collapsed to one row with their count."""
    count = i2 - i1
    head = 0 if first else CONTEXT
    tail = 0 if last else CONTEXT
    if count <= head + tail + 1:  # collapsing would hide a single line: show them all
        head, tail = count, 0
    for k in range(head):
        rows.append(Row("same", i1 + k + 1, old[i1 + k], j1 + k + 1, new[j1 + k]))
    hidden = count - head - tail
    if hidden > 0:
        rows.append(Row("skipped", skipped=hidden))
    for k in range(count - tail, count):
        rows.append(Row("same", i1 + k + 1, old[i1 + k], j1 + k + 1, new[j1 + k]))


def compare(old_text: str, new_text: str) -> SideBySide:
    """The rows that show ``old_text`` (left) against ``new_text`` (right)."""
    old, new = old_text.splitlines(), new_text.splitlines()
    matcher = difflib.SequenceMatcher(None, old, new)  # as unified_diff matches (autojunk)
    opcodes = matcher.get_opcodes()
    rows: list[Row] = []
    added = removed = changed = 0
    for index, (tag, i1, i2, j1, j2) in enumerate(opcodes):
        if tag == "equal":
            _same(rows, old, new, i1, i2, j1, first=index == 0, last=index == len(opcodes) - 1)
            continue
        pairs = max(i2 - i1, j2 - j1)
        for k in range(pairs):
            has_old, has_new = i1 + k < i2, j1 + k < j2
            if has_old and has_new:
                kind = "changed"
                changed += 1
            elif has_old:
                kind = "removed"
                removed += 1
            else:
                kind = "added"
                added += 1
            rows.append(Row(
                kind,
                i1 + k + 1 if has_old else None, old[i1 + k] if has_old else "",
                j1 + k + 1 if has_new else None, new[j1 + k] if has_new else "",
            ))  # fmt: skip
    return SideBySide(rows, added, removed, changed)
