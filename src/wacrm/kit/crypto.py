"""Encryption at rest for secrets we must be able to read back (tokens, signing secrets).

The key is derived from WACRM_SECRET_KEY with HKDF, so one deployment secret is all an
operator keeps. Fernet gives authenticated encryption: a tampered value fails to decrypt.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


@lru_cache(maxsize=8)
def _fernet(secret_key: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(derive_key(secret_key, b"wacrm-at-rest-v1")))


def derive_key(secret_key: str, purpose: bytes, length: int = 32) -> bytes:
    """A key for one purpose, derived from the deployment secret."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=purpose).derive(
        secret_key.encode()
    )


def encrypt(secret_key: str, plaintext: str) -> str:
    return _fernet(secret_key).encrypt(plaintext.encode()).decode()


def decrypt(secret_key: str, token: str) -> str:
    try:
        return _fernet(secret_key).decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError("cannot decrypt: wrong WACRM_SECRET_KEY or tampered value") from None
