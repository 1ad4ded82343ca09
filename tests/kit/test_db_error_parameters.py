"""A database error names its statement but never its parameters: they are logged with the
traceback, and they hold password hashes, key hashes, CSRF tokens and customers' messages."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from wacrm.kit.db import Database

SECRET = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"


async def test_a_failed_statement_does_not_carry_its_parameters(tmp_path):
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'errors.db'}")
    try:
        async with database.engine.begin() as connection:
            await connection.execute(text("CREATE TABLE users (password_hash TEXT UNIQUE)"))
            insert = text("INSERT INTO users (password_hash) VALUES (:hash)")
            await connection.execute(insert, {"hash": SECRET})
            with pytest.raises(IntegrityError) as caught:
                await connection.execute(insert, {"hash": SECRET})
    finally:
        await database.dispose()
    assert "INSERT INTO users" in str(caught.value)
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)
