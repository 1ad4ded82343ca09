"""Recording audit events, in the same transaction as the change they describe."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.audit import repository
from wacrm.kit.pagination import Paginator
from wacrm.models import AuditEvent


@dataclass(frozen=True)
class Actor:
    """Who did it: a logged-in person, or an operator at the command line."""

    user_id: uuid.UUID | None
    label: str
    client_ip: str | None


CLI_ACTOR = Actor(user_id=None, label="cli", client_ip=None)


async def record(
    session: AsyncSession,
    *,
    account_id: uuid.UUID,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: uuid.UUID,
    details: dict[str, Any],
) -> None:
    session.add(
        AuditEvent(
            account_id=account_id,
            actor_user_id=actor.user_id,
            actor_label=actor.label,
            client_ip=actor.client_ip,
            action=action,
            target_type=target_type,
            target_id=str(target_id),
            details=details,
        )
    )
    await session.flush()


async def list_events(
    session: AsyncSession,
    account_id: uuid.UUID,
    paginator: Paginator,
    cursor: str | None,
    limit: int | None = None,
) -> tuple[list[AuditEvent], str | None]:
    """One page of the account's audit log, newest first, and the next page's cursor."""
    return await repository.list_events(
        session, account_id, paginator, paginator.page(cursor, limit)
    )
