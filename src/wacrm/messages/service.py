"""Sending one message from the API, and reading one message back."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.channels.service import credentials, resolve_channel
from wacrm.contacts import repository as contacts_repository
from wacrm.conversations import repository as conversations_repository
from wacrm.conversations.threads import open_thread
from wacrm.kit.clock import utcnow
from wacrm.kit.errors import AppError, NotFound, field_error
from wacrm.kit.phone import phone_or_400
from wacrm.messages import repository
from wacrm.messages.content import OutboundContent
from wacrm.messages.sending import dispatch, message_row
from wacrm.models import Message, MessageStatus, MessageStatusUpdate
from wacrm.settings import Settings
from wacrm.whatsapp.client import CloudApiClient
from wacrm.whatsapp.templates import ApprovedTemplate

SERVICE_WINDOW = timedelta(hours=24)


class WhatsAppNotConfigured(AppError):
    status, code = 400, "whatsapp_not_configured"


class OutsideServiceWindow(AppError):
    status, code = 409, "outside_service_window"


class MetaRejected(AppError):
    status, code = 502, "meta_error"


NOT_CONFIGURED = "No WhatsApp number is connected to this account."


@dataclass(frozen=True)
class SentMessage:
    message: Message
    contact_created: bool


async def send_message(
    session: AsyncSession,
    settings: Settings,
    client: CloudApiClient,
    *,
    account_id: uuid.UUID,
    to: str,
    content: OutboundContent,
    channel_id: uuid.UUID | None,
    reply_to_message_id: uuid.UUID | None,
) -> SentMessage:
    """Check every rule before anything is written, store the message, commit, call Meta.

    This is the one place a request commits early: the row must be durable before Meta
    is called (SPEC §6), and its outcome must stay recorded even when we answer 502.
    """
    phone = phone_or_400(to, "to")
    existing = await contacts_repository.get_by_phone(session, account_id, phone)
    conversation = None
    if existing is not None:
        conversation = await conversations_repository.get_by_contact(
            session, account_id, existing.id
        )
    chosen = channel_id or (conversation.channel_id if conversation else None)
    channel = await resolve_channel(session, account_id, chosen)
    if channel is None:
        raise WhatsAppNotConfigured(NOT_CONFIGURED)
    if content.is_free_form:
        last_inbound = conversation.last_inbound_at if conversation else None
        if last_inbound is None or utcnow() - last_inbound > SERVICE_WINDOW:
            raise OutsideServiceWindow(
                "The customer has not written in the last 24 hours: only a template "
                "message can be sent now."
            )
    reply_to_wamid = None
    if reply_to_message_id is not None:
        quoted = await repository.get_message(session, account_id, reply_to_message_id)
        if quoted is None or conversation is None or quoted.conversation_id != conversation.id:
            raise field_error("reply_to_message_id", "no such message in this conversation")
        if quoted.wamid is None:
            raise field_error("reply_to_message_id", "that message has no WhatsApp id yet")
        reply_to_wamid = quoted.wamid
    payload = content.payload(phone, reply_to_wamid)  # a 400 here changes nothing

    thread = await open_thread(session, account_id, phone, channel_id=channel.id, source="api")
    message = message_row(
        account_id=account_id,
        conversation_id=thread.conversation.id,
        contact_id=thread.contact.id,
        channel_id=channel.id,
        message_type=content.type,
        content=content.as_json(),
        reply_to_wamid=reply_to_wamid,
    )
    session.add(message)
    await repository.touch_conversation(session, account_id, thread.conversation.id, utcnow())
    await session.commit()

    outcome = await dispatch(
        session, settings, client, message=message, channel=channel, payload=payload
    )
    await session.commit()
    if outcome.status is MessageStatus.FAILED and outcome.error is not None:
        error = outcome.error
        raise MetaRejected(
            f"WhatsApp refused the message: {error.message}",
            details=[
                {
                    "field": None,
                    "message": error.message,
                    "meta_code": error.code,
                    "meta_subcode": error.subcode,
                    "meta_title": error.title,
                    "message_id": str(message.id),
                }
            ],
        )
    await session.refresh(message)
    return SentMessage(message=message, contact_created=thread.contact_created)


async def read_message(
    session: AsyncSession, account_id: uuid.UUID, message_id: uuid.UUID
) -> tuple[Message, list[MessageStatusUpdate]]:
    message = await repository.get_message(session, account_id, message_id)
    if message is None:
        raise NotFound("Message")
    return message, await repository.status_history(session, account_id, message_id)


async def approved_templates(
    session: AsyncSession,
    settings: Settings,
    client: CloudApiClient,
    *,
    account_id: uuid.UUID,
    channel_id: uuid.UUID | None,
) -> list[ApprovedTemplate]:
    """The templates a number (the named one, else the default) can send outside the 24 h
    window, as Meta (or the sandbox) lists them. Raises ``MetaError`` when it cannot."""
    channel = await resolve_channel(session, account_id, channel_id)
    if channel is None:
        raise WhatsAppNotConfigured(NOT_CONFIGURED)
    return await client.approved_templates(credentials(settings, channel))
