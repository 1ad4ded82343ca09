"""``POST /api/v1/messages`` and ``GET /api/v1/messages/{id}``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request

from wacrm.api_keys.auth import ApiPrincipal, public_router, require_scope
from wacrm.api_keys.scopes import Scope
from wacrm.kit.db import DbSession
from wacrm.kit.envelope import Data
from wacrm.kit.openapi import error_responses
from wacrm.messages import service
from wacrm.messages.schemas import MessageCreate, MessageOut, MessageSent

router = public_router(tags=["messages"])
Sender = Annotated[ApiPrincipal, Depends(require_scope(Scope.MESSAGES_SEND))]
Reader = Annotated[ApiPrincipal, Depends(require_scope(Scope.MESSAGES_READ))]


@router.post(
    "/messages",
    status_code=201,
    response_model=Data[MessageSent],
    responses=error_responses(401, 403, 404, 409, 422, 502),
)
async def send_message(
    body: MessageCreate, principal: Sender, session: DbSession, request: Request
) -> Data[MessageSent]:
    """Send a WhatsApp message (text, template or media by link) to a number.

    Finds or creates the contact (by the exact normalised number) and its conversation.
    Free-form messages need the customer to have written in the last 24 hours
    (`409 outside_service_window`); templates can always be sent. A refusal by WhatsApp is
    `502 meta_error` with Meta's code in `details`.
    """
    sent = await service.send_message(
        session,
        request.app.state.settings,
        request.app.state.whatsapp,
        account_id=principal.account_id,
        to=body.to,
        content=body.content(),
        channel_id=body.channel_id,
        reply_to_message_id=body.reply_to_message_id,
    )
    message = sent.message
    assert message.channel_id is not None
    return Data(
        data=MessageSent(
            message_id=message.id,
            whatsapp_message_id=message.wamid,
            conversation_id=message.conversation_id,
            contact_id=message.contact_id,
            contact_created=sent.contact_created,
            channel_id=message.channel_id,
            status=message.status,
        )
    )


@router.get(
    "/messages/{message_id}",
    response_model=Data[MessageOut],
    responses=error_responses(401, 403, 404),
)
async def read_message(
    message_id: uuid.UUID, principal: Reader, session: DbSession
) -> Data[MessageOut]:
    """One message with its delivery status history."""
    message, history = await service.read_message(session, principal.account_id, message_id)
    return Data(data=MessageOut.of(message, history))
