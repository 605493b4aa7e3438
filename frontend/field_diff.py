"""What changed between two JSON documents (an audit event's before and after), field by
field: each leaf as a JSON path (``spec.rules[0].matches[0].path.value``) with its old and new
value. Pure."""

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Change:
    path: str
    kind: str  # changed | added | removed
    old: str = ""
    new: str = ""


def _shown(value) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def flatten(value, path: str = "") -> dict[str, object]:
    """Leaf path → value. Empty objects and lists are leaves (an added ``{}`` is a change)."""
    if isinstance(value, dict) and value:
        out = {}
        for key, item in value.items():
            out.update(flatten(item, f"{path}.{key}" if path else str(key)))
        return out
    if isinstance(value, list) and value:
        out = {}
        for index, item in enumerate(value):
            out.update(flatten(item, f"{path}[{index}]"))
        return out
    return {path or "(whole value)": value}


def changes(before, after) -> list[Change]:
    """Every leaf that differs, in the order the documents list them (before's, then new)."""
    old = flatten(before) if before is not None else {}
    new = flatten(after) if after is not None else {}
    found = []
    for path in dict.fromkeys([*old, *new]):
        if path not in new:
            found.append(Change(path, "removed", old=_shown(old[path])))
        elif path not in old:
            found.append(Change(path, "added", new=_shown(new[path])))
        elif old[path] != new[path] or type(old[path]) is not type(new[path]):
            found.append(Change(path, "changed", _shown(old[path]), _shown(new[path])))
    return found
