"""Settings → Audit log (owners and admins): who changed what, from where, newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from wacrm.audit import service
from wacrm.dashboard.auth import PageManager
from wacrm.dashboard.rendering import render
from wacrm.kit.db import DbSession
from wacrm.kit.pagination import paginator
from wacrm.models import AuditEvent

PAGE = "/settings/audit-log"

router = APIRouter(prefix=PAGE)


@dataclass(frozen=True)
class ShownEvent:
    """An audit event as a row of the page: the target and the change in words."""

    created_at: datetime
    actor: str
    client_ip: str | None
    action: str
    target_type: str
    target: str
    change: str

    @classmethod
    def of(cls, event: AuditEvent) -> ShownEvent:
        details: dict[str, Any] = event.details or {}
        return cls(
            created_at=event.created_at,
            actor=event.actor_label,
            client_ip=event.client_ip,
            action=event.action,
            target_type=event.target_type,
            target=_target(details, event.target_id),
            change=_change(details),
        )


def _target(details: dict[str, Any], target_id: str) -> str:
    if details.get("email"):
        return str(details["email"])
    if details.get("name"):
        prefix = f" ({details['prefix']}…)" if details.get("prefix") else ""
        return f"“{details['name']}”{prefix}"
    return target_id


def _change(details: dict[str, Any]) -> str:
    if "to" in details:
        return f"role {details.get('from')} → {details['to']}"
    if "previous_role" in details:
        return f"from {details.get('from')}, who is now an admin"
    if "role" in details:
        return f"role {details['role']}"
    if "scopes" in details:
        return "scopes: " + (", ".join(str(s) for s in details["scopes"]) or "none")
    return ""


@router.get("")
async def audit_log_page(
    request: Request, member: PageManager, session: DbSession, cursor: str | None = None
) -> Response:
    pages = paginator(request, member.account_id, "audit-log", {})
    events, next_cursor = await service.list_events(session, member.account_id, pages, cursor)
    return render(
        request,
        "audit_log/index.html",
        member=member,
        title="Audit log",
        events=[ShownEvent.of(event) for event in events],
        first_page_url=PAGE if cursor is not None else None,
        next_page_url=f"{PAGE}?{urlencode({'cursor': next_cursor})}" if next_cursor else None,
    )
