"""Applying parsed ``messages`` changes: contacts, conversations, messages, statuses, and
the domain events they cause, all in the caller's transaction.

Set-based: the changes for one business number (from one payload or several) are applied
together. Whatever the number of messages, their senders' contacts are looked up with one
query and the missing ones created with one INSERT, likewise their conversations; the
messages go in with one INSERT, the unread counts with one UPDATE round trip, and the
events with one INSERT. Every insert is ``ON CONFLICT DO NOTHING`` on the row's unique
key, so concurrent batches and Meta's replays stay exactly-once.
"""

from __future__ import annotations

import functools
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.channels import repository as channels_repository
from wacrm.conversations import repository as conversations_repository
from wacrm.conversations import status_repository
from wacrm.conversations.repository import InboundArrival
from wacrm.conversations.status_repository import MessageRef
from wacrm.conversations.threads import open_threads
from wacrm.events.service import EventBatch, EventType
from wacrm.kit.clock import utcnow
from wacrm.kit.phone import InvalidPhone, from_wa_id
from wacrm.models import Channel, Direction, MessageStatus
from wacrm.whatsapp import inbox_repository
from wacrm.whatsapp.parsing import InboundMessage, MessagesChange, StatusReport

logger = logging.getLogger(__name__)

# The statuses Meta reports that move a message; others ("deleted", "warning") are history.
_APPLIED_STATUSES = frozenset(
    {MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ, MessageStatus.FAILED}
)
_TICK = timedelta(microseconds=1)


async def apply_changes(session: AsyncSession, changes: list[MessagesChange]) -> list[list[str]]:
    """Apply every message and status of ``changes`` (in arrival order); returns each
    change's notes on what was skipped."""
    problems: list[list[str]] = [[] for _ in changes]
    by_number: dict[str, list[int]] = {}
    for n, change in enumerate(changes):
        by_number.setdefault(change.phone_number_id, []).append(n)
    for phone_number_id, numbers in by_number.items():
        channel = await channels_repository.by_phone_number_id(session, phone_number_id)
        if channel is None:
            logger.warning("webhook change for unknown phone_number_id %s ignored", phone_number_id)
            for n in numbers:
                problems[n].append(f"unknown phone_number_id {phone_number_id}")
            continue
        events = EventBatch(channel.account_id)
        messages = [(n, message) for n in numbers for message in changes[n].messages]
        for n, note in await _receive_messages(session, channel, messages, events):
            problems[n].append(note)
        statuses = [report for n in numbers for report in changes[n].statuses]
        await _apply_statuses(session, channel, statuses, events)
        await events.record(session)
    return problems


@functools.lru_cache(maxsize=65536)  # parsing a number costs ~0.1 ms; customers write again
def _sender_phone(wa_id: str) -> str | None:
    try:
        return from_wa_id(wa_id)
    except InvalidPhone:
        pass
    # Meta's wa_id is already E.164 without its "+": a range newer than phonenumbers' data
    # is still a real customer, and the API can't create that number, so no duplicate.
    digits = wa_id.strip()
    if digits.isascii() and digits.isdigit() and 8 <= len(digits) <= 15 and digits[0] != "0":
        return "+" + digits
    return None


async def _receive_messages(
    session: AsyncSession,
    channel: Channel,
    messages: list[tuple[int, InboundMessage]],
    events: EventBatch,
) -> list[tuple[int, str]]:
    """Store the messages (each with the number of the change it came in); returns notes
    on those skipped, with their change's number."""
    problems: list[tuple[int, str]] = []
    profile_names: dict[str, str | None] = {}  # sender's E.164 → their latest profile name
    arriving: list[tuple[InboundMessage, str]] = []
    wamids: set[str] = set()
    for n, message in messages:
        phone = _sender_phone(message.sender_wa_id)
        if phone is None:
            problems.append((n, f"message {message.wamid}: sender is not a phone number"))
            continue
        if phone not in profile_names or message.profile_name:
            profile_names[phone] = message.profile_name
        if message.wamid not in wamids:  # repeated within the batch: one message, one event
            wamids.add(message.wamid)
            arriving.append((message, phone))
    if not arriving:
        return problems

    account_id = channel.account_id
    threads = await open_threads(
        session,
        account_id,
        profile_names,
        channel_id=channel.id,
        source="whatsapp",
        events=events,
    )
    now = utcnow()
    stored = await conversations_repository.insert_messages(
        session,
        account_id,
        [
            {
                "conversation_id": threads[phone].conversation_id,
                "contact_id": threads[phone].contact_id,
                "channel_id": channel.id,
                "direction": Direction.INBOUND.value,
                "type": message.type,
                "content": message.content,
                "wamid": message.wamid,
                "reply_to_wamid": message.reply_to_wamid,
                "status": MessageStatus.RECEIVED.value,
                "sent_at": message.sent_at,  # inbound: when the customer sent it
                # Inserted in wamid order (see insert_messages); this keeps the batch's order.
                "created_at": now + n * _TICK,
            }
            for n, (message, phone) in enumerate(arriving)
        ],
    )
    arrivals: dict[uuid.UUID, tuple[int, datetime]] = {}
    for message, phone in arriving:
        message_id = stored.get(message.wamid)
        if message_id is None:
            continue  # Meta's retry or a concurrent duplicate: stored once already
        thread = threads[phone]
        count, latest = arrivals.get(thread.conversation_id, (0, message.sent_at))
        arrivals[thread.conversation_id] = (count + 1, max(latest, message.sent_at))
        data: dict[str, Any] = {
            "message_id": str(message_id),
            "conversation_id": str(thread.conversation_id),
            "contact_id": str(thread.contact_id),
            "contact_phone": phone,
            "channel_id": str(channel.id),
            "type": message.type,
            "content": message.content,
            "wamid": message.wamid,
            "reply_to_wamid": message.reply_to_wamid,
            "timestamp": message.sent_at.isoformat(),
        }
        events.add(EventType.MESSAGE_RECEIVED, data)
    await conversations_repository.record_inbound_many(
        session,
        account_id,
        [InboundArrival(id_, count, latest) for id_, (count, latest) in arrivals.items()],
        channel_id=channel.id,
    )
    return problems


async def _apply_statuses(
    session: AsyncSession, channel: Channel, reports: list[StatusReport], events: EventBatch
) -> None:
    if not reports:
        return
    account_id = channel.account_id
    known = await status_repository.messages_by_wamids(
        session, account_id, {report.wamid for report in reports}
    )
    applicable: list[tuple[StatusReport, MessageRef]] = []
    early: list[StatusReport] = []
    for report in reports:
        message = known.get(report.wamid)
        if message is None:
            early.append(report)  # its send may not have committed the wamid yet
        elif message.direction != Direction.OUTBOUND.value:
            logger.info("status %s for inbound message %s ignored", report.status, report.wamid)
        else:
            applicable.append((report, message))
    await inbox_repository.keep_early_statuses(session, account_id, early)
    await apply_statuses(session, account_id, applicable, events)


async def apply_statuses(
    session: AsyncSession,
    account_id: uuid.UUID,
    applicable: list[tuple[StatusReport, MessageRef]],
    events: EventBatch,
) -> None:
    """Keep each report in its message's history and move the message on, monotonically."""
    await status_repository.append_status_histories(
        session,
        account_id,
        [
            {
                "message_id": message.id,
                "status": report.status,
                "occurred_at": report.occurred_at,
                "raw": report.raw,
            }
            for report, message in applicable
        ],
    )
    # One at a time, in the batch's order: each report moves the message from where the
    # previous one left it (sent, delivered, read in one batch are three changes).
    for report, message in applicable:
        status = _applied_status(report.status)
        if status is None:
            continue
        error = report.error if status is MessageStatus.FAILED else None
        changed = await status_repository.advance_status(
            session, account_id, message.id, status, at=report.occurred_at, error=error
        )
        if changed:
            events.add(
                EventType.MESSAGE_STATUS_UPDATED,
                _status_data(message.id, message.conversation_id, report, status, error),
            )


def _applied_status(value: str) -> MessageStatus | None:
    try:
        status = MessageStatus(value)
    except ValueError:
        return None
    return status if status in _APPLIED_STATUSES else None


def _status_data(
    message_id: uuid.UUID,
    conversation_id: uuid.UUID,
    report: StatusReport,
    status: MessageStatus,
    error: dict[str, object] | None,
) -> dict[str, object]:
    return {
        "message_id": str(message_id),
        "conversation_id": str(conversation_id),
        "wamid": report.wamid,
        "status": status.value,
        "timestamp": report.occurred_at.isoformat(),
        "error": error,
    }
