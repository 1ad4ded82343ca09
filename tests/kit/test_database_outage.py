"""A database that can't be reached is a 503 envelope, not a 500 that drops the connection.

The processes' side of it (a real server riding out an outage) is in tests/faults.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from tests.conftest import TEST_DATABASE_URL
from wacrm.api_keys.secret import generate_secret
from wacrm.app import create_app
from wacrm.kit.db import Database, database_unavailable
from wacrm.messages.tasks import mark_stalled_sends
from wacrm.settings import Settings
from wacrm.worker.runner import WorkerContext, run_once


def _unreachable_database_url(settings: Settings) -> str:
    if TEST_DATABASE_URL:  # the right server, a database that isn't there
        url = make_url(settings.database_url)
        return url.set(database=f"{url.database}_absent").render_as_string(hide_password=False)
    return f"sqlite+aiosqlite:///{settings.var_dir / 'no-such-dir' / 'wacrm.db'}"


async def _finish_failed_sqlite_connects() -> None:
    # aiosqlite ends the thread of a connection that failed to open by posting back to the
    # event loop: let those threads finish while the loop still runs.
    threads = [t for t in threading.enumerate() if "_connection_worker_thread" in t.name]
    await asyncio.to_thread(lambda: [thread.join(10) for thread in threads])


@asynccontextmanager
async def _app_without_database(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(
        settings.model_copy(update={"database_url": _unreachable_database_url(settings)})
    )
    # As a real server would: the app's own errors are answers, never raised to the server.
    transport = httpx.ASGITransport(app=application, raise_app_exceptions=True)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http
    finally:
        await application.state.database.dispose()
        await _finish_failed_sqlite_connects()


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {
        "error": {"code": "service_unavailable", "message": "The database is unavailable; retry."}
    }
    assert int(response.headers["retry-after"]) >= 1


async def test_every_kind_of_request_answers_503_while_the_database_is_unreachable(app, settings):
    key = {"Authorization": f"Bearer {generate_secret().plaintext}"}
    async with _app_without_database(settings) as http:
        _assert_unavailable(await http.get("/api/v1/me", headers=key))
        _assert_unavailable(await http.get("/api/v1/contacts", headers=key))
        _assert_unavailable(
            await http.post("/api/v1/contacts", headers=key, json={"phone": "+14155550123"})
        )
        _assert_unavailable(
            await http.post("/api/auth/login", json={"email": "a@example.com", "password": "x"})
        )
        _assert_unavailable(
            await http.post(
                "/webhooks/whatsapp", content=b"{}", headers={"X-Hub-Signature-256": ""}
            )
        )
        # A bad request still fails as one (no database needed to say so).
        response = await http.get("/api/v1/me", headers={"Authorization": "Bearer nonsense"})
        assert response.status_code == 401
        assert (await http.get("/healthz")).status_code == 200
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert "database unavailable" in ready.text


async def test_a_query_the_database_refuses_is_not_an_outage(settings):
    # SQLite reports this as an OperationalError too: only a lost connection is an outage.
    database = Database(settings.database_url)
    try:
        async with database.sessions() as session:
            await session.execute(text("SELECT * FROM no_such_table"))
    except DBAPIError as refused:
        assert not database_unavailable(refused), repr(refused)
    else:
        raise AssertionError("a query on a missing table succeeded")
    finally:
        await database.dispose()


async def test_a_worker_job_during_an_outage_logs_one_line_and_the_worker_goes_on(settings, caplog):
    broken = settings.model_copy(update={"database_url": _unreachable_database_url(settings)})
    context = WorkerContext(database=Database(broken.database_url), settings=broken, services={})
    caplog.set_level(logging.WARNING, logger="wacrm.worker.runner")
    try:
        assert await run_once(context, [mark_stalled_sends, mark_stalled_sends]) == 0
    finally:
        await context.database.dispose()
        await _finish_failed_sqlite_connects()
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "worker job mark_stalled_sends",
        "worker job mark_stalled_sends",
    ]
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in caplog.records)
    assert all("database unavailable" in r.getMessage() for r in caplog.records)
