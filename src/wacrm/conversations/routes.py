"""``/api/v1/conversations``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Path, Query, Request

from wacrm.api_keys.auth import ApiPrincipal, public_router, require_scope
from wacrm.api_keys.scopes import Scope
from wacrm.conversations import service
from wacrm.conversations.schemas import ConversationMessageOut, ConversationOut
from wacrm.kit.db import DbSession
from wacrm.kit.envelope import Data, ListOf, PageMeta
from wacrm.kit.openapi import error_responses
from wacrm.kit.pagination import Cursor, Limit, paginator
from wacrm.models import ConversationStatus

router = public_router(tags=["conversations"])

ConversationsRead = Annotated[ApiPrincipal, Depends(require_scope(Scope.CONVERSATIONS_READ))]
MessagesRead = Annotated[ApiPrincipal, Depends(require_scope(Scope.MESSAGES_READ))]
ConversationId = Annotated[uuid.UUID, Path(description="Conversation id")]


@router.get(
    "/conversations", response_model=ListOf[ConversationOut], responses=error_responses(401, 403)
)
async def list_conversations(
    request: Request,
    principal: ConversationsRead,
    session: DbSession,
    status: Annotated[
        ConversationStatus | None, Query(description="Only conversations in this status")
    ] = None,
    contact_id: Annotated[
        uuid.UUID | None, Query(description="Only the conversation of this contact")
    ] = None,
    cursor: Cursor = None,
    limit: Limit = None,
) -> ListOf[ConversationOut]:
    """The account's conversations, newest first, each with its contact and tags.

    Cursors are bound to the same `status` and `contact_id`.
    """
    filters = {"status": status, "contact_id": contact_id}
    pages = paginator(request, principal.account_id, "conversations", filters)
    page = pages.page(cursor, limit)
    views, next_cursor = await service.list_conversations(
        session, principal.account_id, pages, page, status=status, contact_id=contact_id
    )
    return ListOf(
        data=[ConversationOut.of(v) for v in views], meta=PageMeta(next_cursor=next_cursor)
    )


@router.get(
    "/conversations/{conversation_id}",
    response_model=Data[ConversationOut],
    responses=error_responses(401, 403, 404),
)
async def get_conversation(
    conversation_id: ConversationId, principal: ConversationsRead, session: DbSession
) -> Data[ConversationOut]:
    """One conversation with its contact."""
    view = await service.get_conversation(session, principal.account_id, conversation_id)
    return Data(data=ConversationOut.of(view))


@router.get(
    "/conversations/{conversation_id}/messages",
    response_model=ListOf[ConversationMessageOut],
    responses=error_responses(401, 403, 404),
)
async def list_conversation_messages(
    request: Request,
    conversation_id: ConversationId,
    principal: MessagesRead,
    session: DbSession,
    cursor: Cursor = None,
    limit: Limit = None,
) -> ListOf[ConversationMessageOut]:
    """The conversation's messages, newest first, with their delivery status (needs
    `messages:read`).
    """
    pages = paginator(
        request, principal.account_id, "conversation-messages", {"id": conversation_id}
    )
    page = pages.page(cursor, limit)
    messages, next_cursor = await service.list_messages(
        session, principal.account_id, conversation_id, pages, page
    )
    return ListOf(
        data=[ConversationMessageOut.of(m) for m in messages],
        meta=PageMeta(next_cursor=next_cursor),
    )
