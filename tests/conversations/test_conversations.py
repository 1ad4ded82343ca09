"""GET /conversations and /conversations/{id}: filters, embedded contact, window, isolation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.contacts import error_of, new_contact, tenant, walk
from tests.conversations import CONVERSATIONS, create_conversation
from wacrm.models import ConversationStatus

TIE = datetime(2026, 3, 1, 12, 0, 0, 654321, tzinfo=UTC)
FIELDS = {
    "id",
    "status",
    "unread_count",
    "last_message_at",
    "last_inbound_at",
    "service_window_open",
    "channel_id",
    "contact",
    "created_at",
}


@pytest.fixture
async def acme(db):
    return await tenant(db)  # every scope


async def _list(client, who, **params) -> list[dict]:
    response = await client.get(CONVERSATIONS, params=params, headers=who.headers)
    assert response.status_code == 200, response.text
    data: list[dict] = response.json()["data"]
    return data


async def test_a_conversation_embeds_its_contact_with_tags(client, db, acme):
    ava = await new_contact(client, acme, phone="+14155550123", name="Ava", tags=["VIP", "Café"])
    last = datetime.now(UTC) - timedelta(hours=1)
    conversation = await create_conversation(
        db,
        acme.account_id,
        "+14155550123",
        unread_count=2,
        last_inbound_at=last,
        last_message_at=last,
    )
    [item] = await _list(client, acme)
    assert set(item) == FIELDS
    assert item["id"] == str(conversation.id)
    assert item["contact"] == ava
    assert item["contact"]["tags"] == ["Café", "VIP"]
    assert (item["status"], item["unread_count"], item["service_window_open"]) == ("open", 2, True)
    assert datetime.fromisoformat(item["last_inbound_at"]) == last
    one = await client.get(f"{CONVERSATIONS}/{conversation.id}", headers=acme.headers)
    assert one.json() == {"data": item}


@pytest.mark.parametrize(
    ("hours_ago", "is_open"),
    [(None, False), (0.1, True), (23.9, True), (24.1, False), (500, False)],
)
async def test_the_service_window_is_24_hours_from_the_last_inbound(
    client, db, acme, hours_ago, is_open
):
    last = None if hours_ago is None else datetime.now(UTC) - timedelta(hours=hours_ago)
    await create_conversation(db, acme.account_id, "+14155550123", last_inbound_at=last)
    [item] = await _list(client, acme)
    assert item["service_window_open"] is is_open


async def test_the_status_and_contact_filters(client, db, acme):
    made = {}
    for n, status in enumerate(ConversationStatus):
        made[status] = await create_conversation(
            db, acme.account_id, f"+1415555010{n}", status=status.value
        )
    for status, conversation in made.items():
        assert [c["id"] for c in await _list(client, acme, status=status.value)] == [
            str(conversation.id)
        ]
    pending = made[ConversationStatus.PENDING]
    by_contact = await _list(client, acme, contact_id=str(pending.contact_id))
    assert [c["id"] for c in by_contact] == [str(pending.id)]
    assert await _list(client, acme, contact_id=str(pending.contact_id), status="open") == []
    assert await _list(client, acme, contact_id=str(uuid.uuid4())) == []
    assert len(await _list(client, acme)) == 3


@pytest.mark.parametrize(
    "params",
    [
        {"status": "archived"},
        {"status": "OPEN"},
        {"status": ""},
        {"status": "open\x00"},
        {"contact_id": "nope"},
        {"limit": 0},
        {"limit": 101},
        {"cursor": "null"},
        {"cursor": "%%%"},
    ],
)
async def test_bad_filters_are_400(client, acme, params):
    error_of(await client.get(CONVERSATIONS, params=params, headers=acme.headers), 400)


async def test_case_16_tied_conversations_are_walked_once_each(client, db, acme):
    tied = [
        str((await create_conversation(db, acme.account_id, f"+1415555010{n}", created_at=TIE)).id)
        for n in range(5)
    ]
    first = (await client.get(CONVERSATIONS, params={"limit": 2}, headers=acme.headers)).json()
    late = await create_conversation(db, acme.account_id, "+14155550199")
    seen = [c["id"] for c in first["data"]]
    cursor = first["meta"]["next_cursor"]
    while cursor:
        params = {"limit": 2, "cursor": cursor}
        body = (await client.get(CONVERSATIONS, params=params, headers=acme.headers)).json()
        seen += [c["id"] for c in body["data"]]
        cursor = body["meta"]["next_cursor"]
    assert sorted(seen) == sorted(tied)
    assert str(late.id) not in seen


async def test_a_cursor_is_bound_to_account_endpoint_and_filters(client, db, acme):
    for n in range(3):
        await create_conversation(db, acme.account_id, f"+1415555010{n}", status="open")
    page = await client.get(
        CONVERSATIONS, params={"limit": 1, "status": "open"}, headers=acme.headers
    )
    cursor = page.json()["meta"]["next_cursor"]
    other = await tenant(db, name="Other shop")
    for who, url, params in [
        (other, CONVERSATIONS, {"status": "open"}),
        (acme, CONVERSATIONS, {}),
        (acme, CONVERSATIONS, {"status": "closed"}),
        (acme, "/api/v1/contacts", {}),
    ]:
        response = await client.get(url, params={**params, "cursor": cursor}, headers=who.headers)
        error_of(response, 400)
    params = {"limit": 1, "status": "open", "cursor": cursor}
    assert (await client.get(CONVERSATIONS, params=params, headers=acme.headers)).status_code == 200


async def test_another_account_sees_none_of_it(client, db, acme):
    mine = await create_conversation(db, acme.account_id, "+14155550123")
    other = await tenant(db, name="Other shop")
    theirs = await create_conversation(db, other.account_id, "+14155550123")
    for params in ({}, {"status": "open"}, {"contact_id": str(mine.contact_id)}, {"limit": 100}):
        listed = await _list(client, other, **params)
        assert str(mine.id) not in str(listed) and str(mine.contact_id) not in str(listed)
    assert [c["id"] for c in await _list(client, other)] == [str(theirs.id)]
    for url in (f"{CONVERSATIONS}/{mine.id}", f"{CONVERSATIONS}/{mine.id}/messages"):
        error_of(await client.get(url, headers=other.headers), 404, "not_found")


async def test_unknown_and_malformed_ids(client, acme):
    error_of(
        await client.get(f"{CONVERSATIONS}/{uuid.uuid4()}", headers=acme.headers), 404, "not_found"
    )
    response = await client.get(f"{CONVERSATIONS}/not-a-uuid", headers=acme.headers)
    assert response.status_code in (400, 404) and "error" in response.json()


async def test_conversations_need_conversations_read(client, db):
    conversation = await create_conversation(db, (await tenant(db)).account_id, "+14155550123")
    reader = await tenant(db, "contacts:read", "messages:read")
    for url in (CONVERSATIONS, f"{CONVERSATIONS}/{conversation.id}"):
        error = error_of(await client.get(url, headers=reader.headers), 403, "forbidden")
        assert "conversations:read" in error["message"]


async def test_walking_lists_every_conversation_once(client, db, acme):
    for n in range(5):
        await create_conversation(
            db, acme.account_id, f"+1415555020{n}", created_at=TIE - timedelta(minutes=n)
        )
    items = await walk(client, CONVERSATIONS, acme, limit=2)
    assert [c["contact"]["phone"] for c in items] == [f"+1415555020{n}" for n in range(5)]
