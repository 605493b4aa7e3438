"""Plain data (what JSON holds) as block-style YAML, fast.

PyYAML's emitter, even with libyaml, spends about 150 ms on a 1,000-route gateway's compiled
config (10,000 lines) in its Python representer; this writes the same kind of document in a
tenth of that. It only knows dicts, lists, strings, numbers, booleans and None — all a compiled
config holds — and quotes a string unless it is unmistakably a plain one, so that
``yaml.safe_load(dump(data)) == data`` always (tests/provisioning/test_yaml_text.py checks it for
arbitrary data). Keys keep their order, as ``yaml.dump(sort_keys=False)`` does.
"""

import json
import math
import re

import yaml

# A plain scalar: starts with a letter, digit or one of a few safe characters and holds no
# indicator that could end or change it. It is still quoted when PyYAML's own implicit
# resolvers would read it as something else (a number, boolean, null, date, ...).
_PLAIN = re.compile(r"[A-Za-z0-9_/.][A-Za-z0-9_./()+=-]*(?:[ :@][A-Za-z0-9_./()+=-]+)*")
_RESOLVER = yaml.resolver.Resolver()
_STRING_TAG = "tag:yaml.org,2002:str"
# What YAML does not allow as it is (its non-printable characters), or reads as a line break or
# byte-order mark, and JSON leaves as it is: escaped.
_UNPRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd"
    "\U00010000-\U0010ffff]"
)


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _string(value: str) -> str:
    if (
        _PLAIN.fullmatch(value)
        and _RESOLVER.resolve(yaml.ScalarNode, value, (True, False)) == _STRING_TAG
    ):
        return value
    return _UNPRINTABLE.sub(_escape, json.dumps(value, ensure_ascii=False))


def _float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    mantissa, _, exponent = text.partition("e")
    if "." not in mantissa:
        mantissa += ".0"  # YAML 1.1 reads 1e+16 as a string, 1.0e+16 as a float
    return mantissa + (f"e{exponent}" if exponent else "")


def _scalar(value) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, str):
        return _string(value)
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def _block(value, indent: str, out: list[str]) -> None:
    """``value`` (a non-empty dict or list) as lines at ``indent``."""
    if isinstance(value, dict):
        for key, item in value.items():
            head = f"{indent}{_scalar(key)}:"
            if isinstance(item, dict) and item:
                out.append(head)
                _block(item, indent + "  ", out)
            elif isinstance(item, list) and item:
                out.append(head)
                _block(item, indent, out)  # a list under a key sits at the key's indent
            else:
                out.append(f"{head} {_inline(item)}")
        return
    for item in value:
        if isinstance(item, dict | list) and item:
            nested: list[str] = []
            _block(item, indent + "  ", nested)
            # The first line of the item follows the dash; the rest keep their indent.
            out.append(f"{indent}- {nested[0][len(indent) + 2 :]}")
            out.extend(nested[1:])
        else:
            out.append(f"{indent}- {_inline(item)}")


def _inline(value) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _scalar(value)


def dump(data) -> str:
    """``data`` as a YAML document."""
    if isinstance(data, dict | list) and data:
        out: list[str] = []
        _block(data, "", out)
        return "\n".join(out) + "\n"
    return _inline(data) + "\n"
