"""Delivery statuses: monotonic (case 9), a bad one never sinks the batch (case 10), the raw
history kept, one event per change, and tenant isolation by wamid.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest

from tests.helpers import create_account
from tests.whatsapp.inbound_support import (
    count,
    create_meta_channel,
    create_outbound_message,
    envelope,
    fixture_body,
    mount_webhook,
    one,
    post_signed,
    rows,
    status_report,
    text_message,
)
from wacrm.models import Event, InboundPayload, Message, MessageStatus, MessageStatusUpdate
from wacrm.whatsapp import inbound

OUT_1 = "wamid.HBgLMTQxNTU1NTAxNDAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"
OUT_2 = "wamid.HBgLMTQxNTU1NTAxNDIVAgARGBJCMTlFQzJGNTFENUI0MDhDNDIA"


@pytest.fixture
def app(app):
    return mount_webhook(app)


@pytest.fixture
async def account(db):
    return await create_account(db)


@pytest.fixture
async def channel(db, settings, account):
    return await create_meta_channel(db, settings, account.id)


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


async def _message(db, wamid: str = OUT_1) -> Message:
    return await one(db, Message, Message.wamid == wamid)


async def _status_events(db) -> list[dict]:
    return [e.data for e in await rows(db, Event, Event.type == "message.status_updated")]


async def _post_statuses(client, *reports) -> None:
    response = await post_signed(client, envelope({"statuses": list(reports)}))
    assert response.status_code == 200


async def test_each_status_fixture_moves_the_message_forward(client, db, account, channel):
    message = await create_outbound_message(db, account.id, OUT_1, status=MessageStatus.PENDING)
    expected = [
        ("status_sent.json", "sent", "sent_at", 1750002000),
        ("status_delivered.json", "delivered", "delivered_at", 1750002010),
        ("status_read.json", "read", "read_at", 1750002020),
    ]
    for name, status, column, seconds in expected:
        response = await post_signed(client, fixture_body(name, OUTBOUND_1=OUT_1))
        assert response.status_code == 200
        stored = await _message(db)
        assert stored.status == status
        assert getattr(stored, column) == _at(seconds)
    events = await _status_events(db)
    assert [event["status"] for event in events] == ["sent", "delivered", "read"]
    assert events[0] == {
        "message_id": str(message.id),
        "conversation_id": str(message.conversation_id),
        "wamid": OUT_1,
        "status": "sent",
        "timestamp": _at(1750002000).isoformat(),
        "error": None,
    }
    history = await rows(db, MessageStatusUpdate)
    assert [h.status for h in history] == ["sent", "delivered", "read"]
    assert history[0].raw["pricing"]["pricing_model"] == "PMP"
    assert history[0].occurred_at == _at(1750002000)


async def test_a_failed_status_records_metas_error(client, db, account, channel):
    await create_outbound_message(db, account.id, OUT_1)
    response = await post_signed(client, fixture_body("status_failed.json", OUTBOUND_1=OUT_1))
    assert response.status_code == 200
    message = await _message(db)
    assert message.status == "failed"
    assert message.failed_at == _at(1750002030)
    assert message.error == {
        "code": 131047,
        "title": "Re-engagement message",
        "message": "Re-engagement message",
        "details": "Message failed to send because more than 24 hours have passed since the "
        "customer last replied to this number.",
    }
    (event,) = await _status_events(db)
    assert event["status"] == "failed"
    assert event["error"]["code"] == 131047


async def test_case_9_statuses_out_of_order_end_read_with_times_kept(client, db, account, channel):
    await create_outbound_message(db, account.id, OUT_1)
    await _post_statuses(client, status_report(OUT_1, "read", 1750002020))
    await _post_statuses(client, status_report(OUT_1, "delivered", 1750002010))
    await _post_statuses(client, status_report(OUT_1, "sent", 1750002000))
    message = await _message(db)
    assert message.status == "read"
    assert (message.read_at, message.delivered_at) == (_at(1750002020), _at(1750002010))
    assert [e["status"] for e in await _status_events(db)] == ["read"]
    history = await rows(db, MessageStatusUpdate)
    assert [h.status for h in history] == ["read", "delivered", "sent"]  # every report kept


async def test_delivered_with_no_prior_sent_is_delivered(client, db, account, channel):
    await create_outbound_message(db, account.id, OUT_1, status=MessageStatus.PENDING)
    await _post_statuses(client, status_report(OUT_1, "delivered", 1750002010))
    message = await _message(db)
    assert (message.status, message.sent_at) == ("delivered", None)


async def test_failed_after_delivery_changes_nothing_but_is_kept(client, db, account, channel):
    await create_outbound_message(db, account.id, OUT_1)
    await _post_statuses(client, status_report(OUT_1, "delivered", 1750002010))
    failed = status_report(OUT_1, "failed", 1750002030, errors=[{"code": 131026}])
    await _post_statuses(client, failed)
    message = await _message(db)
    assert (message.status, message.error, message.failed_at) == ("delivered", None, None)
    assert await count(db, MessageStatusUpdate) == 2
    assert [e["status"] for e in await _status_events(db)] == ["delivered"]


async def test_a_replayed_status_changes_the_message_once(client, db, account, channel):
    await create_outbound_message(db, account.id, OUT_1)
    body = json.dumps(envelope({"statuses": [status_report(OUT_1, "read", 1750002020)]}))
    for _ in range(3):
        assert (await post_signed(client, body.encode())).status_code == 200
    assert (await _message(db)).status == "read"
    assert len(await _status_events(db)) == 1


async def test_concurrent_statuses_for_one_message_never_go_backwards(client, db, account, channel):
    await create_outbound_message(db, account.id, OUT_1, status=MessageStatus.PENDING)
    reports = [
        status_report(OUT_1, status, 1750002000 + n)
        for n, status in enumerate(["sent", "delivered", "read"] * 3)
    ]
    await asyncio.gather(*(_post_statuses(client, report) for report in reports))
    message = await _message(db)
    assert message.status == "read"
    assert message.read_at == _at(1750002002)  # the earliest read report
    assert await count(db, MessageStatusUpdate) == 9


async def test_case_10_one_bad_status_does_not_sink_the_batch(client, db, account, channel):
    await create_outbound_message(db, account.id, OUT_1)
    body = envelope(
        {
            "contacts": [{"profile": {"name": "Rosa"}, "wa_id": "14155550141"}],
            "messages": [text_message("wamid.IN10", sender="14155550141", body="still there?")],
            "statuses": [
                status_report("wamid.NEVER_SEEN", "delivered", 1750002010),
                status_report(OUT_1, "delivered", 1750002011),
                status_report(OUT_1, "teleported", 1750002012),
                {"id": OUT_1},
            ],
        }
    )
    response = await post_signed(client, body)
    assert response.status_code == 200
    assert (await _message(db)).status == "delivered"
    assert (await _message(db, "wamid.IN10")).content == {"body": "still there?"}
    assert [h.status for h in await rows(db, MessageStatusUpdate)] == ["delivered", "teleported"]


async def test_the_mixed_batch_fixture(client, db, account, channel):
    await create_outbound_message(db, account.id, OUT_1, phone="+14155550141")
    await create_outbound_message(db, account.id, OUT_2, phone="+14155550142")
    body = fixture_body("batch_mixed.json", OUTBOUND_1=OUT_1, OUTBOUND_2=OUT_2)
    response = await post_signed(client, body)
    assert response.status_code == 200
    inbound_messages = await rows(db, Message, Message.direction == "inbound")
    assert sorted(m.type for m in inbound_messages) == ["image", "text", "text"]
    assert (await _message(db, OUT_1)).status == "read"
    assert (await _message(db, OUT_2)).status == "read"
    assert await count(db, MessageStatusUpdate) == 3  # the unknown wamid left no trace
    payload = await one(db, InboundPayload)
    assert payload.last_error is None


async def test_a_status_for_another_accounts_message_is_ignored(
    client, db, settings, account, channel
):
    other = await create_account(db, "Other shop")
    await create_meta_channel(
        db, settings, other.id, phone_number_id="1234567891", app_secret="other-app-secret"
    )
    await create_outbound_message(db, other.id, OUT_1)
    # Our channel reports a status naming the other account's message.
    await _post_statuses(client, status_report(OUT_1, "read", 1750002020))
    message = await _message(db)
    assert (message.status, message.read_at) == ("sent", None)
    assert await count(db, MessageStatusUpdate) == 0
    assert await _status_events(db) == []


async def test_a_status_naming_an_inbound_message_is_ignored(client, db, channel):
    await post_signed(
        client,
        envelope({"messages": [text_message("wamid.CUSTOMER1")]}),
    )
    await _post_statuses(client, status_report("wamid.CUSTOMER1", "read", 1750002020))
    assert (await _message(db, "wamid.CUSTOMER1")).status == "received"
    assert await count(db, MessageStatusUpdate) == 0


async def test_two_processors_of_one_status_payload_record_it_once(
    client, db, app, settings, account, channel, monkeypatch
):
    await create_outbound_message(db, account.id, OUT_1)

    async def hiccup(session, changes):
        raise RuntimeError("database hiccup")

    # The request's own attempt fails, so the payload stays pending for the processors.
    monkeypatch.setattr(inbound, "apply_changes", hiccup)
    await _post_statuses(client, status_report(OUT_1, "delivered", 1750002010))
    monkeypatch.undo()
    payload = await one(db, InboundPayload)
    assert payload.state == "pending"
    database = app.state.database
    await asyncio.gather(
        *(inbound.process_payload(database, settings, payload.id) for _ in range(4))
    )
    assert await count(db, MessageStatusUpdate) == 1
    assert len(await _status_events(db)) == 1


async def test_a_batch_naming_more_wamids_than_one_statement_can_carry(
    client, db, account, channel
):
    # PostgreSQL takes at most 32,767 parameters per statement: one IN list of every wamid
    # of this post failed it for good, the known status and the text with it.
    await create_outbound_message(db, account.id, OUT_1)
    unknown = [{"id": f"u{n}", "status": "sent"} for n in range(33_000)]  # minimal: < 1 MiB
    body = envelope(
        {
            "statuses": [*unknown, status_report(OUT_1, "read", 1750002020)],
            "messages": [text_message("wamid.CUSTOMER.BIG")],
        }
    )
    response = await post_signed(client, json.dumps(body, separators=(",", ":")).encode())
    assert response.status_code == 200
    assert (await _message(db)).status == "read"
    assert await count(db, Message, Message.wamid == "wamid.CUSTOMER.BIG") == 1
    payload = await one(db, InboundPayload)
    assert payload.state == "done"


async def test_delivered_after_failed_clears_the_failure(client, db, account, channel):
    await create_outbound_message(db, account.id, OUT_1)
    failed = status_report(
        OUT_1, "failed", 1750002010, errors=[{"code": 131026, "title": "Undeliverable"}]
    )
    await _post_statuses(client, failed)
    await _post_statuses(client, status_report(OUT_1, "delivered", 1750002020))
    db.expire_all()
    message = await _message(db)
    assert (message.status, message.failed_at, message.error) == ("delivered", None, None)
    assert message.delivered_at == _at(1750002020)


@pytest.mark.parametrize("timestamp", ["1", "0", "-5", "99999999999", "soon"])
async def test_an_absurd_timestamp_is_taken_as_now(client, db, account, channel, timestamp):
    # The earliest report of each status wins: a "delivered in 1970" would stick for good.
    await create_outbound_message(db, account.id, OUT_1)
    before = datetime.now(UTC)
    await _post_statuses(client, {**status_report(OUT_1, "delivered", 0), "timestamp": timestamp})
    await _post_statuses(client, status_report(OUT_1, "read", 1750002020))
    db.expire_all()
    message = await _message(db)
    assert message.delivered_at >= before
    assert message.read_at == _at(1750002020)
