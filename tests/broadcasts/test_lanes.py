"""Lanes of batches in one job run: a batch that cannot be prepared is claimed once per
run, whichever lane took it (MAX_CLAIMS counts runs, not lanes)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.broadcasts.support import broadcast_body, phones
from tests.helpers import create_account, create_key
from wacrm.broadcasts import tasks
from wacrm.channels.service import add_sandbox_channel
from wacrm.models import BroadcastRecipient
from wacrm.worker.jobs import worker_context


async def test_a_batch_failing_in_the_second_lane_is_not_claimed_again_in_the_same_run(
    settings, db, app, client, monkeypatch
):
    account = await create_account(db)
    key = await create_key(db, account.id, scopes=["broadcasts:send", "messages:read"])
    await add_sandbox_channel(db, settings, account_id=account.id)
    await db.commit()
    size = 5
    numbers = phones(2 * size)
    response = await client.post(
        "/api/v1/broadcasts", json=broadcast_body(numbers), headers=key.headers
    )
    assert response.status_code == 202
    bad = set(numbers[size:])  # the second batch: taken by the second lane
    real_open_threads = tasks.open_threads

    async def open_threads(session, account_id, phones_, **kwargs):
        if bad & set(phones_):
            raise RuntimeError("database hiccup")
        return await real_open_threads(session, account_id, phones_, **kwargs)

    monkeypatch.setattr(tasks, "open_threads", open_threads)
    context = worker_context(app)
    with pytest.raises(RuntimeError):
        await tasks.send_broadcast_batches(context, batch_size=size)
    db.expire_all()
    rows = (await db.execute(select(BroadcastRecipient))).scalars().all()
    second = {(r.status, r.attempts) for r in rows if r.phone in bad}
    assert second == {("pending", 1)}, second
    first = {r.status for r in rows if r.phone not in bad}
    assert first.isdisjoint({"pending", "sending"}), first
