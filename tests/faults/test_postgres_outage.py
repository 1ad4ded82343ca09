"""The database goes away under a running ``wacrm serve`` and comes back: the process rides
it out by itself.

The machine's PostgreSQL is shared, so the server is not restarted: for this test's own
database only, new connections are refused (``ALLOW_CONNECTIONS false``) and every open
one is terminated, for a few seconds, while clients keep reading and writing. Errors are
allowed only for requests in flight during the outage, and they are JSON envelopes; once
the database is back, requests succeed again and keep succeeding, on the same process.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from tests import helpers
from tests.faults.processes import cluster
from tests.faults.support import POSTGRES_ONLY
from tests.helpers import create_account, create_key
from wacrm.kit.db import Database
from wacrm.models import Contact

pytestmark = [pytest.mark.slow, POSTGRES_ONLY]

OUTAGE_SECONDS = 4.0
CLIENTS = 3


@dataclass(frozen=True)
class Answer:
    started: float
    finished: float
    method: str
    status: int | None  # None: no HTTP answer at all
    body: bytes
    phone: str | None = None


@asynccontextmanager
async def database_outage(database_url: str) -> AsyncIterator[None]:
    """Refuse new connections to this one database and end its open ones; allow them again
    on the way out, whatever happens."""
    url = make_url(database_url)
    name = url.database
    assert name and name.replace("_", "").isalnum()
    admin = create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            try:
                await connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )
                yield
            finally:
                await connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
    finally:
        await admin.dispose()


async def _traffic(
    http: httpx.AsyncClient,
    url: str,
    key: helpers.TestKey,
    stop: asyncio.Event,
    answers: list[Answer],
) -> None:
    """Reads and writes, one after another, until told to stop."""
    n = 0
    while not stop.is_set():
        n += 1
        started = time.monotonic()
        phone = None
        try:
            if n % 2:
                response = await http.get(f"{url}/api/v1/contacts?limit=5", headers=key.headers)
            else:
                phone = f"+1415{random.randint(200, 999)}{random.randint(0, 9999):04d}"
                response = await http.post(
                    f"{url}/api/v1/contacts", headers=key.headers, json={"phone": phone}
                )
            status, body = response.status_code, response.content
        except httpx.TransportError as exc:
            status, body = None, repr(exc).encode()
        method = "GET" if n % 2 else "POST"
        answers.append(Answer(started, time.monotonic(), method, status, body, phone))
        await asyncio.sleep(0.02)


async def _readiness(http: httpx.AsyncClient, url: str, stop: asyncio.Event, seen: list) -> None:
    while not stop.is_set():
        try:
            seen.append((time.monotonic(), (await http.get(f"{url}/readyz")).status_code))
        except httpx.TransportError:
            seen.append((time.monotonic(), None))
        await asyncio.sleep(0.2)


async def test_the_api_recovers_by_itself_from_a_database_outage(app, db, settings, tmp_path):
    account = await create_account(db)
    key = await create_key(db, account.id, scopes=["contacts:read", "contacts:write"])
    answers: list[Answer] = []
    readiness: list[tuple[float, int | None]] = []
    environment = {"WACRM_WORKER_IN_PROCESS": "true", "WACRM_RATE_LIMIT_PER_MINUTE": "100000"}
    with cluster(settings, tmp_path, **environment) as running:
        api = running.serve()
        await running.wait_healthy(api)
        pid = api.pid
        stop = asyncio.Event()
        async with httpx.AsyncClient(timeout=30) as http:
            tasks = [
                asyncio.create_task(_traffic(http, api.url, key, stop, answers))
                for _ in range(CLIENTS)
            ]
            tasks.append(asyncio.create_task(_readiness(http, api.url, stop, readiness)))
            try:

                async def successes_since(moment: float, count: int) -> bool:
                    ok = [a for a in answers if a.started >= moment and a.status in (200, 201)]
                    return len(ok) >= count

                await running.until(lambda: successes_since(0, 20), 60, "traffic before")
                outage_began = time.monotonic()
                async with database_outage(settings.database_url):
                    await asyncio.sleep(OUTAGE_SECONDS)
                allowed_at = time.monotonic()
                await running.until(lambda: successes_since(allowed_at, 1), 60, "a success")
                recovered_at = min(
                    a.started for a in answers if a.started >= allowed_at and a.status in (200, 201)
                )
                await running.until(lambda: successes_since(recovered_at, 40), 60, "steady")
                await running.until(
                    lambda: _ready_after(readiness, allowed_at), 30, "/readyz 200 again"
                )
            finally:
                stop.set()
                await asyncio.gather(*tasks)
        assert api.alive and api.pid == pid, "the same process, never restarted"

    failed = [a for a in answers if a.status not in (200, 201)]
    print(
        f"{len(answers)} requests; {len(failed)} failed during a {OUTAGE_SECONDS:.0f} s outage; "
        f"first success {recovered_at - allowed_at:.2f} s after the database was back"
    )
    assert failed, "the outage was felt (else this test proves nothing)"
    for answer in failed:
        assert answer.status == 503, answer
        assert answer.body.startswith(b'{"error":{"code":"service_unavailable"'), answer
        # Only requests in flight during the outage: begun before the first success after
        # it, and still running when it began.
        assert outage_began <= answer.finished and answer.started <= recovered_at, answer
    outage_readiness = {status for at, status in readiness if outage_began < at < allowed_at}
    assert 503 in outage_readiness and None not in outage_readiness, readiness
    log = api.log_text()
    assert "unhandled error" not in log and "Exception in ASGI application" not in log

    created = [a.phone for a in answers if a.status == 201]
    database = Database(settings.database_url)
    try:
        async with database.sessions() as session:
            stored = await session.scalar(
                select(func.count()).select_from(Contact).where(Contact.phone.in_(created))
            )
    finally:
        await database.dispose()
    assert stored == len(created), "every contact that was answered 201 is stored"


async def _ready_after(readiness: list[tuple[float, int | None]], moment: float) -> bool:
    return any(at > moment and status == 200 for at, status in readiness)
