"""Audit log as the session API shows it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from wacrm.models import AuditEvent


class AuditEventOut(BaseModel):
    id: uuid.UUID = Field(description="Event id")
    action: str = Field(description="What happened, e.g. `api_key.created`")
    actor: str = Field(description="Who did it: the person's email, or `cli`")
    actor_user_id: uuid.UUID | None = Field(description="The person's user id, if a person")
    client_ip: str | None = Field(description="Where the request came from")
    target_type: str = Field(description="Kind of thing changed, e.g. `api_key`")
    target_id: str = Field(description="Id of the thing changed")
    details: dict[str, Any] = Field(description="Non-secret facts about the change")
    created_at: datetime = Field(description="When (UTC)")

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventOut:
        return cls(
            id=event.id,
            action=event.action,
            actor=event.actor_label,
            actor_user_id=event.actor_user_id,
            client_ip=event.client_ip,
            target_type=event.target_type,
            target_id=event.target_id,
            details=event.details,
            created_at=event.created_at,
        )
