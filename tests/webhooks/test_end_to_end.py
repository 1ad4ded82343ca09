"""``wacrm serve`` in-process: a customer writes in through the sandbox, and a loopback receiver
gets the three events it caused, signed, from the in-process worker."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.helpers import create_account, create_key
from tests.messages.test_end_to_end import running_app
from tests.webhooks.receivers import Answer, Receiver, failing_first
from tests.webhooks.support import verify_both
from wacrm.channels.service import add_sandbox_channel

EVENTS = ["conversation.created", "contact.created", "message.received"]


async def _wait_for(receiver: Receiver, count: int, seconds: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while len(receiver.received) < count:
        assert asyncio.get_running_loop().time() < deadline, receiver.received
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_sandbox_inbound_reaches_a_receiver_signed(settings, db, app):
    account = await create_account(db)
    key = await create_key(db, account.id)
    channel = await add_sandbox_channel(db, settings, account_id=account.id)
    await db.commit()
    # Every event fails twice: the worker's retries carry each through on the third attempt.
    script = failing_first(Answer(500), Answer(502))

    async with (
        Receiver(script) as receiver,
        running_app(settings) as (base, _),
        httpx.AsyncClient(base_url=base) as http,
    ):
        created = await http.post(
            "/api/v1/webhooks",
            headers=key.headers,
            json={"url": receiver.url, "events": EVENTS, "description": "CRM sync"},
        )
        assert created.status_code == 201, created.text
        secret = created.json()["data"]["secret"]
        webhook_id = created.json()["data"]["webhook"]["id"]
        inbound = await http.post(
            "/sandbox/inbound",
            headers={"Authorization": f"Bearer {settings.sandbox_access_token}"},
            json={
                "phone_number_id": channel.phone_number_id,
                "from": "+14155550123",
                "text": "Hi, is my order ready?",
                "name": "Ana",
            },
        )
        assert inbound.status_code == 200, inbound.text
        await _wait_for(receiver, 9)
        for _ in range(100):  # the last outcomes are being recorded
            log = await http.get(f"/api/v1/webhooks/{webhook_id}/deliveries", headers=key.headers)
            if {d["status"] for d in log.json()["data"]} == {"succeeded"}:
                break
            await asyncio.sleep(0.05)

    payloads = [verify_both(secret, request) for request in receiver.received]
    assert sorted({p["event"] for p in payloads}) == sorted(EVENTS)
    by_event = {p["event"]: p for p in payloads}
    message = by_event["message.received"]["data"]
    assert message["content"] == {"body": "Hi, is my order ready?"}
    assert message["contact_phone"] == "+14155550123"
    assert by_event["contact.created"]["account_id"] == str(account.id)

    ids = receiver.event_ids()
    assert len(set(ids)) == 3 and all(ids.count(i) == 3 for i in ids)  # same id on each try
    assert len(log.json()["data"]) == 3
    for delivery in log.json()["data"]:
        assert delivery["status"] == "succeeded"
        assert [a["status_code"] for a in delivery["attempts"]] == [500, 502, 200]
