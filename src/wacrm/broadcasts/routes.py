"""``/api/v1/broadcasts``: launch a template broadcast, follow it, cancel it."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Path, Query, Request

from wacrm.api_keys.auth import ApiPrincipal, public_router, require_scope
from wacrm.api_keys.scopes import Scope
from wacrm.broadcasts import service
from wacrm.broadcasts.schemas import (
    BroadcastCreate,
    BroadcastCreated,
    BroadcastOut,
    BroadcastRecipientOut,
    RecipientState,
    RejectedRecipient,
)
from wacrm.kit.db import DbSession
from wacrm.kit.envelope import Data, ListOf, PageMeta
from wacrm.kit.openapi import error_responses
from wacrm.kit.pagination import Cursor, Limit, paginator
from wacrm.models import BroadcastStatus

router = public_router(tags=["broadcasts"])

BroadcastsSend = Annotated[ApiPrincipal, Depends(require_scope(Scope.BROADCASTS_SEND))]
BroadcastId = Annotated[uuid.UUID, Path(description="The broadcast's id")]


@router.post(
    "/broadcasts",
    status_code=202,
    response_model=Data[BroadcastCreated],
    responses=error_responses(401, 403, 404, 409, 422),
)
async def create_broadcast(
    body: BroadcastCreate, principal: BroadcastsSend, session: DbSession
) -> Data[BroadcastCreated]:
    """Send an approved template to up to 10,000 numbers, each with its own parameters.

    Answers at once (202); workers send at the number's throughput limit. Invalid numbers
    are counted in `rejected` (and listed with their index) without failing the request;
    the same number twice is sent once. Parameters WhatsApp always refuses (newlines,
    tabs, more than 4 consecutive spaces, empty) are a 400 naming the recipient and the
    parameter, and nothing is stored. No WhatsApp number: `400 whatsapp_not_configured`.
    Follow progress with `GET /broadcasts/{id}`; a `broadcast.completed` event fires once
    every recipient has been handed to WhatsApp.
    """
    created = await service.create_broadcast(session, principal.account_id, body)
    broadcast = created.broadcast
    return Data(
        data=BroadcastCreated(
            broadcast_id=broadcast.id,
            status=broadcast.status,
            total_recipients=broadcast.total_recipients,
            accepted=broadcast.accepted,
            rejected=broadcast.rejected,
            duplicates=broadcast.duplicates,
            rejected_recipients=[
                RejectedRecipient(index=index, reason=reason) for index, reason in created.rejected
            ],
        )
    )


@router.get("/broadcasts", response_model=ListOf[BroadcastOut], responses=error_responses(401, 403))
async def list_broadcasts(
    request: Request,
    principal: BroadcastsSend,
    session: DbSession,
    status: Annotated[
        BroadcastStatus | None, Query(description="Only broadcasts in this status")
    ] = None,
    cursor: Cursor = None,
    limit: Limit = None,
) -> ListOf[BroadcastOut]:
    """The account's broadcasts, newest first, with their counts. Cursors are bound to
    the same `status`."""
    pages = paginator(request, principal.account_id, "broadcasts", {"status": status})
    page = pages.page(cursor, limit)
    items, next_cursor = await service.list_broadcasts(
        session, principal.account_id, pages, page, status=status
    )
    return ListOf(
        data=[BroadcastOut.of(broadcast, counts) for broadcast, counts in items],
        meta=PageMeta(next_cursor=next_cursor),
    )


@router.get(
    "/broadcasts/{broadcast_id}",
    response_model=Data[BroadcastOut],
    responses=error_responses(401, 403, 404),
)
async def get_broadcast(
    broadcast_id: BroadcastId, principal: BroadcastsSend, session: DbSession
) -> Data[BroadcastOut]:
    """One broadcast: status, totals, timestamps, and counts (sent, delivered, read,
    failed…) that follow WhatsApp's delivery statuses as they arrive."""
    broadcast, counts = await service.get_broadcast(session, principal.account_id, broadcast_id)
    return Data(data=BroadcastOut.of(broadcast, counts))


@router.get(
    "/broadcasts/{broadcast_id}/recipients",
    response_model=ListOf[BroadcastRecipientOut],
    responses=error_responses(401, 403, 404),
)
async def list_broadcast_recipients(
    request: Request,
    broadcast_id: BroadcastId,
    principal: BroadcastsSend,
    session: DbSession,
    status: Annotated[
        RecipientState | None,
        Query(description="Only recipients in this status, e.g. `failed`"),
    ] = None,
    cursor: Cursor = None,
    limit: Limit = None,
) -> ListOf[BroadcastRecipientOut]:
    """The broadcast's recipients with their status (their message's delivery status once
    sent), message id and error. Cursors are bound to the broadcast and `status`."""
    filters = {"id": broadcast_id, "status": status}
    pages = paginator(request, principal.account_id, "broadcast-recipients", filters)
    page = pages.page(cursor, limit)
    rows, next_cursor = await service.list_recipients(
        session, principal.account_id, broadcast_id, pages, page, status=status
    )
    return ListOf(
        data=[BroadcastRecipientOut.of(row) for row in rows],
        meta=PageMeta(next_cursor=next_cursor),
    )


@router.post(
    "/broadcasts/{broadcast_id}/cancel",
    response_model=Data[BroadcastOut],
    responses=error_responses(401, 403, 404, 409, 422),
)
async def cancel_broadcast(
    broadcast_id: BroadcastId, principal: BroadcastsSend, session: DbSession
) -> Data[BroadcastOut]:
    """Stop a queued or sending broadcast: recipients not sent yet are cancelled at once
    (sends already under way finish). A completed or cancelled broadcast is a 409."""
    broadcast, counts = await service.cancel_broadcast(session, principal.account_id, broadcast_id)
    return Data(data=BroadcastOut.of(broadcast, counts))
