"""Browser-test fixtures: a real server per module and one Chromium for the whole session.

- ``dashboard_server``: the app under uvicorn on a free loopback port, on the test
  database, for one test module; ``await dashboard_server.arrange(work)`` runs
  ``await work(session)`` on that database and commits (test data, through the services).
  Its sandbox calls the server back, and webhooks may go to loopback receivers.
- ``dashboard_worker``: a worker (every job, as ``wacrm worker`` runs them) on the
  server's database for one test; other tests share that database, so none runs longer.
- ``browser``: Debian's Chromium driven by Playwright (never a downloaded browser).
- ``page``: a fresh browser context (own cookies) per test, with the server as base URL;
  a screenshot of where each test ended is saved in ``test-artifacts/``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
import pytest_asyncio
import uvicorn
from playwright.async_api import Browser, Page, async_playwright
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import TEST_REDIS_URL
from tests.dashboard.support import screenshot
from wacrm.app import create_app
from wacrm.kit.db import Database, in_new_transaction
from wacrm.settings import Settings
from wacrm.webhooks.tasks import WebhookPump
from wacrm.whatsapp.client import CloudApiClient
from wacrm.worker.jobs import WORKER_JOBS
from wacrm.worker.runner import BackgroundWorker, WorkerContext

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
T = TypeVar("T")


@dataclass
class DashboardServer:
    url: str
    database_url: str
    settings: Settings

    async def arrange(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run ``await work(session)`` on the server's database and commit."""
        return await in_new_transaction(self.database_url, work)


# Per module: its connection pool closes when the module's tests are done.
@pytest.fixture(scope="module")
def dashboard_server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DashboardServer]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = Settings(
        env="test",
        var_dir=tmp_path_factory.mktemp("dashboard-var"),
        database_url=database_url,
        redis_url=TEST_REDIS_URL,
        secret_key="test-secret-key-not-for-production",
        public_base_url=url,
        worker_in_process=False,
        # Every test logs in from 127.0.0.1; throttling has its own tests.
        login_attempts_per_minute=10_000,
        webhooks_allow_private_targets=True,
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the dashboard test server did not start")
        time.sleep(0.02)
    yield DashboardServer(url=url, database_url=database_url, settings=settings)
    server.should_exit = True
    thread.join(timeout=15)
    sock.close()


@pytest_asyncio.fixture(loop_scope="session")
async def dashboard_worker(dashboard_server: DashboardServer) -> AsyncIterator[None]:
    settings = dashboard_server.settings.model_copy(update={"worker_poll_seconds": 0.05})
    database = Database(settings.database_url)
    client = CloudApiClient(settings)
    context = WorkerContext(database=database, settings=settings, services={"whatsapp": client})
    worker = BackgroundWorker(context, WORKER_JOBS)
    worker.start()
    try:
        yield
    finally:
        await worker.stop()
        pump = context.services.get("webhooks")
        if isinstance(pump, WebhookPump):
            await pump.aclose()
        await client.aclose()
        await database.dispose()


# Browser tests run on one session-wide event loop (mark them
# ``pytest.mark.asyncio(loop_scope="session")``), so that one Chromium serves them all.
@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make setup` installs Debian's chromium package")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(
    dashboard_server: DashboardServer, browser: Browser, request: pytest.FixtureRequest
) -> AsyncIterator[Page]:
    context = await browser.new_context(
        base_url=dashboard_server.url, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(10_000)
    tab = await context.new_page()
    try:
        yield tab
    finally:
        await screenshot(tab, f"{request.node.name}-end")
        await context.close()
