"""Secrets never reach a log line: API keys, webhook secrets, bearer tokens, Meta tokens and
app secrets, passwords, cookies and CSRF tokens are replaced by ``[REDACTED]``.

Two nets: patterns for secrets whose shape we know (wherever they appear), and names for
secrets whose value has no shape (``password=...``, ``"app_secret": "..."``, a field called
``authorization`` in a log record's extras).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[REDACTED]"

_SECRET_NAMES = (
    r"access[_-]?tokens?|refresh[_-]?token|app[_-]?secret|client[_-]?secret|secret[_-]?key"
    r"|signing[_-]?secret|secret|passwords?|passwd|api[_-]?key|authorization|csrf[_-]?token"
    r"|csrf|session[_-]?token|session|verify[_-]?token|token|plaintext"
)
_SECRET_NAME = re.compile(rf"(?:.*[^a-z0-9])?(?:{_SECRET_NAMES})", re.IGNORECASE)

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # A Cookie or Set-Cookie header: every cookie in it, whatever its name.
    (re.compile(r"(?i)\b((?:set-)?cookie[\"']?\s*[:=]\s*)[^\r\n]+"), rf"\g<1>{REDACTED}"),
    # Authorization schemes followed by their credential.
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]+"), rf"\g<1>\g<2>{REDACTED}"),
    # name=value, name: value, "name": "value", 'name': 'value' for secret-looking names.
    (
        re.compile(
            rf"(?i)(?<![a-z0-9])((?:{_SECRET_NAMES})[\"']?\s*[:=]\s*)"
            r"(?:\"[^\"]*\"|'[^']*'|[^\s\"'&,;)}\]]+)"
        ),
        rf"\g<1>{REDACTED}",
    ),
    # Secrets with a known shape, wherever they stand.
    (re.compile(r"wacrm_(live|test)_[0-9A-Za-z]+"), rf"wacrm_\g<1>_{REDACTED}"),
    (re.compile(r"whsec_[A-Za-z0-9+/=_-]+"), f"whsec_{REDACTED}"),
    (re.compile(r"sbx_[0-9a-f]{8,}"), f"sbx_{REDACTED}"),
    (re.compile(r"EAA[A-Za-z0-9]{20,}"), REDACTED),  # Meta (Facebook) access tokens
]


def redact_text(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def is_secret_name(name: str) -> bool:
    return _SECRET_NAME.fullmatch(name) is not None


def redact_value(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` with secrets redacted: strings by pattern, mapping entries by name."""
    if depth > 8:
        return REDACTED  # deeper than any log field should be: don't guess
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            key: REDACTED
            if isinstance(key, str) and is_secret_name(key)
            else redact_value(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(item, depth + 1) for item in value]
    if isinstance(value, bytes):
        return redact_text(value.decode("utf-8", "replace"))
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact_text(str(value))
