"""Worker jobs for outbound messages: due retries, and sends whose process died."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from wacrm.kit.clock import utcnow
from wacrm.messages import repository
from wacrm.messages.content import OutboundContent
from wacrm.messages.sending import dispatch
from wacrm.models import Channel, Contact, Message, MessageStatus
from wacrm.whatsapp.client import CloudApiClient
from wacrm.worker.runner import WorkerContext


async def retry_due_sends(context: WorkerContext, limit: int = 20) -> int:
    """Send again the messages Meta asked us to retry later, once their time has come."""
    client = context.services["whatsapp"]
    assert isinstance(client, CloudApiClient)
    async with context.database.sessions() as session:
        due = await repository.due_retries(session, utcnow(), limit)
        claimed = [m for m in due if await repository.claim_retry(session, m)]
        await session.commit()
    for message_id in claimed:
        async with context.database.sessions() as session:
            row = (
                await session.execute(
                    select(Message, Channel, Contact.phone)
                    .join(Channel, Channel.id == Message.channel_id)
                    .join(Contact, Contact.id == Message.contact_id)
                    .where(Message.id == message_id)
                )
            ).one_or_none()
            if row is None:  # its number was removed meanwhile
                await repository.set_outcome(
                    session,
                    message_id,
                    status=MessageStatus.FAILED,
                    values={"error": {"message": "the WhatsApp number was removed"}},
                )
            else:
                message, channel, phone = row
                content = OutboundContent.from_json(message.type, message.content)
                payload = content.payload(phone, message.reply_to_wamid)
                await dispatch(
                    session,
                    context.settings,
                    client,
                    message=message,
                    channel=channel,
                    payload=payload,
                )
            await session.commit()
    return len(claimed)


def stalled_after(context: WorkerContext) -> timedelta:
    """How long a send may stay in flight before its process counts as dead."""
    return timedelta(seconds=context.settings.sends_stalled_after_seconds)


async def mark_stalled_sends(context: WorkerContext) -> int:
    """A send left ``pending`` for long had its process die mid-call: mark it ``unknown``."""
    async with context.database.sessions() as session:
        count = await repository.mark_stalled(session, utcnow() - stalled_after(context))
        await session.commit()
    return count
