"""A real ``wacrm worker`` killed with SIGKILL mid-delivery loses no event (PostgreSQL).

1,000 events are pending; the worker is killed while it delivers them, with attempts in
flight and leases held; a new worker delivers every event at least once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import TEST_DATABASE_URL
from tests.helpers import create_account, create_key
from tests.test_cli import WACRM
from tests.webhooks.receivers import Receiver
from tests.webhooks.support import create_webhook, deliveries
from wacrm.api_keys.scopes import Scope
from wacrm.events.service import EventType, record_events
from wacrm.models import Event

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not TEST_DATABASE_URL, reason="the crash test runs on PostgreSQL"),
]
EVENTS = 1000


def _start_worker(settings, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "WACRM_DATABASE_URL": settings.database_url,
        "WACRM_SECRET_KEY": settings.secret_key,
        "WACRM_VAR_DIR": str(log.parent),
        "WACRM_SANDBOX_ENABLED": "false",
        "WACRM_WORKER_POLL_SECONDS": "0.05",
        "WACRM_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true",
        "WACRM_WEBHOOKS_RETRY_SCHEDULE_SECONDS": "[0, 0.2, 0.2, 0.2, 0.2, 0.2]",
        "WACRM_WEBHOOKS_TIMEOUT_SECONDS": "1",
        "WACRM_WEBHOOKS_LEASE_SECONDS": "3",
        "WACRM_WEBHOOKS_CONCURRENCY": "16",
    }
    with log.open("ab") as output:
        return subprocess.Popen(
            [str(WACRM), "worker"], env=env, stdout=output, stderr=subprocess.STDOUT
        )


async def _until(condition, process, log: Path, seconds: float) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"worker exited early:\n{log.read_text()[-3000:]}")
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out; worker log:\n{log.read_text()[-3000:]}")
        await asyncio.sleep(0.02)


async def test_sigkill_mid_delivery_loses_no_event(settings, client, db, app, tmp_path):
    log = tmp_path / "worker.log"
    async with Receiver(delay=0.05) as receiver:  # slow enough to be caught mid-delivery
        account = await create_account(db)
        key = await create_key(db, account.id, scopes=[Scope.WEBHOOKS_MANAGE])
        await create_webhook(client, key.headers, receiver.url, ["message.received"])
        await record_events(
            db, account.id, [(EventType.MESSAGE_RECEIVED, {"n": n}) for n in range(EVENTS)]
        )
        await db.commit()
        wanted = {str(i) for i in (await db.execute(select(Event.id))).scalars()}
        assert len(wanted) == EVENTS

        first = _start_worker(settings, log)
        try:
            await _until(lambda: len(receiver.received) >= 200, first, log, 60)
            first.send_signal(signal.SIGKILL)
        finally:
            first.kill()
            first.wait(10)
        seen_before_restart = set(receiver.event_ids())
        assert len(seen_before_restart) < EVENTS

        second = _start_worker(settings, log)
        try:
            await _until(lambda: wanted <= set(receiver.event_ids()), second, log, 60)
            for _ in range(200):  # and the last outcomes are recorded
                if {row.status for row in await deliveries(app)} == {"succeeded"}:
                    break
                await asyncio.sleep(0.05)
        finally:
            second.terminate()
            second.wait(15)

    assert set(receiver.event_ids()) == wanted  # every event, at least once
    # Sent twice: only attempts in flight or not yet recorded when the worker died.
    assert len(receiver.received) - EVENTS < 100
    rows = await deliveries(app)
    assert len(rows) == EVENTS and {row.status for row in rows} == {"succeeded"}
