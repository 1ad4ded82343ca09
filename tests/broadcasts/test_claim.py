"""Claiming recipients takes at most the batch asked for (found by bench/broadcasts.py: on
PostgreSQL one claim of 50 took all 500 recipients, so one worker held a whole broadcast,
sent it at once and exhausted its connection pools)."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, text

from tests.broadcasts.support import broadcast_body, phones
from tests.helpers import create_account, create_key
from wacrm.broadcasts import queue_repository as queue
from wacrm.channels.service import add_sandbox_channel
from wacrm.kit.clock import utcnow
from wacrm.models import BroadcastRecipient, RecipientStatus


async def test_a_claim_takes_the_batch_and_no_more_whatever_the_plan(client, db, settings):
    account = await create_account(db)
    key = await create_key(db, account.id, scopes=["broadcasts:send"])
    await add_sandbox_channel(db, settings, account_id=account.id)
    await db.commit()
    response = await client.post(
        "/api/v1/broadcasts", json=broadcast_body(phones(120)), headers=key.headers
    )
    assert response.status_code == 202, response.text
    broadcast_id = uuid.UUID(response.json()["data"]["broadcast_id"])

    taken: list[str] = []
    for expected in (50, 50, 20, 0):
        if db.get_bind().dialect.name == "postgresql":
            # The plan that rescans the locking subquery once per row it updates.
            await db.execute(text("SET LOCAL enable_hashjoin = off"))
            await db.execute(text("SET LOCAL enable_mergejoin = off"))
        claimed = await queue.claim_recipients(db, broadcast_id, 50, utcnow())
        await db.commit()
        assert len(claimed) == expected
        taken += [phone for _, phone, _ in claimed]
    assert sorted(taken) == sorted(phones(120))  # each once
    sending = await db.scalar(
        select(func.count())
        .select_from(BroadcastRecipient)
        .where(BroadcastRecipient.status == RecipientStatus.SENDING.value)
    )
    assert sending == 120
