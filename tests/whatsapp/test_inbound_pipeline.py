"""Posts that arrive together are handled together: verified, stored and processed in one
transaction before their 200, set-based across payloads; duplicates across payloads still
store one message, and a payload that fails is isolated from those it came with.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.helpers import create_account
from tests.whatsapp.inbound_support import (
    WEBHOOK,
    count,
    create_meta_channel,
    envelope,
    inbound_text,
    mount_webhook,
    one,
    rows,
    sign,
    text_message,
)
from wacrm.kit.clock import utcnow
from wacrm.kit.db import new_id
from wacrm.models import Contact, Conversation, Event, InboundPayload, InboxState, Message
from wacrm.whatsapp import inbound, inbox_repository
from wacrm.whatsapp.tasks import process_due_payloads


@pytest.fixture
def app(app):
    return mount_webhook(app)


@pytest.fixture
async def channel(db, settings):
    account = await create_account(db)
    return await create_meta_channel(db, settings, account.id)


def _raw(body: dict) -> bytes:
    return json.dumps(body).encode()


def _signed(*bodies: bytes) -> list[tuple[bytes, str | None]]:
    return [(body, sign(body)["X-Hub-Signature-256"]) for body in bodies]


async def _received(db) -> list[str]:
    events = await rows(db, Event, Event.type == "message.received")
    return sorted(event.data["wamid"] for event in events)


async def test_posts_arriving_together_are_processed_together_before_their_200(
    client, db, channel, monkeypatch
):
    groups: list[int] = []
    real = inbound.receive_webhooks

    async def spy(database, settings, posts):
        groups.append(len(posts))
        return await real(database, settings, posts)

    monkeypatch.setattr(inbound, "receive_webhooks", spy)
    bodies = [_raw(inbound_text(f"wamid.LOAD{n}", sender=f"1415555016{n % 3}")) for n in range(8)]
    bodies.append(bodies[0])  # Meta's retry, racing the first delivery
    forged = _raw(inbound_text("wamid.FORGED"))
    posts = [client.post(WEBHOOK, content=body, headers=sign(body)) for body in bodies]
    posts.append(client.post(WEBHOOK, content=forged, headers=sign(forged, "not-the-secret")))
    responses = await asyncio.gather(*posts)

    assert [r.status_code for r in responses] == [200] * 9 + [401]
    assert sum(groups) == 10 and len(groups) < 10  # grouped, not one transaction each
    payloads = {str(p.id): p for p in await rows(db, InboundPayload)}
    assert {r.json()["data"]["payload_id"] for r in responses[:9]} == set(payloads)
    assert sorted(p.body for p in payloads.values()) == sorted(bodies)  # no forgery kept
    assert {p.state for p in payloads.values()} == {InboxState.DONE}
    assert await _received(db) == [f"wamid.LOAD{n}" for n in range(8)]
    assert await count(db, Message) == 8
    assert await count(db, Contact) == 3
    assert sorted(c.unread_count for c in await rows(db, Conversation)) == [2, 3, 3]
    assert len(await rows(db, Event, Event.type == "contact.created")) == 3
    assert len(await rows(db, Event, Event.type == "conversation.created")) == 3


async def test_payloads_processed_together_store_each_message_once(db, app, settings, channel):
    first = envelope(
        {
            "contacts": [{"profile": {"name": "Ava"}, "wa_id": "14155550123"}],
            "messages": [text_message("wamid.TOG1", timestamp=1750000100)],
        }
    )
    second = envelope(
        {
            "messages": [
                text_message("wamid.TOG1", timestamp=1750000100),  # a duplicate of the first
                text_message("wamid.TOG2", timestamp=1750000200),
                text_message("wamid.TOG3", sender="not-a-number"),
            ]
        },
        {"phone_number_id": "5550009999", "messages": [text_message("wamid.ELSEWHERE")]},
    )
    posts = _signed(_raw(first), _raw(second))
    payload_ids = await inbound.receive_webhooks(app.state.database, settings, posts)

    assert await _received(db) == ["wamid.TOG1", "wamid.TOG2"]
    assert (await one(db, Conversation)).unread_count == 2
    assert (await one(db, Contact)).profile_name == "Ava"
    payloads = {p.id: p for p in await rows(db, InboundPayload)}
    done_first, done_second = (payloads[payload_id] for payload_id in payload_ids)
    assert (done_first.state, done_first.last_error, done_first.attempts) == ("done", None, 1)
    assert done_second.state == InboxState.DONE
    assert "wamid.TOG3: sender is not a phone number" in done_second.last_error
    assert "unknown phone_number_id 5550009999" in done_second.last_error


async def test_a_failing_payload_is_isolated_from_those_it_came_with(
    db, app, settings, channel, monkeypatch
):
    real = inbound.apply_changes

    async def poisoned(session, changes):
        if any(m.wamid == "wamid.POISON" for change in changes for m in change.messages):
            raise RuntimeError("cannot apply")
        return await real(session, changes)

    monkeypatch.setattr(inbound, "apply_changes", poisoned)
    bodies = [_raw(inbound_text(wamid)) for wamid in ("wamid.OK1", "wamid.POISON", "wamid.OK2")]
    payload_ids = await inbound.receive_webhooks(app.state.database, settings, _signed(*bodies))

    assert None not in payload_ids
    assert await _received(db) == ["wamid.OK1", "wamid.OK2"]
    stored = {p.body: p for p in await rows(db, InboundPayload)}
    assert stored[bodies[0]].state == stored[bodies[2]].state == InboxState.DONE
    left = stored[bodies[1]]
    assert (left.state, left.attempts) == (InboxState.PENDING, 1)
    assert "RuntimeError: cannot apply" in left.last_error
    assert left.next_attempt_at > utcnow()


async def test_a_forged_post_in_a_group_stores_nothing_for_it(db, app, settings, channel):
    good, forged = _raw(inbound_text("wamid.G1")), _raw(inbound_text("wamid.F1"))
    posts = [*_signed(good), (forged, "sha256=" + "0" * 64)]
    payload_ids = await inbound.receive_webhooks(app.state.database, settings, posts)
    assert payload_ids[0] is not None and payload_ids[1] is None
    assert [p.body for p in await rows(db, InboundPayload)] == [good]
    assert await _received(db) == ["wamid.G1"]


async def test_a_post_signed_for_another_number_is_refused_alone(db, app, settings, channel):
    other = await create_account(db, "Other shop")
    await create_meta_channel(
        db, settings, other.id, phone_number_id="1234567891", app_secret="other-app-secret"
    )
    good = _raw(inbound_text("wamid.MINE1"))
    hijack = _raw(inbound_text("wamid.HIJACK1"))  # names our number, signed by the other
    theirs = _raw(inbound_text("wamid.THEIRS1", phone_number_id="1234567891"))
    posts = [
        *_signed(good),
        (hijack, sign(hijack, "other-app-secret")["X-Hub-Signature-256"]),
        (theirs, sign(theirs, "other-app-secret")["X-Hub-Signature-256"]),
    ]
    payload_ids = await inbound.receive_webhooks(app.state.database, settings, posts)
    assert [payload_id is not None for payload_id in payload_ids] == [True, False, True]
    assert await _received(db) == ["wamid.MINE1", "wamid.THEIRS1"]
    assert sorted(p.body for p in await rows(db, InboundPayload)) == sorted([good, theirs])


async def test_the_worker_processes_a_backlog_left_by_a_crash(db, app, settings, channel):
    # Stored to be processed one by one, then the process died.
    bodies = [_raw(inbound_text(f"wamid.BACKLOG{n}", sender=f"141555501{n}0")) for n in range(3)]
    async with app.state.database.sessions() as session:
        await inbox_repository.store_pending_payloads(
            session, [(new_id(), body) for body in bodies], not_before=utcnow()
        )
        await session.commit()

    assert await process_due_payloads(app.state.database, settings) == 3
    assert await _received(db) == ["wamid.BACKLOG0", "wamid.BACKLOG1", "wamid.BACKLOG2"]
    assert {(p.state, p.attempts) for p in await rows(db, InboundPayload)} == {("done", 1)}
    assert await process_due_payloads(app.state.database, settings) == 0
