"""Tenant isolation, generated from the route table: account A's key never reaches B's rows.

Every /api/v1 route with ids in its path gets B's real ids from a key of A with every
scope → 404 (never 403, never B's data); A's lists and searches never show B's rows; B's
cursors are refused for A.
"""

from __future__ import annotations

import re

import pytest

from tests.api.test_scope_matrix import ROUTES
from tests.helpers import create_account, create_key
from wacrm.channels.service import add_sandbox_channel
from wacrm.conversations.threads import open_thread
from wacrm.messages.sending import message_row
from wacrm.settings import Settings

B_PHONE = "+14155550177"
BODIES = {
    ("PATCH", "/api/v1/contacts/{contact_id}"): {"name": "stolen"},
    ("POST", "/api/v1/contacts/{contact_id}/tags"): {"add": ["stolen"]},
    ("PATCH", "/api/v1/webhooks/{webhook_id}"): {"description": "stolen"},
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhooks_allow_private_targets": True})


async def _foreign_world(client, db, settings) -> tuple[dict[str, str], object]:
    """Account B with one of everything; returns its ids by path parameter name."""
    account = await create_account(db, "Bravo")
    key = await create_key(db, account.id)
    channel = await add_sandbox_channel(db, settings, account_id=account.id)
    thread = await open_thread(db, account.id, B_PHONE, channel_id=channel.id, source="test")
    message = message_row(
        account_id=account.id,
        conversation_id=thread.conversation.id,
        contact_id=thread.contact.id,
        channel_id=channel.id,
        message_type="text",
        content={"body": "secret of B"},
        reply_to_wamid=None,
    )
    db.add(message)
    await db.commit()
    second = await client.post(
        "/api/v1/contacts", json={"phone": "+14155550178"}, headers=key.headers
    )
    assert second.status_code == 201, second.text
    broadcast = await client.post(
        "/api/v1/broadcasts",
        headers=key.headers,
        json={
            "name": "B's campaign",
            "template_name": "hello_world",
            "template_language": "en_US",
            "recipients": [{"to": B_PHONE}],
        },
    )
    assert broadcast.status_code == 202, broadcast.text
    webhook = await client.post(
        "/api/v1/webhooks",
        headers=key.headers,
        json={"url": "http://127.0.0.1:9/b-hook", "events": ["message.received"]},
    )
    assert webhook.status_code == 201, webhook.text
    webhook_id = webhook.json()["data"]["webhook"]["id"]
    assert (
        await client.post(f"/api/v1/webhooks/{webhook_id}/test", headers=key.headers, json={})
    ).status_code in (200, 201, 202)
    deliveries = await client.get(f"/api/v1/webhooks/{webhook_id}/deliveries", headers=key.headers)
    delivery_id = deliveries.json()["data"][0]["id"]
    ids = {
        "contact_id": str(thread.contact.id),
        "conversation_id": str(thread.conversation.id),
        "message_id": str(message.id),
        "broadcast_id": broadcast.json()["data"]["broadcast_id"],
        "webhook_id": webhook_id,
        "delivery_id": delivery_id,
    }
    return ids, key


WITH_IDS = [(m, p) for m, p, _ in ROUTES if "{" in p]


async def test_every_route_answers_404_for_another_accounts_ids(client, db, settings):
    foreign, _ = await _foreign_world(client, db, settings)
    account = await create_account(db, "Alpha")
    key = await create_key(db, account.id)
    assert WITH_IDS, "no routes with ids found"
    for method, path in WITH_IDS:
        url = re.sub(r"\{(\w+)\}", lambda m: foreign[m.group(1)], path)
        response = await client.request(
            method, url, headers=key.headers, json=BODIES.get((method, path), {})
        )
        assert response.status_code == 404, (method, path, response.status_code, response.text)
        assert response.json()["error"]["code"] == "not_found"
        assert "secret of B" not in response.text


async def test_lists_and_searches_never_show_another_account(client, db, settings):
    foreign, _ = await _foreign_world(client, db, settings)
    account = await create_account(db, "Alpha")
    key = await create_key(db, account.id)
    lists = [p for m, p, _ in ROUTES if m == "GET" and "{" not in p and p != "/api/v1/me"]
    assert len(lists) >= 5
    for path in lists:
        response = await client.get(path, headers=key.headers)
        assert response.status_code == 200, (path, response.text)
        assert response.json()["data"] == [], (path, response.text)
        for value in foreign.values():
            assert value not in response.text
    found = await client.get(
        "/api/v1/contacts", params={"search": B_PHONE[-7:]}, headers=key.headers
    )
    assert found.json()["data"] == []


async def test_another_accounts_cursor_is_400(client, db, settings):
    _, b_key = await _foreign_world(client, db, settings)
    page = await client.get("/api/v1/contacts", params={"limit": 1}, headers=b_key.headers)
    cursor = page.json()["meta"]["next_cursor"]
    assert cursor
    account = await create_account(db, "Alpha")
    key = await create_key(db, account.id)
    response = await client.get(
        "/api/v1/contacts", params={"limit": 1, "cursor": cursor}, headers=key.headers
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
