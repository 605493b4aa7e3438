"""Canonical JSON (sorted keys, no spaces, UTF-8 as is): what revisions hash and store, and how
to write it in pieces, so text already written for an unchanged part is reused as it is."""

import json


def dumps(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def object_text(value: dict, special: dict) -> str:
    """``dumps(value)``, with the values of the ``special`` keys written by their function."""
    items = []
    for key in sorted(value):
        write = special.get(key, dumps)
        items.append(f"{dumps(key)}:{write(value[key])}")
    return "{" + ",".join(items) + "}"


def array_text(values, write) -> str:
    """``dumps(list(values))`` with each element written by ``write``."""
    return "[" + ",".join(write(value) for value in values) + "]"
