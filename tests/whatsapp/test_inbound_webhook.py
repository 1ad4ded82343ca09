"""The inbound webhook over HTTP: the handshake (case 7), signatures, storing before the 200,
bodies that are signed but unusable, size limits (case 13), and retries of failed processing.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest

from tests.helpers import create_account
from tests.whatsapp.inbound_support import (
    APP_SECRET,
    WEBHOOK,
    count,
    create_meta_channel,
    envelope,
    fixture_body,
    inbound_text,
    mount_webhook,
    one,
    post_signed,
    rows,
    sign,
    text_message,
)
from wacrm.kit.clock import utcnow
from wacrm.models import Contact, Conversation, Event, InboundPayload, InboxState, Message
from wacrm.whatsapp import inbound
from wacrm.whatsapp.tasks import process_due_payloads

MB = 1000 * 1000


@pytest.fixture
def app(app):
    return mount_webhook(app)


@pytest.fixture
async def account(db):
    return await create_account(db)


@pytest.fixture
async def channel(db, settings, account):
    return await create_meta_channel(db, settings, account.id, verify_token="channel-verify-token")


async def _nothing_stored(db) -> None:
    for model in (InboundPayload, Contact, Conversation, Message, Event):
        assert await count(db, model) == 0, model.__name__


# --- case 7: the handshake ---------------------------------------------------------------


async def test_the_handshake_echoes_the_challenge_as_plain_text(client, settings, channel):
    settings.meta_verify_token = "deployment-verify-token"
    for token in ("deployment-verify-token", "channel-verify-token"):
        response = await client.get(
            WEBHOOK,
            params={
                "hub.mode": "subscribe",
                "hub.verify_token": token,
                "hub.challenge": "1158201444",
            },
        )
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        assert response.text == "1158201444"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong-token"},
        {"hub.mode": "unsubscribe", "hub.verify_token": "channel-verify-token"},
        {"hub.mode": "SUBSCRIBE", "hub.verify_token": "channel-verify-token"},
        {"hub.verify_token": "channel-verify-token"},
        {"hub.mode": "subscribe"},
        {"hub.mode": "subscribe", "hub.verify_token": ""},
        {"hub.mode": "subscribe", "hub.verify_token": "channel-verify-token\x00"},
        {"hub.mode": "subscribe", "hub.verify_token": "channel-verify-tokén"},
        {"hub.mode": "subscribe", "hub.verify_token": "x" * 5000},
    ],
)
async def test_a_wrong_token_or_mode_is_403(client, channel, params):
    response = await client.get(WEBHOOK, params={**params, "hub.challenge": "1158201444"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert "1158201444" not in response.text


async def test_the_handshake_needs_a_challenge(client, channel):
    params = {"hub.mode": "subscribe", "hub.verify_token": "channel-verify-token"}
    for challenge in ({}, {"hub.challenge": ""}, {"hub.challenge": "12\x0034"}):
        response = await client.get(WEBHOOK, params={**params, **challenge})
        assert response.status_code == 400


# --- signatures ------------------------------------------------------------------------------


def _bad_signatures(body: bytes) -> list[str | bytes | None]:
    good = sign(body)["X-Hub-Signature-256"]
    return [
        None,
        "",
        "sha256=",
        good[len("sha256=") :],  # no prefix
        "sha1=" + good[len("sha256=") :],
        "SHA256=" + good[len("sha256=") :],
        good[:-1],  # 63 hex digits
        good + "00",
        "sha256=" + "zz" * 32,
        "sha256=" + "0" * 64,
        sign(body, "some-other-secret")["X-Hub-Signature-256"],
        sign(body + b" ")["X-Hub-Signature-256"],  # signs different bytes
        good.encode()[:-2] + b"\xc3\xa9",  # non-ASCII
        b"sha256=\xff\xfe" + b"0" * 62,
    ]


@pytest.mark.parametrize("case", range(14))
async def test_a_missing_or_bad_signature_is_401_and_stores_nothing(client, db, channel, case):
    body = json.dumps(inbound_text("wamid.SIG1")).encode()
    signature = _bad_signatures(body)[case]
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature  # type: ignore[assignment]
    response = await client.post(WEBHOOK, content=body, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    await _nothing_stored(db)


async def test_the_deployment_wide_meta_secret_also_signs(client, db, settings, channel):
    settings.meta_app_secret = "deployment-meta-secret"
    response = await post_signed(client, inbound_text("wamid.SIG2"), "deployment-meta-secret")
    assert response.status_code == 200
    assert await count(db, Message) == 1


async def test_the_raw_bytes_are_stored_before_the_200(client, db, channel):
    body = b'{"object":"whatsapp_business_account",   "entry":[]}'
    response = await post_signed(client, body)
    assert response.status_code == 200
    payload = await one(db, InboundPayload)
    assert payload.body == body
    assert response.json()["data"]["payload_id"] == str(payload.id)
    assert payload.state == InboxState.DONE
    assert payload.processed_at is not None


# --- signed but unusable ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"\xff\xfe{}",
        b"[]",
        b'"whatsapp_business_account"',
        b'{"object": "page", "entry": []}',
        b'{"entry": []}',
        b'{"object": "whatsapp_business_account"}',
        b'{"object": "whatsapp_business_account", "entry": {"changes": []}}',
        b'{"object": "whatsapp_business_account", "entry": [], "n": ' + b"1" * 5000 + b"}",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"object": "whatsapp_business_account", "entry": [' + b"[" * 100 + b"]" * 100 + b"]}",
    ],
)
async def test_a_signed_but_unusable_body_is_200_and_kept_as_failed(client, db, channel, body):
    response = await post_signed(client, body)
    assert response.status_code == 200
    payload = await one(db, InboundPayload)
    assert payload.body == body
    assert payload.state == InboxState.FAILED
    assert payload.last_error.startswith("rejected: ")
    for model in (Contact, Conversation, Message, Event):
        assert await count(db, model) == 0


async def test_changes_missing_their_fields_are_skipped_and_noted(client, db, channel):
    body = envelope(
        {"messages": [text_message("wamid.OK1")]},
        {"messages": [{"from": "14155550123", "type": "text", "text": {"body": "no id"}}]},
        {"messages": [{"id": "wamid.NOSENDER", "type": "text", "text": {"body": "?"}}]},
        {"messages": [text_message("wamid.BADFROM", sender="not-a-number")]},
        {"statuses": [{"status": "read"}], "messages": "not a list"},
    )
    body["entry"][0]["changes"].append({"field": "messages", "value": {"messages": []}})
    body["entry"][0]["changes"].append("not an object")
    body["entry"].append({"id": "no changes"})
    response = await post_signed(client, body)
    assert response.status_code == 200
    message = await one(db, Message)
    assert message.wamid == "wamid.OK1"
    payload = await one(db, InboundPayload)
    assert payload.state == InboxState.DONE
    for note in ("messages[0] has no usable id", "statuses[0]", "phone_number_id", "entry[1]"):
        assert note in payload.last_error
    assert "wamid.BADFROM: sender is not a phone number" in payload.last_error


async def test_other_webhook_fields_are_acknowledged_and_ignored(client, db, channel):
    response = await post_signed(client, fixture_body("non_message_field.json"))
    assert response.status_code == 200
    payload = await one(db, InboundPayload)
    assert (payload.state, payload.last_error) == (InboxState.DONE, None)
    assert await count(db, Message) == 0


async def test_a_change_for_an_unknown_number_is_ignored_not_the_batch(client, db, channel):
    body = envelope(
        {"phone_number_id": "5550009999", "messages": [text_message("wamid.ELSEWHERE")]},
        {"messages": [text_message("wamid.HERE")]},
    )
    response = await post_signed(client, body)
    assert response.status_code == 200
    assert (await one(db, Message)).wamid == "wamid.HERE"
    payload = await one(db, InboundPayload)
    assert "unknown phone_number_id 5550009999" in payload.last_error


# --- case 13: unbounded bodies ------------------------------------------------------------


async def _chunks(body: bytes, size: int = 256 * 1024):
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def test_twenty_megabytes_is_413_before_hmac_and_stores_nothing(client, db, channel):
    body = b'{"object":"whatsapp_business_account","pad":"' + b"x" * (20 * MB) + b'"}'
    headers = sign(body)
    response = await client.post(WEBHOOK, content=body, headers=headers)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    request = client.build_request("POST", WEBHOOK, content=_chunks(body), headers=headers)
    assert "content-length" not in request.headers
    response = await client.send(request)
    assert response.status_code == 413
    await _nothing_stored(db)


# --- processing that fails, and the worker ------------------------------------------------


async def test_a_failure_leaves_the_payload_pending_and_the_worker_finishes_it(
    client, db, app, settings, channel, monkeypatch
):
    real = inbound.apply_changes
    calls = 0

    async def flaky(session, changes):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database hiccup")
        return await real(session, changes)

    monkeypatch.setattr(inbound, "apply_changes", flaky)
    response = await post_signed(client, inbound_text("wamid.FLAKY1"))
    assert response.status_code == 200  # stored, so Meta must not send it again

    payload = await one(db, InboundPayload)
    assert payload.state == InboxState.PENDING
    assert payload.attempts == 1
    assert "RuntimeError: database hiccup" in payload.last_error
    assert payload.next_attempt_at > utcnow()
    assert await count(db, Message) == 0
    assert await count(db, Event) == 0

    database = app.state.database
    assert await process_due_payloads(database, settings) == 0  # its retry time has not come
    payload.next_attempt_at = utcnow() - timedelta(seconds=1)
    await db.commit()
    assert await process_due_payloads(database, settings) == 1

    payload = await one(db, InboundPayload)
    assert (payload.state, payload.attempts, payload.last_error) == (InboxState.DONE, 2, None)
    assert (await one(db, Message)).wamid == "wamid.FLAKY1"
    assert await count(db, Event, Event.type == "message.received") == 1
    assert await process_due_payloads(database, settings) == 0


async def test_a_payload_stored_before_a_crash_is_processed_by_the_worker(
    db, app, settings, channel
):
    body = json.dumps(inbound_text("wamid.CRASH1")).encode()
    db.add(InboundPayload(body=body, next_attempt_at=utcnow() - timedelta(seconds=1)))
    await db.commit()
    assert await process_due_payloads(app.state.database, settings) == 1
    assert (await one(db, Message)).wamid == "wamid.CRASH1"
    assert (await one(db, InboundPayload)).state == InboxState.DONE


async def test_a_payload_that_always_fails_is_given_up_and_kept(
    client, db, app, settings, channel, monkeypatch
):
    async def broken(session, changes):
        raise RuntimeError("always")

    monkeypatch.setattr(inbound, "apply_changes", broken)
    assert (await post_signed(client, inbound_text("wamid.POISON"))).status_code == 200
    for _ in range(inbound.MAX_ATTEMPTS - 1):
        payload = await one(db, InboundPayload)
        assert payload.state == InboxState.PENDING
        payload.next_attempt_at = utcnow() - timedelta(seconds=1)
        await db.commit()
        assert await process_due_payloads(app.state.database, settings) == 1
    payload = await one(db, InboundPayload)
    assert (payload.state, payload.attempts) == (InboxState.FAILED, inbound.MAX_ATTEMPTS)
    assert await process_due_payloads(app.state.database, settings) == 0


def test_retries_back_off():
    delays = [inbound.retry_time(n) for n in range(1, inbound.MAX_ATTEMPTS + 1)]
    assert delays[-1] is None
    seconds = [(moment - utcnow()).total_seconds() for moment in delays[:-1]]
    assert 4 < seconds[0] <= 5
    assert seconds == sorted(seconds)
    assert seconds[-1] <= 3600


async def test_two_workers_on_the_same_payload_process_it_once(db, app, settings, channel):
    body = json.dumps(inbound_text("wamid.TWICE")).encode()
    db.add(InboundPayload(body=body, next_attempt_at=utcnow() - timedelta(seconds=1)))
    await db.commit()
    payload = await one(db, InboundPayload)
    database = app.state.database
    results = await asyncio.gather(
        *(inbound.process_payload(database, settings, payload.id) for _ in range(5))
    )
    assert all(results)
    assert await count(db, Message) == 1
    assert await count(db, Event, Event.type == "message.received") == 1
    assert (await one(db, InboundPayload)).attempts == 1


async def test_no_event_holds_the_app_secret(client, db, channel):
    await post_signed(client, fixture_body("batch_mixed.json"))
    events = [event.data for event in await rows(db, Event)]
    assert events
    assert APP_SECRET not in json.dumps(events)
