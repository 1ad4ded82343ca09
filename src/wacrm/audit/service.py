"""Recording audit events, in the same transaction as the change they describe."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

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
