"""Managing outbound webhook endpoints: registration, changes, secrets, tests, redelivery."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.events.service import EventType
from wacrm.kit.clock import utcnow
from wacrm.kit.crypto import encrypt
from wacrm.kit.errors import Conflict, NotFound, field_error
from wacrm.kit.pagination import Page, Paginator
from wacrm.models import Event
from wacrm.models.webhooks import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from wacrm.settings import Settings
from wacrm.webhooks import repository
from wacrm.webhooks.fanout import delivery_row
from wacrm.webhooks.signing import new_secret
from wacrm.webhooks.ssrf import Resolver, UnsafeWebhookUrl
from wacrm.webhooks.transport import vet_url

MAX_ENDPOINTS_PER_ACCOUNT = 20
# What an endpoint can subscribe to; `webhook.test` goes to one endpoint, from its test button.
SUBSCRIBABLE_EVENTS: tuple[str, ...] = tuple(
    t.value for t in EventType if t is not EventType.WEBHOOK_TEST
)


@dataclass(frozen=True)
class DeliveryView:
    delivery: WebhookDelivery
    attempts: list[WebhookAttempt]


async def checked_url(settings: Settings, raw: str, resolver: Resolver | None) -> str:
    """The canonical form of ``raw``, once its host resolved to acceptable addresses only."""
    try:
        target = await vet_url(
            raw,
            allow_private=settings.webhooks_allow_private_targets,
            resolve_seconds=settings.webhooks_timeout_seconds,
            resolver=resolver,
        )
    except UnsafeWebhookUrl as exc:
        raise field_error("url", str(exc)) from None
    return target.url


async def create_endpoint(
    session: AsyncSession,
    settings: Settings,
    account_id: uuid.UUID,
    *,
    url: str,
    events: Sequence[str],
    description: str | None,
    is_active: bool,
    resolver: Resolver | None = None,
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it and its signing secret (the only time it is shown)."""
    url = await checked_url(settings, url, resolver)
    if await repository.count_endpoints(session, account_id) >= MAX_ENDPOINTS_PER_ACCOUNT:
        raise Conflict(
            f"An account can have at most {MAX_ENDPOINTS_PER_ACCOUNT} webhook endpoints."
        )
    secret = new_secret()
    now = utcnow()
    endpoint = WebhookEndpoint(
        account_id=account_id,
        url=url,
        events=list(events),
        description=description,
        is_active=is_active,
        secret_encrypted=encrypt(settings.secret_key, secret),
        consecutive_failures=0,
        disabled_at=None if is_active else now,
        disabled_reason=None if is_active else "Created disabled.",
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    await session.flush()
    return endpoint, secret


async def get_endpoint(
    session: AsyncSession, account_id: uuid.UUID, endpoint_id: uuid.UUID
) -> WebhookEndpoint:
    endpoint = await repository.get_endpoint(session, account_id, endpoint_id)
    if endpoint is None:
        raise NotFound("Webhook")
    return endpoint


async def list_endpoints(
    session: AsyncSession, account_id: uuid.UUID, paginator: Paginator, page: Page
) -> tuple[list[WebhookEndpoint], str | None]:
    return await repository.list_endpoints(session, account_id, paginator, page)


async def update_endpoint(
    session: AsyncSession,
    settings: Settings,
    account_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    changes: dict[str, Any],
    resolver: Resolver | None = None,
) -> WebhookEndpoint:
    """Change the fields sent. Enabling an endpoint clears its failure streak and why it was
    disabled; disabling it settles its pending deliveries as failed."""
    endpoint = await get_endpoint(session, account_id, endpoint_id)
    now = utcnow()
    if "url" in changes:
        endpoint.url = await checked_url(settings, changes["url"], resolver)
    if "events" in changes:
        endpoint.events = list(changes["events"])
    if "description" in changes:
        endpoint.description = changes["description"]
    endpoint.updated_at = now
    active = changes.get("is_active")
    if active is True and not endpoint.is_active:
        endpoint.is_active = True
        endpoint.consecutive_failures = 0
        endpoint.failing_since = None
        endpoint.disabled_at = None
        endpoint.disabled_reason = None
    await session.flush()
    if active is False and endpoint.is_active:
        await repository.disable_endpoints(session, [endpoint.id], "Disabled through the API.", now)
        await session.refresh(endpoint)
    return endpoint


async def delete_endpoint(
    session: AsyncSession, account_id: uuid.UUID, endpoint_id: uuid.UUID
) -> None:
    if not await repository.delete_endpoint(session, account_id, endpoint_id):
        raise NotFound("Webhook")


async def rotate_secret(
    session: AsyncSession, settings: Settings, account_id: uuid.UUID, endpoint_id: uuid.UUID
) -> tuple[WebhookEndpoint, str]:
    """A new signing secret, effective for every attempt from now on (the old one stops)."""
    endpoint = await get_endpoint(session, account_id, endpoint_id)
    secret = new_secret()
    endpoint.secret_encrypted = encrypt(settings.secret_key, secret)
    endpoint.updated_at = utcnow()
    await session.flush()
    return endpoint, secret


async def send_test(
    session: AsyncSession, account_id: uuid.UUID, endpoint_id: uuid.UUID
) -> DeliveryView:
    """A `webhook.test` event delivered to this endpoint only, whatever it subscribes to."""
    endpoint = await _active_endpoint(session, account_id, endpoint_id)
    now = utcnow()
    event = Event(
        account_id=account_id,
        type=EventType.WEBHOOK_TEST.value,
        data={"webhook_id": str(endpoint.id), "message": "This is a test event from wacrm."},
        occurred_at=now,
    )
    session.add(event)
    await session.flush()
    row = delivery_row(account_id, endpoint.id, event.id, event.type, now)
    return DeliveryView(await repository.insert_delivery(session, row), [])


async def list_deliveries(
    session: AsyncSession,
    account_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    paginator: Paginator,
    page: Page,
    status: DeliveryStatus | None,
) -> tuple[list[DeliveryView], str | None]:
    """A page of the endpoint's deliveries, newest first, each with all its attempts."""
    await get_endpoint(session, account_id, endpoint_id)
    deliveries, next_cursor = await repository.list_deliveries(
        session, account_id, endpoint_id, paginator, page, status
    )
    attempts = await repository.attempts_of(session, [d.id for d in deliveries])
    return [DeliveryView(d, attempts.get(d.id, [])) for d in deliveries], next_cursor


async def redeliver(
    session: AsyncSession, account_id: uuid.UUID, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
) -> DeliveryView:
    """Queue the delivery's event again, as a new delivery with a fresh retry schedule.

    The body carries the same event id, so a receiver that already has it can tell.
    """
    endpoint = await _active_endpoint(session, account_id, endpoint_id)
    original = await repository.get_delivery(session, account_id, endpoint.id, delivery_id)
    if original is None:
        raise NotFound("Delivery")
    row = delivery_row(account_id, endpoint.id, original.event_id, original.event_type, utcnow())
    return DeliveryView(await repository.insert_delivery(session, row), [])


async def _active_endpoint(
    session: AsyncSession, account_id: uuid.UUID, endpoint_id: uuid.UUID
) -> WebhookEndpoint:
    endpoint = await get_endpoint(session, account_id, endpoint_id)
    if not endpoint.is_active:
        raise Conflict("This webhook is disabled: enable it first (PATCH is_active=true).")
    return endpoint
