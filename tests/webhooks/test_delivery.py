"""Delivering to real loopback receivers: signatures, retries, the log, receivers that misbehave."""

from __future__ import annotations

import asyncio
import json

from tests.helpers import create_account, create_key
from tests.telemetry.support import sample
from tests.webhooks.receivers import Answer, Receiver, always, in_turn
from tests.webhooks.support import (
    PUBLIC_IP,
    attempts,
    create_webhook,
    deliveries,
    endpoint,
    make_pump,
    public_only,
    pump_until,
    record,
    settled,
    verify_both,
)
from wacrm.api_keys.scopes import Scope
from wacrm.events.service import EventType


async def _setup(client, db, url, events=("contact.created",)):
    account = await create_account(db)
    key = await create_key(db, account.id, scopes=[Scope.WEBHOOKS_MANAGE])
    webhook_id, secret = await create_webhook(client, key.headers, url, events)
    return account, key, webhook_id, secret


async def test_a_delivery_is_signed_both_ways_and_logged(client, db, app):
    async with Receiver() as receiver:
        account, key, webhook_id, secret = await _setup(client, db, receiver.url)
        event_id = await record(db, account.id, data={"contact_id": "c1", "name": "Zoë"})
        pump = make_pump(app)
        await pump_until(pump, settled(app))
        await pump.aclose()

    [request] = receiver.received
    payload = verify_both(secret, request)
    assert set(payload) == {"id", "event", "occurred_at", "account_id", "data"}
    assert payload["id"] == event_id and payload["event"] == "contact.created"
    assert payload["account_id"] == str(account.id)
    assert payload["data"] == {"contact_id": "c1", "name": "Zoë"}
    assert payload["occurred_at"].endswith("Z")
    assert request.headers["x-wacrm-webhook-id"] == webhook_id
    assert request.headers["content-type"] == "application/json"
    assert request.headers["host"] == f"127.0.0.1:{receiver.port}"

    log = await client.get(f"/api/v1/webhooks/{webhook_id}/deliveries", headers=key.headers)
    [delivery] = log.json()["data"]
    assert delivery["status"] == "succeeded" and delivery["event_id"] == event_id
    [attempt] = delivery["attempts"]
    assert attempt["succeeded"] and attempt["status_code"] == 200
    assert attempt["response_body"] == "ok" and attempt["latency_ms"] >= 0


def _attempts_counted() -> dict[str, float]:
    outcomes = ("succeeded", "failed", "gone")
    return {o: sample("wacrm_webhook_delivery_attempts_total", outcome=o) for o in outcomes}


async def test_fails_twice_then_succeeds_with_the_same_event_id(client, db, app):
    script = in_turn(Answer(500, b"boom"), Answer(503, b"busy"), Answer(200))
    counted = _attempts_counted()
    async with Receiver(script) as receiver:
        account, key, webhook_id, secret = await _setup(client, db, receiver.url)
        event_id = await record(db, account.id)
        pump = make_pump(app)
        await pump_until(pump, settled(app))
        await pump.aclose()
    after = _attempts_counted()
    assert {o: after[o] - counted[o] for o in after} == {"succeeded": 1, "failed": 2, "gone": 0}

    assert receiver.event_ids() == [event_id] * 3
    for request in receiver.received:  # every attempt signs the bytes it sends
        assert verify_both(secret, request)["id"] == event_id
    log = await client.get(f"/api/v1/webhooks/{webhook_id}/deliveries", headers=key.headers)
    [delivery] = log.json()["data"]
    assert delivery["status"] == "succeeded" and delivery["attempt_count"] == 3
    trail = [(a["number"], a["status_code"], a["response_body"]) for a in delivery["attempts"]]
    assert trail == [(1, 500, "boom"), (2, 503, "busy"), (3, 200, "ok")]
    assert [a["error"] for a in delivery["attempts"]] == ["HTTP 500", "HTTP 503", None]


async def test_retry_after_is_honoured_and_the_budget_ends_in_failure(client, db, app):
    script = in_turn(Answer(429, headers={"retry-after": "1"}), Answer(500))
    async with Receiver(script) as receiver:
        account, *_ = await _setup(client, db, receiver.url)
        await record(db, account.id)
        pump = make_pump(app)
        await pump_until(pump, settled(app))
        await pump.aclose()

    first, second, third = await attempts(app)
    assert (second.attempted_at - first.attempted_at).total_seconds() >= 0.95  # not 0.05
    assert (third.attempted_at - second.attempted_at).total_seconds() < 0.9
    [delivery] = await deliveries(app)
    assert delivery.status == "failed" and delivery.attempts == 3  # the schedule's length
    assert delivery.last_status_code == 500 and delivery.next_attempt_at is None


async def test_410_gone_disables_the_endpoint(client, db, app):
    gone = sample("wacrm_webhook_delivery_attempts_total", outcome="gone")
    async with Receiver(always(Answer(410, b"gone"))) as receiver:
        account, _, webhook_id, _ = await _setup(client, db, receiver.url)
        await record(db, account.id)
        pump = make_pump(app)
        await pump_until(pump, settled(app))
        await record(db, account.id)  # after disabling: not queued at all
        await pump.aclose()

    assert len(receiver.received) == 1
    disabled = await endpoint(app, webhook_id)
    assert not disabled.is_active and "410" in (disabled.disabled_reason or "")
    assert [d.status for d in await deliveries(app)] == ["failed"]
    assert sample("wacrm_webhook_delivery_attempts_total", outcome="gone") == gone + 1


async def test_sustained_failure_auto_disables_and_reenabling_resets(client, db, app):
    app.state.settings = app.state.settings.model_copy(
        update={"webhooks_disable_after_failures": 4, "webhooks_disable_after_seconds": 0}
    )
    async with Receiver(always(Answer(500))) as receiver:
        account, key, webhook_id, _ = await _setup(client, db, receiver.url)
        for _ in range(3):
            await record(db, account.id)
        pump = make_pump(app)
        await pump_until(pump, settled(app))
        await pump.aclose()

    shown = (await client.get(f"/api/v1/webhooks/{webhook_id}", headers=key.headers)).json()
    assert shown["data"]["status"] == "disabled"
    assert shown["data"]["disabled_reason"].startswith("Disabled automatically: 4 or more")
    assert shown["data"]["consecutive_failures"] >= 4
    assert len(receiver.received) < 9  # stopped before spending every delivery's budget
    assert {d.status for d in await deliveries(app)} == {"failed"}

    path = f"/api/v1/webhooks/{webhook_id}"
    enabled = (await client.patch(path, headers=key.headers, json={"is_active": True})).json()
    assert enabled["data"]["consecutive_failures"] == 0 and enabled["data"]["failing_since"] is None


async def test_case_14_redirects_are_never_followed(client, db, app):
    location = {"location": "http://169.254.169.254/latest/meta-data/"}
    async with Receiver(always(Answer(302, b"moved", location))) as receiver:
        account, _, _, _ = await _setup(client, db, receiver.url)
        await record(db, account.id)
        pump = make_pump(app)
        await pump_until(pump, settled(app))
        await pump.aclose()

    assert [r.path for r in receiver.received] == ["/hook"] * 3
    assert {(a.status_code, a.error, a.succeeded) for a in await attempts(app)} == {
        (302, "redirects are not followed", False)
    }


async def test_a_hanging_receiver_times_out_and_holds_no_one_else_up(client, db, app):
    async with (
        Receiver(in_turn(Answer(behaviour="hang"), Answer())) as hanging,
        Receiver() as healthy,
    ):
        account, key, _, _ = await _setup(client, db, hanging.url)
        await create_webhook(client, key.headers, healthy.url, ["contact.created"])
        await record(db, account.id)
        pump = make_pump(app)
        loop = asyncio.get_running_loop()
        started = loop.time()
        first_round = asyncio.create_task(pump.run_round())
        while not healthy.received:  # arrives while the other attempt still hangs
            assert loop.time() - started < 0.9
            await asyncio.sleep(0.01)
        await first_round
        await pump_until(pump, settled(app))
        await pump.aclose()

    errors = [a.error for a in await attempts(app) if not a.succeeded]
    assert errors == ["no complete response within 1 s"]
    assert len(hanging.received) == 2 and len(healthy.received) == 1


async def test_reset_connections_and_endless_bodies(client, db, app):
    async with Receiver(
        in_turn(Answer(behaviour="reset"), Answer(200, b"a" * 4000, behaviour="endless"))
    ) as receiver:
        account, _, _, _ = await _setup(client, db, receiver.url)
        await record(db, account.id)
        pump = make_pump(app)
        await pump_until(pump, settled(app))
        await pump.aclose()

    reset, endless = await attempts(app)
    assert not reset.succeeded and reset.status_code is None
    assert reset.error and reset.error.startswith(("connection lost", "invalid HTTP response"))
    assert endless.succeeded and endless.response_body == "a" * 1024
    assert endless.latency_ms < 900  # stopped reading: a terabyte was on offer


async def test_each_delivery_resolves_again_and_refuses_a_private_address(client, db, app, dns):
    """Registered while public; at delivery the name also resolves to a private address."""
    public_only(app)
    dns.names["rebind.example"] = [PUBLIC_IP]
    account, _, _, _ = await _setup(client, db, "https://rebind.example/h")
    dns.names["rebind.example"] = [PUBLIC_IP, "10.0.0.7"]
    await record(db, account.id)
    pump = make_pump(app, resolver=dns)
    await pump_until(pump, settled(app))
    await pump.aclose()

    errors = {a.error for a in await attempts(app)}
    assert len(errors) == 1
    assert errors.pop().startswith("blocked: webhook host 'rebind.example' resolves to 10.0.0.7")
    assert dns.lookups.count("rebind.example") == 1 + 3  # registration, then every attempt


async def test_test_button_and_redeliver(client, db, app):
    async with Receiver() as receiver:
        _, key, webhook_id, secret = await _setup(client, db, receiver.url, ["message.received"])
        path = f"/api/v1/webhooks/{webhook_id}"
        test = await client.post(f"{path}/test", headers=key.headers)
        assert test.status_code == 202
        queued = test.json()["data"]
        assert queued["event_type"] == "webhook.test" and queued["status"] == "pending"
        pump = make_pump(app)
        await pump_until(pump, settled(app))

        redone = await client.post(
            f"{path}/deliveries/{queued['id']}/redeliver", headers=key.headers
        )
        assert redone.status_code == 202, redone.text
        assert redone.json()["data"]["event_id"] == queued["event_id"]
        await pump_until(pump, settled(app))
        await pump.aclose()

    first, second = (verify_both(secret, r) for r in receiver.received)
    assert first["id"] == second["id"] == queued["event_id"]
    assert first["event"] == "webhook.test" and first["data"]["webhook_id"] == webhook_id

    page = await client.get(f"{path}/deliveries", headers=key.headers, params={"limit": 1})
    body = page.json()
    assert len(body["data"]) == 1 and body["meta"]["next_cursor"]
    rest = await client.get(
        f"{path}/deliveries",
        headers=key.headers,
        params={"limit": 1, "cursor": body["meta"]["next_cursor"]},
    )
    assert {body["data"][0]["id"], rest.json()["data"][0]["id"]} == {
        queued["id"],
        redone.json()["data"]["id"],
    }
    failed_only = await client.get(
        f"{path}/deliveries", headers=key.headers, params={"status": "failed"}
    )
    assert failed_only.json()["data"] == []
    unknown = await client.post(f"{path}/deliveries/{webhook_id}/redeliver", headers=key.headers)
    assert unknown.status_code == 404
    assert json.loads(receiver.received[0].body)["event"] == "webhook.test"


async def test_message_events_go_only_to_subscribers(client, db, app):
    async with Receiver() as receiver:
        account, _, _, _ = await _setup(client, db, receiver.url, ["message.received"])
        await record(db, account.id, EventType.CONTACT_CREATED)
        wanted = await record(db, account.id, EventType.MESSAGE_RECEIVED, {"message_id": "m"})
        pump = make_pump(app)
        await pump_until(pump, settled(app))
        await pump.aclose()
    assert receiver.event_ids() == [wanted]
