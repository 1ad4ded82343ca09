"""The API-key cache is on only while LISTEN/NOTIFY can invalidate it (never past a revoke)."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import TEST_DATABASE_URL
from tests.helpers import create_account, create_key, create_member, login
from wacrm.api_keys.cache import LISTENER_NAME, KeyCache, KeyChangeListener
from wacrm.api_keys.repository import AuthRecord
from wacrm.api_keys.secret import hash_key
from wacrm.models import Role

postgres_only = pytest.mark.skipif(not TEST_DATABASE_URL, reason="needs PostgreSQL")


async def wait_for(condition, seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_cache_is_off_until_switched_on_and_refuses_raced_entries():
    cache = KeyCache()
    record = AuthRecord(*([None] * 9))  # type: ignore[arg-type]
    cache.put("h", record, cache.version)
    assert cache.get("h") is None  # off: nothing kept
    cache.switch(True)
    version = cache.version
    cache.invalidate("some-other-key")  # an invalidation lands while a lookup is in flight
    cache.put("h", record, version)
    assert cache.get("h") is None
    cache.put("h", record, cache.version)
    assert cache.get("h") is record
    cache.switch(False)
    assert cache.get("h") is None


async def test_sqlite_keeps_the_cache_off(app, client, db):
    if TEST_DATABASE_URL:
        pytest.skip("SQLite only")
    account = await create_account(db)
    key = await create_key(db, account.id)
    assert (await client.get("/api/v1/me", headers=key.headers)).status_code == 200
    assert not app.state.key_cache.enabled


@postgres_only
async def test_revocation_reaches_a_warm_cache_at_once(app, client, db, settings):
    listener = KeyChangeListener(settings.database_url, app.state.key_cache, check_every=0.2)
    listener.start()
    try:
        await wait_for(lambda: app.state.key_cache.enabled)
        account = await create_account(db)
        key = await create_key(db, account.id)
        assert (await client.get("/api/v1/me", headers=key.headers)).status_code == 200
        assert app.state.key_cache.get(hash_key(key.plaintext)) is not None  # warm

        email, password = await create_member(db, account.id, Role.ADMIN)
        csrf = await login(client, email, password)
        revoked = await client.delete(f"/api/account/api-keys/{key.id}", headers=csrf)
        assert revoked.status_code == 200
        await wait_for(lambda: app.state.key_cache.get(hash_key(key.plaintext)) is None, 2)
        assert (await client.get("/api/v1/me", headers=key.headers)).status_code == 401
    finally:
        await listener.stop()
    assert not app.state.key_cache.enabled


@postgres_only
async def test_a_lost_listener_turns_the_cache_off(app, db, settings):
    listener = KeyChangeListener(settings.database_url, app.state.key_cache, check_every=0.1)
    listener.start()
    try:
        await wait_for(lambda: app.state.key_cache.enabled)
        async with app.state.database.engine.connect() as connection:
            from sqlalchemy import text

            await connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = :name"
                ),
                {"name": LISTENER_NAME},
            )
        await wait_for(lambda: not app.state.key_cache.enabled, 5)
        await wait_for(lambda: app.state.key_cache.enabled, 10)  # reconnects by itself
    finally:
        await listener.stop()
