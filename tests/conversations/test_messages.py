"""GET /conversations/{id}/messages: newest first, ties (case 16), fields, scopes, end to end."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.contacts import error_of, new_contact, tenant, walk
from tests.conversations import CONVERSATIONS, add_message, create_conversation
from tests.whatsapp.inbound_support import create_meta_channel, inbound_text, post_signed
from wacrm.models import Direction, MessageStatus

TIE = datetime(2026, 3, 1, 12, 0, 0, 111111, tzinfo=UTC)
FIELDS = {
    "id",
    "direction",
    "type",
    "status",
    "whatsapp_message_id",
    "content",
    "reply_to_whatsapp_message_id",
    "error",
    "created_at",
    "sent_at",
    "delivered_at",
    "read_at",
    "failed_at",
}


@pytest.fixture
async def acme(db):
    return await tenant(db)  # every scope


def _url(conversation) -> str:
    return f"{CONVERSATIONS}/{conversation.id}/messages"


async def test_messages_come_newest_first_with_their_delivery_fields(client, db, acme):
    conversation = await create_conversation(db, acme.account_id, "+14155550123")
    older = await add_message(db, conversation, TIE - timedelta(minutes=5), wamid="wamid.IN1")
    read_at = TIE + timedelta(seconds=30)
    newer = await add_message(
        db,
        conversation,
        TIE,
        direction=Direction.OUTBOUND,
        status=MessageStatus.READ,
        wamid="wamid.OUT1",
        reply_to_wamid="wamid.IN1",
        sent_at=TIE,
        delivered_at=TIE + timedelta(seconds=5),
        read_at=read_at,
    )
    other = await create_conversation(db, acme.account_id, "+14155550177")
    await add_message(db, other, TIE + timedelta(hours=1), wamid="wamid.ELSEWHERE")

    body = (await client.get(_url(conversation), headers=acme.headers)).json()
    assert body["meta"] == {"next_cursor": None}
    assert [m["id"] for m in body["data"]] == [str(newer.id), str(older.id)]
    first = body["data"][0]
    assert set(first) == FIELDS
    assert first["direction"] == "outbound" and first["status"] == "read"
    assert first["whatsapp_message_id"] == "wamid.OUT1"
    assert first["reply_to_whatsapp_message_id"] == "wamid.IN1"
    assert datetime.fromisoformat(first["read_at"]) == read_at
    assert first["failed_at"] is None and first["error"] is None
    assert body["data"][1]["content"] == {"body": f"at {older.created_at.isoformat()}"}


async def test_case_16_five_tied_messages_walked_by_two_with_an_insert_mid_walk(client, db, acme):
    conversation = await create_conversation(db, acme.account_id, "+14155550123")
    tied = [str((await add_message(db, conversation, TIE)).id) for _ in range(5)]
    first = (await client.get(_url(conversation), params={"limit": 2}, headers=acme.headers)).json()
    late = await add_message(db, conversation, datetime.now(UTC))
    seen = [m["id"] for m in first["data"]]
    cursor = first["meta"]["next_cursor"]
    pages = 1
    while cursor:
        params = {"limit": 2, "cursor": cursor}
        body = (await client.get(_url(conversation), params=params, headers=acme.headers)).json()
        seen += [m["id"] for m in body["data"]]
        cursor = body["meta"]["next_cursor"]
        pages += 1
    assert sorted(seen) == sorted(tied) and len(seen) == 5
    assert str(late.id) not in seen
    assert pages == 3


async def test_a_cursor_only_works_for_its_conversation_and_account(client, db, acme):
    conversation = await create_conversation(db, acme.account_id, "+14155550123")
    sibling = await create_conversation(db, acme.account_id, "+14155550177")
    for n in range(3):
        await add_message(db, conversation, TIE + timedelta(seconds=n))
        await add_message(db, sibling, TIE + timedelta(seconds=n))
    page = await client.get(_url(conversation), params={"limit": 1}, headers=acme.headers)
    cursor = page.json()["meta"]["next_cursor"]
    error_of(await client.get(_url(sibling), params={"cursor": cursor}, headers=acme.headers), 400)
    error_of(await client.get(CONVERSATIONS, params={"cursor": cursor}, headers=acme.headers), 400)
    other = await tenant(db, name="Other shop")
    response = await client.get(
        _url(conversation), params={"cursor": cursor}, headers=other.headers
    )
    assert response.status_code in (400, 404) and "error" in response.json()
    for bad in ("null", "%%%", "aW52YWxpZA", "", "0" * 40):
        error_of(
            await client.get(_url(conversation), params={"cursor": bad}, headers=acme.headers), 400
        )
    for limit in (0, 101):
        error_of(
            await client.get(_url(conversation), params={"limit": limit}, headers=acme.headers), 400
        )


async def test_another_accounts_conversation_is_404(client, db, acme):
    other = await tenant(db, name="Other shop")
    theirs = await create_conversation(db, other.account_id, "+14155550123")
    await add_message(db, theirs, TIE, wamid="wamid.THEIRS")
    response = await client.get(_url(theirs), headers=acme.headers)
    error_of(response, 404, "not_found")
    assert "wamid.THEIRS" not in response.text


async def test_messages_need_messages_read_not_conversations_read(client, db, acme):
    conversation = await create_conversation(db, acme.account_id, "+14155550123")
    viewer = await tenant(db, "conversations:read", "contacts:read")
    error = error_of(await client.get(_url(conversation), headers=viewer.headers), 403, "forbidden")
    assert "messages:read" in error["message"]
    reader = await tenant(db, "messages:read")
    error_of(await client.get(_url(conversation), headers=reader.headers), 404, "not_found")


async def test_a_created_contact_writing_in_shows_up_end_to_end(client, db, settings, acme):
    ava = await new_contact(client, acme, phone="+1 (415) 555-0123", name="Ava", tags=["VIP"])
    await create_meta_channel(db, settings, acme.account_id)
    body = inbound_text("wamid.E2E1", sender="14155550123", body="Hi!", timestamp=int(time.time()))
    assert (await post_signed(client, body)).status_code == 200

    [conversation] = await walk(client, CONVERSATIONS, acme, limit=10, contact_id=ava["id"])
    assert conversation["contact"]["id"] == ava["id"]
    assert conversation["contact"]["profile_name"] == "Ava Thompson"
    assert conversation["contact"]["tags"] == ["VIP"]
    assert (conversation["unread_count"], conversation["service_window_open"]) == (1, True)
    messages = await client.get(
        f"{CONVERSATIONS}/{conversation['id']}/messages", headers=acme.headers
    )
    [message] = messages.json()["data"]
    assert (message["direction"], message["status"], message["type"]) == (
        "inbound",
        "received",
        "text",
    )
    assert message["whatsapp_message_id"] == "wamid.E2E1"
    assert message["content"]["body"] == "Hi!"
