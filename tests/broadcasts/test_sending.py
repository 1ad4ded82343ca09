"""The worker drains broadcasts against the sandbox over real HTTP: each recipient is sent
exactly once, counts follow the status callbacks, completion fires one event."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import select, update

from tests.broadcasts.support import (
    broadcast_body,
    completed_events,
    drain,
    eventually,
    get_json,
    messages_per_phone,
    phones,
    serving,
)
from tests.helpers import create_account, create_key
from tests.telemetry.support import sample
from wacrm.broadcasts import tasks
from wacrm.channels.service import add_sandbox_channel
from wacrm.kit.clock import utcnow
from wacrm.kit.db import Database
from wacrm.models import BroadcastRecipient
from wacrm.whatsapp.client import CloudApiClient
from wacrm.whatsapp.tasks import apply_early_statuses
from wacrm.worker.jobs import worker_context
from wacrm.worker.runner import WorkerContext

pytestmark = pytest.mark.slow
NO_CALLBACKS = 3600.0  # status callbacks never come during the test (they cost CPU)


async def _tenant(db, settings):
    account = await create_account(db)
    key = await create_key(db, account.id, scopes=["broadcasts:send", "messages:read"])
    await add_sandbox_channel(db, settings, account_id=account.id)
    await db.commit()
    return account, key


async def _launch(http: httpx.AsyncClient, key, numbers: list[str]) -> str:
    response = await http.post(
        "/api/v1/broadcasts", json=broadcast_body(numbers), headers=key.headers
    )
    assert response.status_code == 202, response.text
    return str(response.json()["data"]["broadcast_id"])


async def test_a_thousand_recipients_are_each_sent_once_and_counts_follow_statuses(
    settings, db, app
):
    account, key = await _tenant(db, settings)
    numbers = phones(1000)
    # Statuses come back at once: many arrive before their wamid is committed, are kept as
    # early statuses, and are applied by the worker once it is.
    async with (
        serving(settings, status_delay=0.0) as (base, served),
        httpx.AsyncClient(base_url=base) as http,
    ):
        broadcast_id = await _launch(http, key, numbers)
        url = f"/api/v1/broadcasts/{broadcast_id}"
        assert (await get_json(http, url, key.headers))["data"]["status"] == "queued"
        context = worker_context(served)

        assert await drain(context) == 1000
        assert await drain(context) == 0
        database = served.state.database
        sent = await messages_per_phone(database, account.id)
        assert sent == dict.fromkeys(numbers, 1)

        async def callbacks_posted():
            return served.state.sandbox.webhooks.pending == 0  # each processed before its 200

        # 3,000 callbacks into SQLite take ~150 s on an idle 2-core machine, ~190 s on a busy one.
        assert await eventually(callbacks_posted, seconds=360)
        while await apply_early_statuses(database):
            pass
        final = (await get_json(http, url, key.headers))["data"]
        assert final["status"] == "completed"
        assert final["counts"] == {
            "sent": 1000,
            "delivered": 1000,
            "read": 1000,
            "failed": 0,
            "unknown": 0,
            "pending": 0,
            "cancelled": 0,
        }, final["counts"]
        assert final["started_at"] and final["completed_at"]
        [event] = await completed_events(database, account.id)
        assert event.data["broadcast_id"] == broadcast_id
        assert event.data["name"] == "Spring launch"
        assert event.data["accepted"] == 1000
        counts = event.data["counts"]
        assert counts["sent"] + counts["failed"] + counts["unknown"] == 1000

        page = await get_json(http, f"{url}/recipients?limit=5", key.headers)
        for recipient in page["data"]:
            assert recipient["status"] == "read"
            assert recipient["message_id"] and recipient["whatsapp_message_id"]
            message = await get_json(
                http, f"/api/v1/messages/{recipient['message_id']}", key.headers
            )
            assert message["data"]["content"]["name"] == "order_update"
            assert message["data"]["content"]["params"] == recipient["params"]


async def test_concurrent_workers_never_send_to_one_recipient_twice(settings, db, app):
    account, key = await _tenant(db, settings)
    numbers = phones(120)
    async with (
        serving(settings, status_delay=NO_CALLBACKS) as (base, served),
        httpx.AsyncClient(base_url=base) as http,
    ):
        broadcast_id = await _launch(http, key, numbers)
        first = worker_context(served)
        # A second "process": its own connection pool and Cloud API client.
        second = WorkerContext(
            database=Database(served.state.settings.database_url),
            settings=served.state.settings,
            services={"whatsapp": CloudApiClient(served.state.settings)},
        )
        try:
            taken = await asyncio.gather(
                drain(first, batch_size=10),
                drain(second, batch_size=10),
                drain(first, batch_size=10),
                drain(second, batch_size=10),
            )
        finally:
            await second.services["whatsapp"].aclose()  # type: ignore[attr-defined]
            await second.database.dispose()
        assert sum(taken) == 120
        assert await messages_per_phone(served.state.database, account.id) == dict.fromkeys(
            numbers, 1
        )
        body = await get_json(http, f"/api/v1/broadcasts/{broadcast_id}", key.headers)
        assert body["data"]["status"] == "completed"
        assert len(await completed_events(served.state.database, account.id)) == 1


async def test_a_recipient_left_sending_by_a_crash_becomes_unknown_and_is_not_resent(
    settings, db, app
):
    account, key = await _tenant(db, settings)
    numbers = phones(3)
    async with (
        serving(settings, status_delay=NO_CALLBACKS) as (base, served),
        httpx.AsyncClient(base_url=base) as http,
    ):
        broadcast_id = await _launch(http, key, numbers)
        context = worker_context(served)
        # A worker claimed numbers[0], then died (maybe after Meta took the message).
        await db.execute(
            update(BroadcastRecipient)
            .where(BroadcastRecipient.phone == numbers[0])
            .values(status="sending", attempts=1, updated_at=utcnow())
        )
        await db.commit()

        assert await drain(context) == 2
        url = f"/api/v1/broadcasts/{broadcast_id}"
        assert (await get_json(http, url, key.headers))["data"]["status"] == "sending"
        assert await tasks.settle_stalled_broadcast_recipients(context) == 0  # not stalled yet

        context.settings = context.settings.model_copy(
            update={"sends_stalled_after_seconds": 0.000001}
        )
        assert await tasks.settle_stalled_broadcast_recipients(context) == 1
        assert await drain(context) == 0
        assert await messages_per_phone(served.state.database, account.id) == {
            numbers[1]: 1,
            numbers[2]: 1,
        }
        body = (await get_json(http, url, key.headers))["data"]
        assert body["status"] == "completed"
        assert body["counts"]["unknown"] == 1
        assert body["counts"]["sent"] == 2
        recipients = await get_json(http, f"{url}/recipients?status=unknown", key.headers)
        [stalled] = recipients["data"]
        assert stalled["phone"] == numbers[0]
        assert stalled["message_id"] is None
        assert "outcome unknown" in stalled["error"]["message"]
        assert len(await completed_events(served.state.database, account.id)) == 1


async def test_cancel_stops_pending_sends(settings, db, app):
    account, key = await _tenant(db, settings)
    numbers = phones(30)
    async with (
        serving(settings, status_delay=NO_CALLBACKS) as (base, served),
        httpx.AsyncClient(base_url=base) as http,
    ):
        broadcast_id = await _launch(http, key, numbers)
        context = worker_context(served)
        sent = 10
        assert await tasks.send_one_batch(context, sent) == sent

        url = f"/api/v1/broadcasts/{broadcast_id}"
        cancelled = await http.post(f"{url}/cancel", headers=key.headers)
        assert cancelled.status_code == 200, cancelled.text
        body = cancelled.json()["data"]
        assert body["status"] == "cancelled"
        assert body["cancelled_at"]
        assert body["counts"]["cancelled"] == 30 - sent
        assert body["counts"]["sent"] == sent

        assert await drain(context) == 0
        assert sum((await messages_per_phone(served.state.database, account.id)).values()) == sent
        again = await http.post(f"{url}/cancel", headers=key.headers)
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "conflict"
        rows = await db.execute(
            select(BroadcastRecipient.status).where(BroadcastRecipient.phone.in_(numbers[sent:]))
        )
        assert set(rows.scalars()) == {"cancelled"}
        assert await completed_events(served.state.database, account.id) == []


async def test_a_completed_broadcast_cannot_be_cancelled(settings, db, app):
    _, key = await _tenant(db, settings)
    async with (
        serving(settings, status_delay=NO_CALLBACKS) as (base, served),
        httpx.AsyncClient(base_url=base) as http,
    ):
        broadcast_id = await _launch(http, key, phones(2))
        assert await drain(worker_context(served)) == 2
        response = await http.post(f"/api/v1/broadcasts/{broadcast_id}/cancel", headers=key.headers)
        assert response.status_code == 409
        assert "completed" in response.json()["error"]["message"]


async def test_meta_refusals_fail_the_recipient_with_metas_error(settings, db, app):
    _, key = await _tenant(db, settings)
    counters = {
        "sends": ("wacrm_whatsapp_sends_total", {"outcome": "failed"}),
        "recipients": ("wacrm_broadcast_recipients_settled_total", {"status": "failed"}),
        "completed": ("wacrm_broadcasts_completed_total", {}),
    }
    before = {name: sample(metric, **labels) for name, (metric, labels) in counters.items()}
    async with (
        serving(settings, status_delay=NO_CALLBACKS) as (base, served),
        httpx.AsyncClient(base_url=base) as http,
    ):
        body = broadcast_body(phones(3), template_name="no_such_template")
        response = await http.post("/api/v1/broadcasts", json=body, headers=key.headers)
        broadcast_id = response.json()["data"]["broadcast_id"]
        assert await drain(worker_context(served)) == 3
        url = f"/api/v1/broadcasts/{broadcast_id}"
        result = (await get_json(http, url, key.headers))["data"]
        assert result["status"] == "completed"
        assert (result["counts"]["failed"], result["counts"]["sent"]) == (3, 0)
        recipients = (await get_json(http, f"{url}/recipients?status=failed", key.headers))["data"]
        assert len(recipients) == 3
        assert {r["error"]["code"] for r in recipients} == {132001}
        assert all(r["message_id"] for r in recipients)
    after = {name: sample(metric, **labels) for name, (metric, labels) in counters.items()}
    assert {name: after[name] - before[name] for name in counters} == {
        "sends": 3,
        "recipients": 3,
        "completed": 1,
    }


async def test_a_batch_that_cannot_be_prepared_goes_back_to_the_queue_then_fails(
    settings, db, app, client, monkeypatch
):
    account, key = await _tenant(db, settings)
    numbers = phones(4)
    response = await client.post(
        "/api/v1/broadcasts", json=broadcast_body(numbers), headers=key.headers
    )
    assert response.status_code == 202

    async def broken(*args, **kwargs):
        raise RuntimeError("database hiccup")

    monkeypatch.setattr(tasks, "open_threads", broken)
    context = worker_context(app)
    for attempt in range(1, tasks.MAX_CLAIMS + 1):
        with pytest.raises(RuntimeError):
            await tasks.send_broadcast_batches(context)
        db.expire_all()
        rows = (await db.execute(select(BroadcastRecipient))).scalars().all()
        expected = "failed" if attempt == tasks.MAX_CLAIMS else "pending"
        assert {(r.status, r.attempts, r.message_id) for r in rows} == {(expected, attempt, None)}
    assert await tasks.send_broadcast_batches(context) == 0
    assert await messages_per_phone(app.state.database, account.id) == {}
