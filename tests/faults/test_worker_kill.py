"""A real ``wacrm worker`` killed with SIGKILL mid-broadcast, then started again: no
recipient is sent twice, each ends ``sent`` or ``unknown``, and the broadcast completes.

The killed worker had a batch in flight: claimed (``sending``), its messages committed,
some already accepted by the sandbox but not yet recorded. Those may have reached Meta, so
they must never be sent again: once ``WACRM_SENDS_STALLED_AFTER_SECONDS`` have passed the
restarted worker settles them as ``unknown``.
"""

from __future__ import annotations

from collections import Counter

import httpx
import pytest
from sqlalchemy import select

from tests.broadcasts.support import completed_events, messages_per_phone, phones
from tests.faults.processes import cluster
from tests.faults.support import (
    FAST_SENDS,
    POSTGRES_ONLY,
    broadcast_state,
    create_tenant,
    launch_broadcast,
    recipient_statuses,
    sandbox_sends,
)
from wacrm.models import Contact, Message

pytestmark = [pytest.mark.slow, POSTGRES_ONLY]

RECIPIENTS = 400
KILL_AFTER_SENDS = 80


async def test_a_worker_killed_mid_broadcast_and_restarted_sends_no_recipient_twice(
    app, db, settings, tmp_path
):
    account_id, key = await create_tenant(db, settings, ["broadcasts:send"])
    numbers = phones(RECIPIENTS)
    environment = {**FAST_SENDS, "WACRM_SENDS_STALLED_AFTER_SECONDS": "10"}
    with cluster(settings, tmp_path, **environment) as running:
        api = running.serve()
        await running.wait_healthy(api)
        async with httpx.AsyncClient(timeout=30) as http:
            broadcast_id = await launch_broadcast(http, api.url, key, numbers)
            worker = running.worker("worker", api, concurrency=2)

            async def well_under_way() -> bool:
                return (await sandbox_sends(http, api.url, settings)).total() >= KILL_AFTER_SENDS

            await running.until(well_under_way, 180, f"{KILL_AFTER_SENDS} sends", poll=0.02)
            worker.kill()
            at_kill = await sandbox_sends(http, api.url, settings)
            assert at_kill.total() < RECIPIENTS, "killed mid-broadcast"
            worker.start()

            async def completed() -> dict | None:
                state = await broadcast_state(http, api.url, key, broadcast_id)
                return state if state["status"] == "completed" else None

            final = await running.until(completed, 240, "the broadcast to complete", poll=0.5)
            accepted = await sandbox_sends(http, api.url, settings)

    statuses = await recipient_statuses(db, broadcast_id)
    assert set(statuses) == set(numbers)
    assert set(statuses.values()) <= {"sent", "unknown"}, Counter(statuses.values())
    twice = {number: n for number, n in accepted.items() if n > 1}
    assert not twice, f"sent twice: {twice}"
    for number, status in statuses.items():
        if status == "sent":  # known sent: exactly once
            assert accepted[number] == 1, number
    unknown = [number for number, status in statuses.items() if status == "unknown"]
    counts = final["counts"]
    assert counts["sent"] + counts["unknown"] == RECIPIENTS, counts
    # At least those: a send of the restarted worker that outlived the (short) stall time
    # on a busy machine is unknown too, by its message, though its recipient says sent.
    assert counts["unknown"] >= len(unknown)
    # One message row per number at most (none where the kill came before the batch's
    # messages were committed), and one for every recipient known sent.
    per_phone = await messages_per_phone(app.state.database, account_id)
    assert set(per_phone.values()) == {1}
    assert {number for number, status in statuses.items() if status == "sent"} <= set(per_phone)
    # What happened to the batch the kill interrupted (printed, not asserted: it depends on
    # where in the batch the kill landed).
    message_statuses = Counter(
        (
            await db.execute(
                select(Message.status)
                .join(Contact, Contact.id == Message.contact_id)
                .where(Contact.phone.in_(unknown))
            )
        ).scalars()
    )
    print(
        f"killed after {at_kill.total()} accepted sends; {len(unknown)} recipients unknown "
        f"({sum(accepted[n] for n in unknown)} of them accepted by the sandbox); their "
        f"messages: {dict(message_statuses)}"
    )
    assert len(await completed_events(app.state.database, account_id)) == 1
