"""Meta's webhook signature: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, body)>``."""

from __future__ import annotations

import hashlib
import hmac
import string
from collections.abc import Iterable

from wacrm.kit.errors import AppError

SIGNATURE_HEADER = "X-Hub-Signature-256"
PREFIX = "sha256="
_HEX = frozenset(string.hexdigits)


class InvalidSignature(AppError):
    status, code = 401, "unauthorized"

    def __init__(self) -> None:
        super().__init__(f"Missing or invalid {SIGNATURE_HEADER} signature.")


def signature_header(body: bytes, secret: bytes) -> str:
    """The header value Meta (or our sandbox) sends with ``body``."""
    return PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def signature_matches(body: bytes, header: str | None, secrets: Iterable[bytes]) -> bool:
    """Whether ``header`` signs exactly these raw bytes with one of ``secrets``.

    Compared in constant time. Any header that is not ``sha256=`` + 64 hex digits in ASCII
    is simply not a match, whatever bytes it holds.
    """
    expected = _digest(header)
    if expected is None:
        return False
    matched = False
    for secret in secrets:
        actual = hmac.new(secret, body, hashlib.sha256).digest()
        matched |= hmac.compare_digest(actual, expected)
    return matched


def _digest(header: str | None) -> bytes | None:
    if header is None or not header.isascii():
        return None
    header = header.strip()
    if not header.startswith(PREFIX):
        return None
    hex_digest = header[len(PREFIX) :]
    if len(hex_digest) != 64 or not _HEX.issuperset(hex_digest):
        return None
    return bytes.fromhex(hex_digest)
