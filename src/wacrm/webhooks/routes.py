"""``/api/v1/webhooks``: outbound webhook endpoints and their delivery log."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Query, Request, Response

from wacrm.api_keys.auth import ApiPrincipal, public_router, require_scope
from wacrm.api_keys.scopes import Scope
from wacrm.kit.db import DbSession
from wacrm.kit.envelope import Data, ListOf, PageMeta
from wacrm.kit.http import no_store
from wacrm.kit.openapi import error_responses
from wacrm.kit.pagination import Cursor, Limit, paginator
from wacrm.models.webhooks import DeliveryStatus
from wacrm.webhooks import service
from wacrm.webhooks.schemas import (
    DeliveryOut,
    WebhookCreate,
    WebhookOut,
    WebhookSecret,
    WebhookUpdate,
)
from wacrm.webhooks.ssrf import Resolver

router = public_router(tags=["webhooks"])

WebhooksManage = Annotated[ApiPrincipal, Depends(require_scope(Scope.WEBHOOKS_MANAGE))]


def webhook_resolver(request: Request) -> Resolver | None:
    """Tests swap DNS for a fake; production resolves with the event loop's getaddrinfo."""
    return getattr(request.app.state, "webhook_resolver", None)


@router.post(
    "/webhooks",
    status_code=201,
    response_model=Data[WebhookSecret],
    responses=error_responses(401, 403, 409),
    dependencies=[Depends(no_store)],
)
async def create_webhook(
    body: WebhookCreate, principal: WebhooksManage, session: DbSession, request: Request
) -> Data[WebhookSecret]:
    """Register an endpoint. The response holds its signing secret, **shown this once**.

    The URL must be `https://` and its host must resolve to public addresses only (checked
    now and again before every delivery); a URL that is refused stores nothing (400).

    With `Idempotency-Key`, a retry gets the same answer (stored encrypted for 24 h).
    """
    endpoint, secret = await service.create_endpoint(
        session,
        request.app.state.settings,
        principal.account_id,
        url=body.url,
        events=body.events,
        description=body.description,
        is_active=body.is_active,
        resolver=webhook_resolver(request),
    )
    return Data(data=WebhookSecret(webhook=WebhookOut.of(endpoint), secret=secret))


@router.get("/webhooks", response_model=ListOf[WebhookOut], responses=error_responses(401, 403))
async def list_webhooks(
    request: Request,
    principal: WebhooksManage,
    session: DbSession,
    cursor: Cursor = None,
    limit: Limit = None,
) -> ListOf[WebhookOut]:
    """The account's webhooks, newest first. Never their secrets."""
    pages = paginator(request, principal.account_id, "webhooks", {})
    page = pages.page(cursor, limit)
    endpoints, next_cursor = await service.list_endpoints(
        session, principal.account_id, pages, page
    )
    return ListOf(
        data=[WebhookOut.of(e) for e in endpoints], meta=PageMeta(next_cursor=next_cursor)
    )


@router.get(
    "/webhooks/{webhook_id}",
    response_model=Data[WebhookOut],
    responses=error_responses(401, 403, 404),
)
async def get_webhook(
    webhook_id: uuid.UUID, principal: WebhooksManage, session: DbSession
) -> Data[WebhookOut]:
    """One webhook, with its health: failure streak, and why it was disabled if it was."""
    endpoint = await service.get_endpoint(session, principal.account_id, webhook_id)
    return Data(data=WebhookOut.of(endpoint))


@router.patch(
    "/webhooks/{webhook_id}",
    response_model=Data[WebhookOut],
    responses=error_responses(401, 403, 404),
)
async def update_webhook(
    webhook_id: uuid.UUID,
    body: WebhookUpdate,
    principal: WebhooksManage,
    session: DbSession,
    request: Request,
) -> Data[WebhookOut]:
    """Change only the fields sent: `url` (checked as at registration), `events`,
    `description`, `is_active`. Re-enabling resets the failure state; disabling fails the
    pending deliveries."""
    endpoint = await service.update_endpoint(
        session,
        request.app.state.settings,
        principal.account_id,
        webhook_id,
        body.model_dump(exclude_unset=True),
        resolver=webhook_resolver(request),
    )
    return Data(data=WebhookOut.of(endpoint))


@router.delete(
    "/webhooks/{webhook_id}",
    status_code=204,
    response_class=Response,
    responses=error_responses(401, 403, 404),
)
async def delete_webhook(
    webhook_id: uuid.UUID, principal: WebhooksManage, session: DbSession
) -> Response:
    """Delete a webhook with its delivery log. Nothing more is sent to it."""
    await service.delete_endpoint(session, principal.account_id, webhook_id)
    return Response(status_code=204)


@router.post(
    "/webhooks/{webhook_id}/test",
    status_code=202,
    response_model=Data[DeliveryOut],
    responses=error_responses(401, 403, 404, 409, 422),
)
async def test_webhook(
    webhook_id: uuid.UUID, principal: WebhooksManage, session: DbSession
) -> Data[DeliveryOut]:
    """Queue a `webhook.test` event for this webhook alone (it needs no subscription).

    Follow it in the deliveries log. A disabled webhook is `409`: enable it first.
    """
    view = await service.send_test(session, principal.account_id, webhook_id)
    return Data(data=DeliveryOut.of(view))


@router.post(
    "/webhooks/{webhook_id}/rotate-secret",
    response_model=Data[WebhookSecret],
    responses=error_responses(401, 403, 404),
    dependencies=[Depends(no_store)],
)
async def rotate_webhook_secret(
    webhook_id: uuid.UUID, principal: WebhooksManage, session: DbSession, request: Request
) -> Data[WebhookSecret]:
    """Replace the signing secret; the new one is **shown this once** and signs every attempt
    from now on (the old one stops at once).

    With `Idempotency-Key`, a retry gets the same answer (stored encrypted for 24 h).
    """
    endpoint, secret = await service.rotate_secret(
        session, request.app.state.settings, principal.account_id, webhook_id
    )
    return Data(data=WebhookSecret(webhook=WebhookOut.of(endpoint), secret=secret))


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    response_model=ListOf[DeliveryOut],
    responses=error_responses(401, 403, 404),
)
async def list_deliveries(
    webhook_id: uuid.UUID,
    request: Request,
    principal: WebhooksManage,
    session: DbSession,
    status: Annotated[
        DeliveryStatus | None, Query(description="Only deliveries in this status")
    ] = None,
    cursor: Cursor = None,
    limit: Limit = None,
) -> ListOf[DeliveryOut]:
    """The webhook's deliveries, newest first, each with every attempt made: time, HTTP
    status, latency, error and the first KiB of the response."""
    filters = {"webhook_id": str(webhook_id), "status": status}
    pages = paginator(request, principal.account_id, "webhook-deliveries", filters)
    page = pages.page(cursor, limit)
    views, next_cursor = await service.list_deliveries(
        session, principal.account_id, webhook_id, pages, page, status
    )
    return ListOf(data=[DeliveryOut.of(v) for v in views], meta=PageMeta(next_cursor=next_cursor))


@router.post(
    "/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=Data[DeliveryOut],
    responses=error_responses(401, 403, 404, 409, 422),
)
async def redeliver(
    webhook_id: uuid.UUID, delivery_id: uuid.UUID, principal: WebhooksManage, session: DbSession
) -> Data[DeliveryOut]:
    """Send a delivery's event again, as a new delivery with a fresh retry schedule. The body
    keeps the same event `id`. A disabled webhook is `409`: enable it first."""
    view = await service.redeliver(session, principal.account_id, webhook_id, delivery_id)
    return Data(data=DeliveryOut.of(view))
