"""All SQL about the delivery statuses of outbound messages: finding messages by wamid,
moving them forward monotonically, and keeping every report as history. Every query
starts from the account.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.kit.upsert import in_chunks
from wacrm.models import Direction, Message, MessageStatus, MessageStatusUpdate

# Statuses only move forward. ``failed`` sits between sent and delivered: a failure after
# ``sent`` counts, a late failure report for a delivered or read message does not.
STATUS_RANK = {
    MessageStatus.PENDING: 0,
    MessageStatus.RETRYING: 0,
    MessageStatus.UNKNOWN: 0,
    MessageStatus.SENT: 10,
    MessageStatus.FAILED: 15,
    MessageStatus.DELIVERED: 20,
    MessageStatus.READ: 30,
}
_TIME_OF_STATUS = {
    MessageStatus.SENT: Message.sent_at,
    MessageStatus.DELIVERED: Message.delivered_at,
    MessageStatus.READ: Message.read_at,
}


@dataclass(frozen=True)
class MessageRef:
    """Just enough about a message to apply a status to it."""

    id: uuid.UUID
    account_id: uuid.UUID
    conversation_id: uuid.UUID
    direction: str
    wamid: str


# Runs for every status batch: built once (building a statement costs more than running it).
_BY_WAMIDS = select(
    Message.id, Message.account_id, Message.conversation_id, Message.direction, Message.wamid
).where(
    Message.account_id == bindparam("account_id"),
    Message.wamid.in_(bindparam("wamids", expanding=True)),
)


async def advance_status(
    session: AsyncSession,
    account_id: uuid.UUID,
    message_id: uuid.UUID,
    status: MessageStatus,
    *,
    at: datetime,
    error: dict[str, Any] | None = None,
) -> bool:
    """Apply a delivery status to an outbound message, monotonically, in one statement
    (concurrent reports for one message can't interleave). True when the status changed.

    The status's time is kept even when the status itself is stale (a ``delivered`` after
    ``read``), and the earliest report of each wins.
    """
    changes: dict[str, Any] = {"status": status.value}
    if status is MessageStatus.FAILED:
        changes.update(failed_at=at, error=error)
    elif STATUS_RANK[status] > STATUS_RANK[MessageStatus.FAILED]:
        # Delivered after all: a failure reported earlier no longer describes the message.
        changes.update(failed_at=None, error=None)
    rank = case(
        {state.value: value for state, value in STATUS_RANK.items()},
        value=Message.status,
        else_=0,
    )
    moved = await session.execute(
        update(Message)
        .where(
            Message.account_id == account_id,
            Message.id == message_id,
            Message.direction == Direction.OUTBOUND.value,
            rank < STATUS_RANK[status],
        )
        .values(changes)
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    )
    changed = moved.first() is not None
    column = _TIME_OF_STATUS.get(status)
    if column is not None:
        await session.execute(
            update(Message)
            .where(
                Message.account_id == account_id,
                Message.id == message_id,
                or_(column.is_(None), column > at),
            )
            .values({column: at})
            .execution_options(synchronize_session=False)
        )
    return changed


async def messages_by_wamids(
    session: AsyncSession, account_id: uuid.UUID, wamids: Collection[str]
) -> dict[str, MessageRef]:
    """The account's messages with these wamids (a status batch's lookup), by wamid."""
    if not wamids:
        return {}
    found: dict[str, MessageRef] = {}
    for chunk in in_chunks(wamids):
        parameters = {"account_id": account_id, "wamids": chunk}
        for row in (await session.execute(_BY_WAMIDS, parameters)).all():
            found[row.wamid] = MessageRef(
                row.id, row.account_id, row.conversation_id, row.direction, row.wamid
            )
    return found


async def append_status_histories(
    session: AsyncSession, account_id: uuid.UUID, entries: list[dict[str, Any]]
) -> None:
    """Keep reports in their messages' histories (``message_id``, ``status``,
    ``occurred_at``, ``raw``), with one INSERT, in order."""
    session.add_all(MessageStatusUpdate(**entry, account_id=account_id) for entry in entries)
    await session.flush()
