"""Inbound messages into contacts and conversations: duplicates (case 8), number variants
(case 11, inbound part), big batches, profile names, reopening, unread counts, NUL, events.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from tests.helpers import create_account
from tests.whatsapp.inbound_support import (
    count,
    create_meta_channel,
    envelope,
    inbound_text,
    mount_webhook,
    one,
    post_signed,
    rows,
    text_message,
)
from wacrm.contacts import repository as contacts_repository
from wacrm.kit.phone import normalise_phone
from wacrm.models import (
    Contact,
    Conversation,
    ConversationStatus,
    Event,
    InboundPayload,
    InboxState,
    Message,
)


@pytest.fixture
def app(app):
    return mount_webhook(app)


@pytest.fixture
async def account(db):
    return await create_account(db)


@pytest.fixture
async def channel(db, settings, account):
    return await create_meta_channel(db, settings, account.id)


async def _events(db, event_type: str) -> list[Event]:
    return await rows(db, Event, Event.type == event_type)


# --- case 8: Meta retries and concurrent duplicates ---------------------------------------


async def _assert_stored_once(db, wamid: str) -> None:
    message = await one(db, Message, Message.wamid == wamid)
    conversation = await one(db, Conversation, Conversation.id == message.conversation_id)
    assert conversation.unread_count == 1
    received = [e for e in await _events(db, "message.received") if e.data["wamid"] == wamid]
    assert len(received) == 1
    assert received[0].data["message_id"] == str(message.id)
    assert len(await _events(db, "contact.created")) == await count(db, Contact)
    assert len(await _events(db, "conversation.created")) == await count(db, Conversation)


async def test_a_retried_message_is_stored_once(client, db, channel):
    body = json.dumps(inbound_text("wamid.DUP1")).encode()
    for _ in range(2):
        assert (await post_signed(client, body)).status_code == 200
    await _assert_stored_once(db, "wamid.DUP1")

    responses = await asyncio.gather(*(post_signed(client, body) for _ in range(10)))
    assert [response.status_code for response in responses] == [200] * 10
    await _assert_stored_once(db, "wamid.DUP1")
    payloads = await rows(db, InboundPayload)
    assert len(payloads) == 12  # every delivery kept raw, all processed
    assert {payload.state for payload in payloads} == {InboxState.DONE}


async def test_ten_concurrent_first_deliveries_store_one_of_everything(client, db, channel):
    body = json.dumps(inbound_text("wamid.RACE1", sender="14155550177", name="Racer")).encode()
    responses = await asyncio.gather(*(post_signed(client, body) for _ in range(10)))
    assert [response.status_code for response in responses] == [200] * 10
    assert await count(db, Contact) == 1
    assert await count(db, Conversation) == 1
    await _assert_stored_once(db, "wamid.RACE1")
    assert {p.state for p in await rows(db, InboundPayload)} == {InboxState.DONE}


async def test_concurrent_messages_from_one_customer_all_count_unread(client, db, channel):
    bodies = [inbound_text(f"wamid.BURST{n}", body=f"part {n}") for n in range(10)]
    responses = await asyncio.gather(*(post_signed(client, body) for body in bodies))
    assert {response.status_code for response in responses} == {200}
    assert await count(db, Message) == 10
    assert (await one(db, Conversation)).unread_count == 10
    assert len(await _events(db, "contact.created")) == 1


# --- case 11, inbound part ---------------------------------------------------------------


async def test_an_inbound_number_attaches_to_the_contact_with_that_number(
    client, db, settings, account, channel
):
    phone = normalise_phone("+1 (415) 555-0123")
    existing, _ = await contacts_repository.find_or_create_by_phone(
        db, account.id, phone, name="Ava"
    )
    await db.commit()
    other = await create_account(db, "Other shop")
    await create_meta_channel(
        db, settings, other.id, phone_number_id="1234567891", app_secret="other-app-secret"
    )

    response = await post_signed(client, inbound_text("wamid.C11A", sender="14155550123"))
    assert response.status_code == 200
    body = inbound_text("wamid.C11B", sender="14155550123", phone_number_id="1234567891")
    assert (await post_signed(client, body, "other-app-secret")).status_code == 200

    mine = await one(db, Contact, Contact.account_id == account.id)
    assert (mine.id, mine.phone, mine.name) == (existing.id, "+14155550123", "Ava")
    assert mine.profile_name == "Ava Thompson"
    assert (await one(db, Message, Message.wamid == "wamid.C11A")).contact_id == existing.id
    theirs = await one(db, Contact, Contact.account_id == other.id)
    assert theirs.id != existing.id and theirs.phone == "+14155550123"
    assert (await one(db, Message, Message.wamid == "wamid.C11B")).contact_id == theirs.id
    created = await _events(db, "contact.created")
    assert [event.account_id for event in created] == [other.id]
    assert await count(db, Conversation) == 2


# --- batches, names, reopening, unread ----------------------------------------------------


async def test_a_batch_of_a_hundred_messages_is_stored_whole(client, db, channel):
    senders = [f"141555501{n:02d}" for n in range(50, 60)]
    messages = [
        text_message(f"wamid.BATCH{n}", sender=senders[n % 10], body=f"message {n}")
        for n in range(100)
    ]
    contacts = [{"profile": {"name": f"Customer {s}"}, "wa_id": s} for s in senders]
    response = await post_signed(client, envelope({"contacts": contacts, "messages": messages}))
    assert response.status_code == 200
    assert await count(db, Message) == 100
    assert await count(db, Contact) == 10
    assert {c.unread_count for c in await rows(db, Conversation)} == {10}
    assert len(await _events(db, "message.received")) == 100
    assert len(await _events(db, "contact.created")) == 10


async def test_the_profile_name_follows_whatsapp(client, db, channel):
    await post_signed(client, inbound_text("wamid.NAME1", name="Ava"))
    await post_signed(client, inbound_text("wamid.NAME2", name="Ava T."))
    assert (await one(db, Contact)).profile_name == "Ava T."
    await post_signed(client, inbound_text("wamid.NAME3", name=None))  # no contacts array
    assert (await one(db, Contact)).profile_name == "Ava T."
    assert len(await _events(db, "contact.created")) == 1


async def test_a_new_message_reopens_a_closed_conversation(client, db, channel):
    await post_signed(client, inbound_text("wamid.OPEN1", timestamp=1750000100))
    conversation = await one(db, Conversation)
    assert conversation.status == ConversationStatus.OPEN
    await db.execute(
        update(Conversation).values(status=ConversationStatus.CLOSED.value, unread_count=0)
    )
    await db.commit()

    await post_signed(client, inbound_text("wamid.OPEN2", timestamp=1750000200))
    conversation = await one(db, Conversation)
    assert conversation.status == ConversationStatus.OPEN
    assert conversation.unread_count == 1
    at = datetime.fromtimestamp(1750000200, UTC)
    assert conversation.last_inbound_at == at
    assert conversation.last_message_at == at
    assert len(await _events(db, "conversation.created")) == 1


async def test_a_late_old_message_does_not_move_the_window_back(client, db, channel):
    await post_signed(client, inbound_text("wamid.LATE2", timestamp=1750000200))
    await post_signed(client, inbound_text("wamid.LATE1", timestamp=1750000100))
    conversation = await one(db, Conversation)
    assert conversation.last_inbound_at == datetime.fromtimestamp(1750000200, UTC)
    assert conversation.unread_count == 2
    message = await one(db, Message, Message.wamid == "wamid.LATE1")
    assert message.sent_at == datetime.fromtimestamp(1750000100, UTC)


# --- text that databases refuse -----------------------------------------------------------


async def test_nul_and_lone_surrogates_are_cleaned_not_a_500(client, db, channel):
    body = inbound_text("wamid.NUL\x001", body="hel\x00lo \ud83d!", name="A\x00va")
    raw = json.dumps(body).encode()
    assert b"\\u0000" in raw and b"\\ud83d" in raw
    response = await post_signed(client, raw)
    assert response.status_code == 200
    message = await one(db, Message)
    assert message.wamid == "wamid.NUL1"
    assert message.content == {"body": "hello \ufffd!"}
    assert (await one(db, Contact)).profile_name == "Ava"
    assert (await one(db, InboundPayload)).body == raw  # the raw bytes stay as Meta sent them


# --- events --------------------------------------------------------------------------------


async def test_each_event_is_recorded_once_with_its_data(client, db, channel):
    await post_signed(client, inbound_text("wamid.EV1", body="Hi there", timestamp=1750000100))
    contact = await one(db, Contact)
    conversation = await one(db, Conversation)
    message = await one(db, Message)

    (created,) = await _events(db, "contact.created")
    assert created.data == {
        "contact_id": str(contact.id),
        "phone": "+14155550123",
        "name": None,
        "profile_name": "Ava Thompson",
        "source": "whatsapp",
    }
    (opened,) = await _events(db, "conversation.created")
    assert opened.data["conversation_id"] == str(conversation.id)
    assert opened.data["contact_id"] == str(contact.id)
    (received,) = await _events(db, "message.received")
    assert received.account_id == channel.account_id
    assert received.data == {
        "message_id": str(message.id),
        "conversation_id": str(conversation.id),
        "contact_id": str(contact.id),
        "contact_phone": "+14155550123",
        "channel_id": str(channel.id),
        "type": "text",
        "content": {"body": "Hi there"},
        "wamid": "wamid.EV1",
        "reply_to_wamid": None,
        "timestamp": "2025-06-15T15:08:20+00:00",
    }
    assert json.loads(json.dumps([e.data for e in await rows(db, Event)]))
