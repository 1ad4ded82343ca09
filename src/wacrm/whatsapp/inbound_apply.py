"""Applying one parsed ``messages`` change: contacts, conversations, messages, statuses, and
the domain events they cause, all in the caller's transaction.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.channels import repository as channels_repository
from wacrm.conversations import repository as conversations_repository
from wacrm.conversations.threads import open_thread
from wacrm.events.service import EventType, record_event
from wacrm.kit.phone import InvalidPhone, from_wa_id
from wacrm.models import Channel, Direction, MessageStatus
from wacrm.whatsapp.parsing import InboundMessage, MessagesChange, StatusReport

logger = logging.getLogger(__name__)

# The statuses Meta reports that move a message; others ("deleted", "warning") are history.
_APPLIED_STATUSES = frozenset(
    {MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ, MessageStatus.FAILED}
)


async def apply_change(session: AsyncSession, change: MessagesChange) -> list[str]:
    """Apply every message and status of the change; returns notes on what was skipped."""
    channel = await channels_repository.by_phone_number_id(session, change.phone_number_id)
    if channel is None:
        logger.warning(
            "webhook change for unknown phone_number_id %s ignored", change.phone_number_id
        )
        return [f"unknown phone_number_id {change.phone_number_id}"]
    problems: list[str] = []
    for message in change.messages:
        problem = await _receive_message(session, channel, message)
        if problem:
            problems.append(problem)
    for report in change.statuses:
        await _apply_status(session, channel, report)
    return problems


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


async def _receive_message(
    session: AsyncSession, channel: Channel, message: InboundMessage
) -> str | None:
    phone = _sender_phone(message.sender_wa_id)
    if phone is None:
        return f"message {message.wamid}: sender is not a phone number"
    account_id = channel.account_id
    thread = await open_thread(
        session,
        account_id,
        phone,
        channel_id=channel.id,
        source="whatsapp",
        profile_name=message.profile_name,
    )
    contact, conversation = thread.contact, thread.conversation

    message_id = await conversations_repository.insert_message(
        session,
        account_id,
        {
            "conversation_id": conversation.id,
            "contact_id": contact.id,
            "channel_id": channel.id,
            "direction": Direction.INBOUND.value,
            "type": message.type,
            "content": message.content,
            "wamid": message.wamid,
            "reply_to_wamid": message.reply_to_wamid,
            "status": MessageStatus.RECEIVED.value,
            "sent_at": message.sent_at,  # inbound: when the customer sent it
        },
    )
    if message_id is None:
        return None  # Meta's retry or a concurrent duplicate: stored once already
    await conversations_repository.record_inbound(
        session, account_id, conversation.id, channel_id=channel.id, at=message.sent_at
    )
    data: dict[str, Any] = {
        "message_id": str(message_id),
        "conversation_id": str(conversation.id),
        "contact_id": str(contact.id),
        "contact_phone": contact.phone,
        "channel_id": str(channel.id),
        "type": message.type,
        "content": message.content,
        "wamid": message.wamid,
        "reply_to_wamid": message.reply_to_wamid,
        "timestamp": message.sent_at.isoformat(),
    }
    await record_event(session, account_id, EventType.MESSAGE_RECEIVED, data)
    return None


async def _apply_status(session: AsyncSession, channel: Channel, report: StatusReport) -> None:
    message = await conversations_repository.message_by_wamid(session, report.wamid)
    if (
        message is None
        or message.account_id != channel.account_id
        or message.direction != Direction.OUTBOUND.value
    ):
        logger.info("status %s for unknown message %s ignored", report.status, report.wamid)
        return
    await conversations_repository.append_status_history(
        session,
        message.account_id,
        message.id,
        status=report.status,
        occurred_at=report.occurred_at,
        raw=report.raw,
    )
    status = _applied_status(report.status)
    if status is None:
        return
    error = report.error if status is MessageStatus.FAILED else None
    changed = await conversations_repository.advance_status(
        session, message.account_id, message.id, status, at=report.occurred_at, error=error
    )
    if changed:
        await record_event(
            session,
            message.account_id,
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
