"""Several real processes on one PostgreSQL database and one Redis share the work without
doing any of it twice: one key's rate limit across two API processes, one broadcast across
two workers, one batch of webhook events across two workers."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest
from sqlalchemy import func, select

from tests.broadcasts.support import completed_events, messages_per_phone, phones
from tests.conftest import TEST_REDIS_URL
from tests.faults.processes import cluster
from tests.faults.support import (
    FAST_SENDS,
    POSTGRES_AND_REDIS_ONLY,
    broadcast_state,
    create_tenant,
    launch_broadcast,
    recipient_statuses,
    sandbox_sends,
)
from tests.helpers import create_account, create_key
from tests.webhooks.receivers import Receiver
from wacrm.events.service import EventType, record_events
from wacrm.models import Event
from wacrm.models.webhooks import WebhookAttempt, WebhookDelivery
from wacrm.webhooks import service as webhooks_service

pytestmark = [pytest.mark.slow, POSTGRES_AND_REDIS_ONLY]

LIMIT = 40
RECIPIENTS = 2000
EVENTS = 1000


async def test_two_api_processes_share_one_keys_rate_limit_through_redis(db, settings, tmp_path):
    account = await create_account(db)
    key = await create_key(db, account.id, scopes=[])
    environment = {
        "WACRM_REDIS_URL": str(TEST_REDIS_URL),
        "WACRM_RATE_LIMIT_PER_MINUTE": str(LIMIT),
        "WACRM_SANDBOX_ENABLED": "false",
    }
    with cluster(settings, tmp_path, **environment) as running:
        servers = running.serve("api-a"), running.serve("api-b")
        await running.wait_healthy(*servers)
        in_flight = asyncio.Semaphore(8)
        async with httpx.AsyncClient(timeout=30) as http:

            async def me(n: int) -> tuple[str, httpx.Response]:
                server = servers[n % 2]
                async with in_flight:
                    response = await http.get(f"{server.url}/api/v1/me", headers=key.headers)
                return server.name, response

            # Three times the limit, alternating between the processes, several at once.
            answers = await asyncio.gather(*(me(n) for n in range(3 * LIMIT)))

    statuses = Counter((name, response.status_code) for name, response in answers)
    assert {status for _, status in statuses} == {200, 429}, statuses
    assert statuses[("api-a", 200)] + statuses[("api-b", 200)] == LIMIT, statuses
    assert statuses[("api-a", 200)] and statuses[("api-b", 200)], "both processes served"
    for _, response in answers:
        assert response.headers["x-ratelimit-limit"] == str(LIMIT)
        if response.status_code == 429:
            assert response.json()["error"]["code"] == "rate_limited"
            assert int(response.headers["retry-after"]) >= 1


async def test_two_workers_drain_one_broadcast_and_send_each_recipient_once(
    app, db, settings, tmp_path
):
    account_id, key = await create_tenant(db, settings, ["broadcasts:send"])
    numbers = phones(RECIPIENTS)
    with cluster(settings, tmp_path, **FAST_SENDS) as running:
        api = running.serve()
        await running.wait_healthy(api)
        async with httpx.AsyncClient(timeout=30) as http:
            broadcast_id = await launch_broadcast(http, api.url, key, numbers)
            for name in ("worker-1", "worker-2"):
                running.worker(name, api, concurrency=2)

            async def completed() -> dict | None:
                state = await broadcast_state(http, api.url, key, broadcast_id)
                return state if state["status"] == "completed" else None

            final = await running.until(completed, 300, "the broadcast to complete", poll=0.5)
            accepted = await sandbox_sends(http, api.url, settings)

    assert final["counts"]["sent"] == RECIPIENTS, final["counts"]
    assert accepted == Counter(dict.fromkeys(numbers, 1)), "the sandbox got each number once"
    assert await recipient_statuses(db, broadcast_id) == dict.fromkeys(numbers, "sent")
    assert await messages_per_phone(app.state.database, account_id) == dict.fromkeys(numbers, 1)
    assert len(await completed_events(app.state.database, account_id)) == 1


async def test_two_workers_deliver_each_webhook_event_once(db, settings, tmp_path):
    async with Receiver() as receiver:
        account = await create_account(db)
        private = settings.model_copy(update={"webhooks_allow_private_targets": True})
        await webhooks_service.create_endpoint(
            db,
            private,
            account.id,
            url=receiver.url,
            events=["message.received"],
            description=None,
            is_active=True,
        )
        await record_events(
            db, account.id, [(EventType.MESSAGE_RECEIVED, {"n": n}) for n in range(EVENTS)]
        )
        await db.commit()
        wanted = {str(event_id) for event_id in (await db.execute(select(Event.id))).scalars()}
        assert len(wanted) == EVENTS

        environment = {
            "WACRM_SANDBOX_ENABLED": "false",
            "WACRM_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true",
            "WACRM_WEBHOOKS_CONCURRENCY": "16",
        }
        with cluster(settings, tmp_path, **environment) as running:
            for name in ("worker-1", "worker-2"):
                running.worker(name, concurrency=2)

            async def all_recorded() -> bool:
                if not wanted <= set(receiver.event_ids()):
                    return False
                statuses = (await db.execute(select(WebhookDelivery.status))).scalars().all()
                await db.rollback()  # a fresh snapshot on the next look
                return set(statuses) == {"succeeded"}

            await running.until(all_recorded, 240, "every event delivered and recorded")

    received = Counter(receiver.event_ids())
    assert set(received) == wanted
    assert [event for event, n in received.items() if n > 1] == [], "an attempt made twice"
    attempts = (
        await db.execute(
            select(WebhookAttempt.delivery_id, func.count()).group_by(WebhookAttempt.delivery_id)
        )
    ).all()
    assert len(attempts) == EVENTS and {n for _, n in attempts} == {1}, "one logged attempt each"
    rows = (await db.execute(select(WebhookDelivery.attempts, WebhookDelivery.status))).all()
    assert set(rows) == {(1, "succeeded")}
