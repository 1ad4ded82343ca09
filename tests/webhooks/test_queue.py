"""The delivery queue: fan-out in the event's transaction, leases, concurrent workers."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select

from tests.helpers import create_account, create_key
from tests.webhooks.receivers import Receiver
from tests.webhooks.support import (
    attempts,
    create_webhook,
    deliveries,
    make_pump,
    pump_until,
    record,
    settled,
)
from wacrm.api_keys.scopes import Scope
from wacrm.events.service import EventType, record_event, record_events
from wacrm.kit.clock import utcnow
from wacrm.models.webhooks import WebhookDelivery, WebhookEndpoint
from wacrm.webhooks.queue import Outcome, RetryPolicy, claim_due, record_outcomes
from wacrm.webhooks.transport import AttemptResult

OK = AttemptResult(True, 200, 1, None, "ok", None)


async def _account_with_webhooks(client, db, urls, events=("contact.created",)):
    account = await create_account(db)
    key = await create_key(db, account.id, scopes=[Scope.WEBHOOKS_MANAGE])
    ids = [(await create_webhook(client, key.headers, url, events))[0] for url in urls]
    return account, key, ids


async def _count(db) -> int:
    return int((await db.execute(select(func.count()).select_from(WebhookDelivery))).scalar_one())


async def test_deliveries_commit_or_roll_back_with_their_event(client, db, app):
    account, key, [first, second] = await _account_with_webhooks(
        client, db, ["https://example.com/a", "https://example.com/b"]
    )
    await client.patch(f"/api/v1/webhooks/{second}", headers=key.headers, json={"is_active": False})
    other = await create_account(db, name="Other")

    await record_event(db, account.id, EventType.CONTACT_CREATED, {"n": 1})
    await db.rollback()  # the change that caused it failed: no event, no delivery
    assert await _count(db) == 0

    await record_event(db, other.id, EventType.CONTACT_CREATED, {"n": 2})  # not their account
    await record_event(db, account.id, EventType.MESSAGE_RECEIVED, {"n": 3})  # not subscribed
    await record_events(
        db,
        account.id,
        [(EventType.CONTACT_CREATED, {"n": 4}), (EventType.CONTACT_CREATED, {"n": 5})],
    )
    await db.commit()
    rows = await deliveries(app)
    assert len(rows) == 2 and {r.endpoint_id for r in rows} == {uuid.UUID(first)}
    assert {r.status for r in rows} == {"pending"} and {r.attempts for r in rows} == {0}


async def test_a_lease_keeps_others_off_and_a_stale_worker_cannot_overwrite(client, db, app):
    account, _, _ = await _account_with_webhooks(client, db, ["https://example.com/a"])
    await record(db, account.id)
    policy = RetryPolicy(schedule=[0, 1], disable_after_failures=5, disable_after=timedelta(0))
    now = utcnow()
    async with app.state.database.sessions() as session:
        [stale] = await claim_due(
            session, now=now, lease_until=now + timedelta(seconds=1), token=uuid.uuid4(), limit=5
        )
        await session.commit()
    async with app.state.database.sessions() as session:  # leased: nobody else gets it
        assert await claim_due(session, now=now, lease_until=now, token=uuid.uuid4(), limit=5) == []

    later = now + timedelta(seconds=2)  # the first worker died; its lease ran out
    async with app.state.database.sessions() as session:
        [retaken] = await claim_due(
            session,
            now=later,
            lease_until=later + timedelta(seconds=9),
            token=uuid.uuid4(),
            limit=5,
        )
        await session.commit()
    assert retaken.id == stale.id and retaken.lease_token != stale.lease_token

    async with app.state.database.sessions() as session:  # the first worker wakes up late
        await record_outcomes(session, [Outcome(stale, OK, now)], policy, later)
        await session.commit()
    [row] = await deliveries(app)
    assert row.status == "pending" and row.lease_token == retaken.lease_token
    assert len(await attempts(app)) == 1  # its attempt did happen, so it is in the log

    async with app.state.database.sessions() as session:
        await record_outcomes(session, [Outcome(retaken, OK, later)], policy, later)
        await session.commit()
    [row] = await deliveries(app)
    assert row.status == "succeeded" and row.attempts == 1 and row.lease_token is None


async def test_two_workers_never_make_the_same_attempt(client, db, app):
    async with Receiver(delay=0.002) as receiver:
        account, _, _ = await _account_with_webhooks(client, db, [receiver.url])
        await record_events(
            db, account.id, [(EventType.CONTACT_CREATED, {"n": n}) for n in range(150)]
        )
        await db.commit()
        pumps = [make_pump(app), make_pump(app)]
        await asyncio.gather(*(pump_until(pump, settled(app), 30) for pump in pumps))
        for pump in pumps:
            await pump.aclose()

    ids = receiver.event_ids()
    assert len(ids) == len(set(ids)) == 150
    assert len(await attempts(app)) == 150


async def test_an_endpoint_deleted_mid_attempt_takes_its_log_with_it(client, db, app):
    async with Receiver(delay=0.3) as receiver:
        account, key, [webhook_id] = await _account_with_webhooks(client, db, [receiver.url])
        await record(db, account.id)
        pump = make_pump(app)
        round_ = asyncio.create_task(pump.run_round())
        while not receiver.received:
            await asyncio.sleep(0.01)
        deleted = await client.delete(f"/api/v1/webhooks/{webhook_id}", headers=key.headers)
        assert deleted.status_code == 204
        assert await round_ == 1  # recorded without error; nothing left to record into
        await pump.aclose()
    assert await deliveries(app) == [] and await attempts(app) == []


async def test_an_endpoint_disabled_mid_attempt_keeps_that_attempt_whole(client, db, app):
    async with Receiver(delay=0.3) as receiver:
        account, key, [webhook_id] = await _account_with_webhooks(client, db, [receiver.url])
        await record(db, account.id)
        await record(db, account.id)
        pump = make_pump(app)
        round_ = asyncio.create_task(pump.run_round())
        while not receiver.received:
            await asyncio.sleep(0.01)
        patched = await client.patch(
            f"/api/v1/webhooks/{webhook_id}", headers=key.headers, json={"is_active": False}
        )
        assert patched.status_code == 200
        await round_
        await pump.aclose()
    rows = {row.id: row for row in await deliveries(app)}
    logged = await attempts(app)
    # The attempt in flight was made and logged: its delivery counts it (was: 0 attempts and
    # "endpoint disabled" beside a logged 200); the one not yet tried fails unattempted.
    for attempt in logged:
        assert rows[attempt.delivery_id].attempts == 1
        assert rows[attempt.delivery_id].status == "succeeded"
    untried = [row for row in rows.values() if row.id not in {a.delivery_id for a in logged}]
    assert all(row.status == "failed" and row.attempts == 0 for row in untried)
    assert len(logged) >= 1


async def test_the_worker_job_delivers_through_the_runner(client, db, app):
    from wacrm.worker.jobs import WORKER_JOBS
    from wacrm.worker.runner import WorkerContext, run_once

    async with Receiver() as receiver:
        account, _, _ = await _account_with_webhooks(client, db, [receiver.url])
        event_id = await record(db, account.id)
        context = WorkerContext(
            database=app.state.database, settings=app.state.settings, services={}
        )
        try:
            await pump_until(context_pump(context, run_once, WORKER_JOBS), settled(app))
        finally:
            await context.services["webhooks"].aclose()  # type: ignore[attr-defined]
    assert receiver.event_ids() == [event_id]


def context_pump(context, run_once, jobs):
    """Something with ``run_round`` that drives the real job list."""

    class Driver:
        async def run_round(self) -> int:
            return await run_once(context, jobs)

    return Driver()


async def test_a_slow_dns_answer_is_a_blocked_attempt(client, db, app, dns):
    async def slow(host, port, *, type=0):
        await asyncio.sleep(5)
        return []

    dns.names["slow.example"] = ["127.0.0.1"]
    account, _, _ = await _account_with_webhooks(client, db, ["http://slow.example/h"])
    await record(db, account.id)
    app.state.settings = app.state.settings.model_copy(
        update={"webhooks_retry_schedule_seconds": [0.0], "webhooks_timeout_seconds": 0.2}
    )
    pump = make_pump(app, resolver=slow)
    await pump_until(pump, settled(app))
    await pump.aclose()
    [attempt] = await attempts(app)
    assert attempt.error == "blocked: resolving slow.example took over 0.2 s"


async def test_our_own_failure_is_retried_but_never_held_against_the_endpoint(client, db, app):
    """A deployment secret that cannot decrypt the signing secret: nothing is sent unsigned."""
    app.state.settings = app.state.settings.model_copy(
        update={"webhooks_disable_after_failures": 1, "webhooks_disable_after_seconds": 0}
    )
    async with Receiver() as receiver:
        account, _, [webhook_id] = await _account_with_webhooks(client, db, [receiver.url])
        await db.execute(
            WebhookEndpoint.__table__.update().values(secret_encrypted="not-a-fernet-token")
        )
        await record(db, account.id)
        pump = make_pump(app)
        await pump_until(pump, settled(app))
        await pump.aclose()
    assert receiver.received == []
    assert {a.error for a in await attempts(app)} == {"internal error: ValueError"}
    healthy = await db.get(WebhookEndpoint, uuid.UUID(webhook_id))
    assert healthy is not None and healthy.is_active and healthy.consecutive_failures == 0


async def test_an_event_while_its_endpoint_is_being_deleted_is_never_an_error(client, db, app):
    """PostgreSQL: the fan-out saw the endpoint, the DELETE removed it before the deliveries
    went in: a foreign-key error (a 500 for whoever caused the event). Now the fan-out waits
    for the DELETE and then sees no endpoint."""
    if not app.state.database.is_postgres:
        pytest.skip("row locks: the race needs concurrent writers (SQLite has one)")
    account, _, [webhook_id] = await _account_with_webhooks(client, db, ["https://example.com/a"])
    await db.commit()
    async with app.state.database.sessions() as deleting, app.state.database.sessions() as eventful:
        await deleting.execute(
            delete(WebhookEndpoint).where(WebhookEndpoint.id == uuid.UUID(webhook_id))
        )
        fan_out = asyncio.create_task(
            record_event(eventful, account.id, EventType.CONTACT_CREATED, {"n": 1})
        )
        await asyncio.sleep(0.5)  # the fan-out is now waiting for the DELETE's row lock
        await deleting.commit()
        await asyncio.wait_for(fan_out, timeout=10)
        await eventful.commit()
    assert await _count(db) == 0
