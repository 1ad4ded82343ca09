"""Settings → Webhooks (owners and admins): endpoints with their events and state; create
(the signing secret shown once), enable or disable, send a test, rotate the secret (shown
once), delete; each endpoint's deliveries with their attempts, and redeliver.

Every rule (the URL's SSRF check, events, limits) lives in ``wacrm.webhooks.service``; a
form goes through the API's own request schema first.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.accounts.auth import Member
from wacrm.dashboard.auth import FormPost, ManagerForm, PageManager
from wacrm.dashboard.forms import FormErrors, PostedForm, refuse_problems, validated
from wacrm.dashboard.rendering import flash, redirect, render, render_fragment
from wacrm.kit.db import DbSession
from wacrm.kit.errors import BadRequest, Conflict
from wacrm.kit.pagination import MAX_LIMIT, paginator
from wacrm.models.webhooks import WebhookEndpoint
from wacrm.webhooks import service
from wacrm.webhooks.routes import webhook_resolver
from wacrm.webhooks.schemas import DeliveryOut, WebhookCreate, WebhookOut

PAGE = "/settings/webhooks"
DELIVERIES_PER_PAGE = 25
REFRESH_SECONDS = 3
LABELS = {"url": "URL", "events": "Events", "description": "Description"}
EVENT_DESCRIPTIONS = {
    "message.received": "A customer wrote in",
    "message.status_updated": "A message you sent was sent, delivered, read or failed",
    "conversation.created": "A conversation started",
    "contact.created": "A contact was created",
    "broadcast.completed": "A broadcast finished sending",
}

router = APIRouter(prefix=PAGE)


def _form_values(form: PostedForm | None = None) -> dict[str, Any]:
    if form is None:
        return {"url": "", "events": [], "description": ""}
    return {
        "url": form.value("url"),
        "events": form.values("events"),
        "description": form.value("description"),
    }


async def _index(
    request: Request,
    session: AsyncSession,
    member: Member,
    *,
    values: dict[str, Any] | None = None,
    errors: FormErrors | None = None,
    created: tuple[WebhookEndpoint, str] | None = None,
    status_code: int = 200,
) -> Response:
    pages = paginator(request, member.account_id, "dashboard-webhooks", {})
    # An account has at most MAX_ENDPOINTS_PER_ACCOUNT endpoints: one page holds them all.
    endpoints, _ = await service.list_endpoints(
        session, member.account_id, pages, pages.page(None, MAX_LIMIT)
    )
    return render(
        request,
        "webhooks/index.html",
        member=member,
        status_code=status_code,
        title="Webhooks",
        endpoints=[WebhookOut.of(endpoint) for endpoint in endpoints],
        events=[(name, EVENT_DESCRIPTIONS.get(name, "")) for name in service.SUBSCRIBABLE_EVENTS],
        values=values or _form_values(),
        errors=errors,
        labels=LABELS,
        private_targets_allowed=request.app.state.settings.webhooks_allow_private_targets,
        shown=None
        if created is None
        else {"webhook": WebhookOut.of(created[0]), "secret": created[1]},
        replace_url=PAGE if created else None,
    )


@router.get("")
async def webhooks_page(request: Request, member: PageManager, session: DbSession) -> Response:
    return await _index(request, session, member)


@router.post("")
async def create_webhook(request: Request, post: ManagerForm, session: DbSession) -> Response:
    member, values = post.member, _form_values(post.form)
    try:
        refuse_problems(post.form)
        body = validated(WebhookCreate, {**values, "description": values["description"] or None})
        created = await service.create_endpoint(
            session,
            request.app.state.settings,
            member.account_id,
            url=body.url,
            events=body.events,
            description=body.description,
            is_active=True,
            resolver=webhook_resolver(request),
        )
    except (BadRequest, Conflict) as error:
        await session.rollback()
        return await _index(
            request,
            session,
            member,
            values=values,
            errors=FormErrors.of(error),
            status_code=error.status,
        )
    return await _index(request, session, member, created=created, status_code=201)


async def _deliveries(
    request: Request, session: AsyncSession, member: Member, webhook_id: uuid.UUID, cursor: str
) -> tuple[list[DeliveryOut], str | None]:
    filters = {"webhook_id": str(webhook_id)}
    pages = paginator(request, member.account_id, "dashboard-webhook-deliveries", filters)
    views, next_cursor = await service.list_deliveries(
        session,
        member.account_id,
        webhook_id,
        pages,
        pages.page(cursor or None, DELIVERIES_PER_PAGE),
        None,
    )
    return [DeliveryOut.of(view) for view in views], next_cursor


async def _detail(
    request: Request,
    session: AsyncSession,
    member: Member,
    webhook_id: uuid.UUID,
    *,
    cursor: str = "",
    rotated: str | None = None,
) -> Response:
    endpoint = await service.get_endpoint(session, member.account_id, webhook_id)
    deliveries, next_cursor = await _deliveries(request, session, member, webhook_id, cursor)
    here = f"{PAGE}/{webhook_id}"
    webhook = WebhookOut.of(endpoint)
    return render(
        request,
        "webhooks/detail.html",
        member=member,
        title=f"Webhook {webhook.url}",
        webhook=webhook,
        webhook_id=webhook_id,
        deliveries=deliveries,
        next_page=f"{here}?{urlencode({'cursor': next_cursor})}" if next_cursor else None,
        first_page=here if cursor else None,
        refresh_url=None if cursor else f"{here}/deliveries",
        refresh_seconds=REFRESH_SECONDS,
        shown=None if rotated is None else {"webhook": webhook, "secret": rotated},
        replace_url=here if rotated else None,
    )


@router.get("/{webhook_id}")
async def webhook_page(
    request: Request,
    webhook_id: uuid.UUID,
    member: PageManager,
    session: DbSession,
    cursor: str = "",
) -> Response:
    return await _detail(request, session, member, webhook_id, cursor=cursor)


@router.get("/{webhook_id}/deliveries")
async def deliveries_fragment(
    request: Request, webhook_id: uuid.UUID, member: PageManager, session: DbSession
) -> Response:
    """The latest deliveries, for the page's script to refresh the log in place."""
    deliveries, _ = await _deliveries(request, session, member, webhook_id, "")
    return render_fragment(
        request,
        "webhooks/_deliveries.html",
        member=member,
        deliveries=deliveries,
        webhook_id=webhook_id,
    )


async def _set_active(
    request: Request, session: AsyncSession, post: FormPost, webhook_id: uuid.UUID, active: bool
) -> Response:
    endpoint = await service.update_endpoint(
        session,
        request.app.state.settings,
        post.member.account_id,
        webhook_id,
        {"is_active": active},
    )
    response = redirect(f"{PAGE}/{webhook_id}")
    state = "enabled: events are delivered to it again" if active else "disabled"
    flash(request, response, f"{endpoint.url} is {state}.")
    return response


@router.post("/{webhook_id}/enable")
async def enable_webhook(
    request: Request, webhook_id: uuid.UUID, post: ManagerForm, session: DbSession
) -> Response:
    return await _set_active(request, session, post, webhook_id, True)


@router.post("/{webhook_id}/disable")
async def disable_webhook(
    request: Request, webhook_id: uuid.UUID, post: ManagerForm, session: DbSession
) -> Response:
    return await _set_active(request, session, post, webhook_id, False)


@router.post("/{webhook_id}/test")
async def test_webhook(
    request: Request, webhook_id: uuid.UUID, post: ManagerForm, session: DbSession
) -> Response:
    response = redirect(f"{PAGE}/{webhook_id}")
    try:
        await service.send_test(session, post.member.account_id, webhook_id)
    except Conflict:
        flash(request, response, "This webhook is disabled: enable it to send a test.", "error")
        return response
    flash(request, response, "A webhook.test event is on its way; it appears in the log below.")
    return response


async def _confirmation(
    request: Request, session: AsyncSession, member: Member, webhook_id: uuid.UUID, action: str
) -> Response:
    """The page that asks before a change that cannot be taken back (rotate, delete)."""
    webhook = WebhookOut.of(await service.get_endpoint(session, member.account_id, webhook_id))
    title = {"rotate": "Rotate the secret", "delete": "Delete the webhook"}[action]
    return render(request, f"webhooks/{action}.html", member=member, title=title, webhook=webhook)


@router.get("/{webhook_id}/rotate")
async def rotate_page(
    request: Request, webhook_id: uuid.UUID, member: PageManager, session: DbSession
) -> Response:
    return await _confirmation(request, session, member, webhook_id, "rotate")


@router.post("/{webhook_id}/rotate")
async def rotate_secret(
    request: Request, webhook_id: uuid.UUID, post: ManagerForm, session: DbSession
) -> Response:
    _, secret = await service.rotate_secret(
        session, request.app.state.settings, post.member.account_id, webhook_id
    )
    return await _detail(request, session, post.member, webhook_id, rotated=secret)


@router.get("/{webhook_id}/delete")
async def delete_page(
    request: Request, webhook_id: uuid.UUID, member: PageManager, session: DbSession
) -> Response:
    return await _confirmation(request, session, member, webhook_id, "delete")


@router.post("/{webhook_id}/delete")
async def delete_webhook(
    request: Request, webhook_id: uuid.UUID, post: ManagerForm, session: DbSession
) -> Response:
    endpoint = await service.get_endpoint(session, post.member.account_id, webhook_id)
    url = endpoint.url
    await service.delete_endpoint(session, post.member.account_id, webhook_id)
    response = redirect(PAGE)
    flash(request, response, f"Deleted the webhook {url} and its delivery log.")
    return response


@router.post("/{webhook_id}/deliveries/{delivery_id}/redeliver")
async def redeliver(
    request: Request,
    webhook_id: uuid.UUID,
    delivery_id: uuid.UUID,
    post: ManagerForm,
    session: DbSession,
) -> Response:
    response = redirect(f"{PAGE}/{webhook_id}")
    try:
        await service.redeliver(session, post.member.account_id, webhook_id, delivery_id)
    except Conflict:
        flash(request, response, "This webhook is disabled: enable it to redeliver.", "error")
        return response
    flash(request, response, "The event is queued again, as a new delivery at the top.")
    return response
