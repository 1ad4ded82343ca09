"""Argon2id password hashing (argon2-cffi's RFC 9106 defaults unless configured cheaper).

Tests lower the cost through settings; the algorithm and the code path stay the same.
"""

from __future__ import annotations

import secrets
from functools import lru_cache

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from wacrm.settings import get_settings


@lru_cache(maxsize=1)
def _hasher() -> tuple[PasswordHash, str]:
    settings = get_settings()
    hasher = PasswordHash(
        (Argon2Hasher(time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib),)
    )
    # Verifying against this when the email is unknown keeps both answers equally slow.
    return hasher, hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher()[0].hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    hasher, dummy = _hasher()
    if password_hash is None:
        hasher.verify(password, dummy)
        return False
    return hasher.verify(password, password_hash)


def generate_password() -> str:
    return secrets.token_urlsafe(15)
