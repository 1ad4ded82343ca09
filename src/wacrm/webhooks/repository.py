"""SQL for webhook endpoints and their delivery log, always filtered by account first."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.kit.pagination import Page, Paginator
from wacrm.models.webhooks import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint


def _endpoints(account_id: uuid.UUID) -> Select[WebhookEndpoint]:
    return select(WebhookEndpoint).where(WebhookEndpoint.account_id == account_id)


async def get_endpoint(
    session: AsyncSession, account_id: uuid.UUID, endpoint_id: uuid.UUID
) -> WebhookEndpoint | None:
    statement = _endpoints(account_id).where(WebhookEndpoint.id == endpoint_id)
    return (await session.execute(statement)).scalar_one_or_none()


async def count_endpoints(session: AsyncSession, account_id: uuid.UUID) -> int:
    statement = select(func.count()).where(WebhookEndpoint.account_id == account_id)
    return int((await session.execute(statement)).scalar_one())


async def list_endpoints(
    session: AsyncSession, account_id: uuid.UUID, paginator: Paginator, page: Page
) -> tuple[list[WebhookEndpoint], str | None]:
    statement = paginator.apply(
        _endpoints(account_id), WebhookEndpoint.created_at, WebhookEndpoint.id, page
    )
    rows = list((await session.execute(statement)).scalars())
    return paginator.split(rows, page)


async def delete_endpoint(
    session: AsyncSession, account_id: uuid.UUID, endpoint_id: uuid.UUID
) -> bool:
    """Delete an endpoint; its deliveries and their attempts go with it (ON DELETE CASCADE)."""
    result = await session.execute(
        delete(WebhookEndpoint)
        .where(WebhookEndpoint.account_id == account_id, WebhookEndpoint.id == endpoint_id)
        .returning(WebhookEndpoint.id)
    )
    return result.first() is not None


async def disable_endpoints(
    session: AsyncSession,
    endpoint_ids: Sequence[uuid.UUID],
    reason: str,
    now: datetime,
    *,
    only_if: ColumnElement[bool] | None = None,
) -> list[uuid.UUID]:
    """Disable the active ones of ``endpoint_ids`` (that also match ``only_if``), saying why.

    Their pending deliveries are settled as failed at once: nothing is sent to a disabled
    endpoint, and re-enabling it does not flood the receiver with a stale backlog (each
    delivery can still be sent again by hand).
    """
    if not endpoint_ids:
        return []
    statement = (
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id.in_(sorted(endpoint_ids)), WebhookEndpoint.is_active.is_(True))
        .values(is_active=False, disabled_at=now, disabled_reason=reason[:500], updated_at=now)
        .returning(WebhookEndpoint.id)
        .execution_options(synchronize_session=False)
    )
    if only_if is not None:
        statement = statement.where(only_if)
    disabled = list((await session.execute(statement)).scalars())
    if disabled:
        # Deliveries in flight (leased) are left to their worker, which records the attempt
        # it made; a later claim finds the endpoint disabled and fails what is still pending.
        await session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.endpoint_id.in_(disabled),
                WebhookDelivery.status == DeliveryStatus.PENDING.value,
                WebhookDelivery.lease_token.is_(None),
            )
            .values(
                status=DeliveryStatus.FAILED.value,
                next_attempt_at=None,
                last_error="endpoint disabled: " + reason[:400],
                completed_at=now,
            )
            .execution_options(synchronize_session=False)
        )
    return disabled


def _deliveries(account_id: uuid.UUID, endpoint_id: uuid.UUID) -> Select[WebhookDelivery]:
    return select(WebhookDelivery).where(
        WebhookDelivery.account_id == account_id, WebhookDelivery.endpoint_id == endpoint_id
    )


async def get_delivery(
    session: AsyncSession, account_id: uuid.UUID, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookDelivery | None:
    statement = _deliveries(account_id, endpoint_id).where(WebhookDelivery.id == delivery_id)
    return (await session.execute(statement)).scalar_one_or_none()


async def list_deliveries(
    session: AsyncSession,
    account_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    paginator: Paginator,
    page: Page,
    status: DeliveryStatus | None,
) -> tuple[list[WebhookDelivery], str | None]:
    statement = _deliveries(account_id, endpoint_id)
    if status is not None:
        statement = statement.where(WebhookDelivery.status == status.value)
    statement = paginator.apply(statement, WebhookDelivery.created_at, WebhookDelivery.id, page)
    rows = list((await session.execute(statement)).scalars())
    return paginator.split(rows, page)


async def attempts_of(
    session: AsyncSession, delivery_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[WebhookAttempt]]:
    """The attempts of each delivery, oldest first (at most one per step of the schedule)."""
    found: dict[uuid.UUID, list[WebhookAttempt]] = defaultdict(list)
    if delivery_ids:
        statement = (
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(delivery_ids))
            .order_by(WebhookAttempt.attempted_at, WebhookAttempt.number)
        )
        for attempt in (await session.execute(statement)).scalars():
            found[attempt.delivery_id].append(attempt)
    return found


async def insert_delivery(session: AsyncSession, row: dict[str, Any]) -> WebhookDelivery:
    delivery = WebhookDelivery(**row)
    session.add(delivery)
    await session.flush()
    return delivery
