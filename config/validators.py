"""Validators for names and free text shared by every resource."""

import re
import unicodedata

from django.core.exceptions import ValidationError

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_LABEL_MESSAGE = (
    "must be a DNS label: at most 63 lowercase letters, digits and '-', "
    "starting and ending with a letter or digit"
)


def validate_dns_label(value: str) -> None:
    if not isinstance(value, str) or not DNS_LABEL.match(value):
        raise ValidationError(DNS_LABEL_MESSAGE, code="invalid_name")


# Characters that change how text around them is displayed without being visible: bidi
# overrides and isolates (U+202A–U+202E, U+2066–U+2069) can make "gpj.exe" read "exe.jpg" in
# another person's console, zero-width ones hide differences between two names. Zero-width
# (non-)joiners stay allowed: Persian, Indic scripts and emoji sequences need them.
_ALLOWED_FORMAT = {"\u200c", "\u200d"}
_LINE_BREAKS = {"\n", "\r"}


def display_text_problem(value: str, *, multiline: bool = False) -> str | None:
    """Why ``value`` may not be shown to other people as it is, or None.

    Refused: control characters (Unicode Cc; tab, and newlines when ``multiline``, excepted),
    format characters (Cf) but the joiners, lone surrogates (Cs), and line or paragraph
    separators (Zl, Zp).
    """
    for char in value:
        category = unicodedata.category(char)
        if char == "\t" or (multiline and char in _LINE_BREAKS):
            continue
        if category in ("Cc", "Cs", "Zl", "Zp") or (
            category == "Cf" and char not in _ALLOWED_FORMAT
        ):
            name = unicodedata.name(char, "a control character")
            return (
                f"must not contain control or invisible formatting characters "
                f"(found U+{ord(char):04X}, {name})"
            )
    return None


def validate_display_text(value: str) -> None:
    """Validator (Django forms, DRF fields) for one line of text shown to other people."""
    problem = display_text_problem(value)
    if problem:
        raise ValidationError(problem, code="invalid_characters")


def validate_display_paragraphs(value: str) -> None:
    """The same for text that may span lines (descriptions)."""
    problem = display_text_problem(value, multiline=True)
    if problem:
        raise ValidationError(problem, code="invalid_characters")
