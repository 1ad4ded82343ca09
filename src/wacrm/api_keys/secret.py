"""The key format: ``wacrm_live_`` + 32 base62 random characters + 6 base62 CRC32 checksum.

The checksum lets us (and secret scanners) reject a mistyped or invented key without a
database query.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import zlib
from dataclasses import dataclass

KEY_MARKER = "wacrm_live_"
BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
RANDOM_LENGTH = 32
CHECKSUM_LENGTH = 6
PREFIX_RANDOM_CHARS = 8
KEY_LENGTH = len(KEY_MARKER) + RANDOM_LENGTH + CHECKSUM_LENGTH
_BASE62_SET = frozenset(BASE62)


@dataclass(frozen=True, repr=False)
class NewSecret:
    plaintext: str
    key_hash: str
    prefix: str

    def __repr__(self) -> str:  # never let the plaintext reach a log or traceback
        return f"NewSecret(prefix={self.prefix!r})"


def _base62(number: int, width: int) -> str:
    digits = []
    while number:
        number, remainder = divmod(number, 62)
        digits.append(BASE62[remainder])
    return "".join(reversed(digits)).rjust(width, BASE62[0])


def checksum(random_part: str) -> str:
    return _base62(zlib.crc32(random_part.encode("ascii")), CHECKSUM_LENGTH)


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def generate_secret() -> NewSecret:
    random_part = "".join(secrets.choice(BASE62) for _ in range(RANDOM_LENGTH))
    plaintext = KEY_MARKER + random_part + checksum(random_part)
    return NewSecret(
        plaintext=plaintext,
        key_hash=hash_key(plaintext),
        prefix=KEY_MARKER + random_part[:PREFIX_RANDOM_CHARS],
    )


def is_well_formed(candidate: str) -> bool:
    """Shape and checksum only: no database involved."""
    if len(candidate) != KEY_LENGTH or not candidate.startswith(KEY_MARKER):
        return False
    body = candidate[len(KEY_MARKER) :]
    if not _BASE62_SET.issuperset(body):
        return False
    random_part, check = body[:RANDOM_LENGTH], body[RANDOM_LENGTH:]
    return secrets.compare_digest(checksum(random_part), check)
