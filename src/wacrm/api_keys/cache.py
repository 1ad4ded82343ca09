"""A per-process cache of API-key lookups that never outlives a revocation.

It is on only while this process LISTENs on PostgreSQL: every change to a key (revoke,
roll) sends a NOTIFY in the same transaction, so PostgreSQL delivers it to every API
process the moment the change commits. Whenever the listening connection is down the
cache is off and emptied, and every request reads the database. SQLite has no such
channel (other processes, the CLI among them, could revoke unseen), so there the cache
stays off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

import asyncpg
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.api_keys.repository import AuthRecord

logger = logging.getLogger(__name__)

CHANNEL = "wacrm_api_key_changed"
LISTENER_NAME = "wacrm-api-key-listener"
ENTRY_TTL_SECONDS = 60.0  # a backstop only; invalidation does the real work
MAX_ENTRIES = 50_000


class KeyCache:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[AuthRecord, float]] = {}
        self._enabled = False
        # Bumped by every invalidation: a lookup that raced one must not be cached.
        self.version = 0

    @property
    def enabled(self) -> bool:
        return self._enabled

    def get(self, key_hash: str) -> AuthRecord | None:
        if not self._enabled:
            return None
        entry = self._entries.get(key_hash)
        if entry is None or time.monotonic() - entry[1] > ENTRY_TTL_SECONDS:
            return None
        return entry[0]

    def put(self, key_hash: str, record: AuthRecord, looked_up_at_version: int) -> None:
        if not self._enabled or looked_up_at_version != self.version:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[key_hash] = (record, time.monotonic())

    def invalidate(self, key_id: str) -> None:
        self.version += 1
        stale = [h for h, (record, _) in self._entries.items() if str(record.key_id) == key_id]
        for key_hash in stale:
            del self._entries[key_hash]

    def switch(self, enabled: bool) -> None:
        self.version += 1
        self._entries.clear()
        self._enabled = enabled


async def announce_key_change(session: AsyncSession, key_id: uuid.UUID) -> None:
    """Tell every process, on commit, that this key changed (PostgreSQL only)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_notify(:channel, :key_id)"),
            {
                "channel": CHANNEL,
                "key_id": str(key_id),
            },
        )


class KeyChangeListener:
    """Keeps a LISTEN connection open; the cache is on exactly while it is healthy."""

    def __init__(self, database_url: str, cache: KeyCache, check_every: float = 2.0) -> None:
        self._dsn = (
            make_url(database_url)
            .set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )
        self._cache = cache
        self._check_every = check_every
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="api-key-change-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._cache.switch(False)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self._cache.invalidate(payload)

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            try:
                await self._listen_once()
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("API-key cache off: change listener failed: %s", exc)
            finally:
                self._cache.switch(False)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    async def _listen_once(self) -> None:
        """One connection's life: the cache is on from LISTEN until the connection fails."""
        connection = await asyncpg.connect(
            self._dsn, timeout=5, server_settings={"application_name": LISTENER_NAME}
        )
        lost = asyncio.Event()
        try:
            connection.add_termination_listener(lambda _c: lost.set())
            await connection.add_listener(CHANNEL, self._on_notify)
            self._cache.switch(True)
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), self._check_every)
                await connection.fetchval("SELECT 1", timeout=2)
        finally:
            self._cache.switch(False)
            with contextlib.suppress(Exception):
                await connection.close(timeout=1)
