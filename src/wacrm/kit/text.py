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


def clean_name(value: str, *, max_length: int) -> str:
    """A one-line human label: trimmed, 1..max_length characters, no control characters."""
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    if len(value) > max_length:
        raise ValueError(f"must be at most {max_length} characters")
    problem = text_problem(value)
    if problem:
        raise ValueError(problem)
    return value
