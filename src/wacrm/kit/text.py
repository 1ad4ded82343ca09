"""Rules every free-text field shares: no NUL, no lone surrogates, no control characters."""

from __future__ import annotations

import unicodedata


def text_problem(value: str, *, allow_newlines: bool = False) -> str | None:
    """Why ``value`` is not acceptable text, or None when it is."""
    for char in value:
        category = unicodedata.category(char)
        if category == "Cs":
            return "must not contain lone surrogates"
        if char == "\x00":
            return "must not contain NUL characters"
        if category == "Cc" and not (allow_newlines and char in "\n\r\t"):
            return "must not contain control characters"
    return None


# Bidirectional overrides and isolates reorder what a reader sees ("Trojan Source"): a
# label shown in a roster must read as it is stored.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def clean_name(value: str, *, max_length: int) -> str:
    """A one-line human label: trimmed, 1..max_length characters, something visible, no
    control characters or bidirectional overrides."""
    value = value.strip()
    if not any(not char.isspace() and unicodedata.category(char) != "Cf" for char in value):
        raise ValueError("must not be empty")
    if len(value) > max_length:
        raise ValueError(f"must be at most {max_length} characters")
    problem = text_problem(value)
    if problem:
        raise ValueError(problem)
    if any(char in _BIDI_CONTROLS for char in value):
        raise ValueError("must not contain bidirectional control characters")
    return value
