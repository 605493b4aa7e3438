"""Kubernetes quantities as Envoy Gateway accepts them for sizes (``32Ki``, ``1Mi``,
``65535``) to bytes: a positive integer, optionally with a binary (Ki, Mi, Gi, Ti, Pi, Ei) or
decimal (k, M, G, T, P, E) suffix."""

import re

QUANTITY = re.compile(r"([1-9][0-9]{0,18})([KMGTPE]i|[kMGTPE])?")
_FACTOR = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
           "E": 10**18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50,
           "Ei": 2**60}  # fmt: skip


def to_bytes(value: str) -> int:
    match = QUANTITY.fullmatch(value)
    if not match:
        raise ValueError(f"not a quantity: {value!r}")
    return int(match[1]) * _FACTOR[match[2] or ""]
