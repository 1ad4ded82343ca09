"""All SQL about audit events."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.kit.pagination import Page, Paginator
from wacrm.models import AuditEvent


async def list_events(
    session: AsyncSession, account_id: uuid.UUID, paginator: Paginator, page: Page
) -> tuple[list[AuditEvent], str | None]:
    statement = select(AuditEvent).where(AuditEvent.account_id == account_id)
    statement = paginator.apply(statement, AuditEvent.created_at, AuditEvent.id, page)
    rows = (await session.execute(statement)).scalars().all()
    return paginator.split(rows, page)
