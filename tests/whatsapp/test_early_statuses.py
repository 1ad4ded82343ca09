"""Statuses that arrive before their message's wamid is committed (Meta can answer the
send and report ``sent`` faster than the sender commits): kept, then applied once the
message exists, exactly once, and only within the account whose number reported them.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.helpers import create_account
from tests.whatsapp.inbound_support import (
    count,
    create_meta_channel,
    create_outbound_message,
    envelope,
    mount_webhook,
    one,
    post_signed,
    rows,
    status_report,
)
from wacrm.kit.clock import utcnow
from wacrm.models import EarlyStatus, Event, Message, MessageStatus, MessageStatusUpdate
from wacrm.whatsapp.tasks import EARLY_STATUS_TTL, apply_early_statuses

WAMID = "wamid.HBgLMTQxNTU1NTAxNDAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcB"


@pytest.fixture
def app(app):
    return mount_webhook(app)


@pytest.fixture
async def account(db):
    return await create_account(db)


@pytest.fixture
async def channel(db, settings, account):
    return await create_meta_channel(db, settings, account.id)


async def _report(client, *reports) -> None:
    response = await post_signed(client, envelope({"statuses": list(reports)}))
    assert response.status_code == 200


async def test_a_status_before_its_message_is_applied_once_the_message_exists(
    client, db, app, account, channel
):
    await _report(
        client,
        status_report(WAMID, "sent", 1750002000),
        status_report(WAMID, "delivered", 1750002010),
    )
    assert await count(db, EarlyStatus) == 2
    assert await count(db, MessageStatusUpdate) == 0

    account_id = account.id
    await create_outbound_message(db, account_id, WAMID, status=MessageStatus.PENDING)
    assert await apply_early_statuses(app.state.database) == 2

    db.expire_all()
    message = await one(db, Message, Message.wamid == WAMID)
    assert message.status == "delivered"
    history = await rows(db, MessageStatusUpdate, MessageStatusUpdate.message_id == message.id)
    assert sorted(entry.status for entry in history) == ["delivered", "sent"]
    events = await rows(db, Event, Event.type == "message.status_updated")
    assert sorted(event.data["status"] for event in events) == ["delivered", "sent"]
    assert all(event.account_id == account_id for event in events)
    assert await count(db, EarlyStatus) == 0
    # Applied once: another pass finds nothing.
    assert await apply_early_statuses(app.state.database) == 0
    assert await count(db, MessageStatusUpdate) == 2


async def test_an_early_status_never_moves_a_message_backwards(client, db, app, account, channel):
    await _report(client, status_report(WAMID, "delivered", 1750002010))
    await create_outbound_message(db, account.id, WAMID, status=MessageStatus.READ)
    assert await apply_early_statuses(app.state.database) == 1
    db.expire_all()
    assert (await one(db, Message, Message.wamid == WAMID)).status == "read"


async def test_an_early_status_never_reaches_another_accounts_message(
    client, db, app, settings, account, channel
):
    other = await create_account(db, "Other shop")
    await create_meta_channel(
        db, settings, other.id, phone_number_id="1234567891", app_secret="other-app-secret"
    )
    # Our number reports a wamid that then turns out to be the other account's message.
    await _report(client, status_report(WAMID, "read", 1750002020))
    await create_outbound_message(db, other.id, WAMID)
    assert await apply_early_statuses(app.state.database) == 0
    db.expire_all()
    message = await one(db, Message, Message.wamid == WAMID)
    assert (message.status, message.read_at) == ("sent", None)
    assert await count(db, MessageStatusUpdate) == 0
    assert await count(db, EarlyStatus) == 1  # waits, harmless, until it is too old


async def test_an_early_status_that_never_finds_its_message_is_forgotten(
    client, db, app, account, channel
):
    await _report(client, status_report(WAMID, "sent", 1750002000))
    [early] = await rows(db, EarlyStatus)
    early.received_at = utcnow() - EARLY_STATUS_TTL - timedelta(seconds=1)
    await db.commit()
    assert await apply_early_statuses(app.state.database) == 0
    assert await count(db, EarlyStatus) == 0


async def test_a_status_for_an_inbound_message_is_not_kept(client, db, account, channel):
    await post_signed(
        client,
        envelope(
            {
                "messages": [
                    {
                        "from": "14155550140",
                        "id": "wamid.CUSTOMER2",
                        "timestamp": "1750002000",
                        "type": "text",
                        "text": {"body": "hi"},
                    }
                ]
            }
        ),
    )
    await _report(client, status_report("wamid.CUSTOMER2", "read", 1750002020))
    assert await count(db, EarlyStatus) == 0
