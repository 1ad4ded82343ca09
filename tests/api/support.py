"""An account with one of everything, for the route-table tests and the API fuzz."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.helpers import TestKey, create_account, create_key
from wacrm.channels.service import add_sandbox_channel
from wacrm.conversations.threads import open_thread
from wacrm.messages.sending import message_row
from wacrm.settings import Settings

B_PHONE = "+14155550177"
SECRET_TEXT = "secret of B"


async def populated_account(
    client: httpx.AsyncClient, db: AsyncSession, settings: Settings
) -> tuple[dict[str, str], TestKey]:
    """Account B with one of everything, made through the services and the API (``client``);
    returns its ids by path parameter name, and its all-scopes key. Webhooks must be
    allowed private targets (``webhooks_allow_private_targets``)."""
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
        content={"body": SECRET_TEXT},
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
        "channel_id": str(channel.id),
    }
    return ids, key
