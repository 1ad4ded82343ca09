"""The audit log for owners and admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from wacrm.accounts.auth import AccountManager
from wacrm.audit import service
from wacrm.audit.schemas import AuditEventOut
from wacrm.kit.db import DbSession
from wacrm.kit.envelope import ListOf, PageMeta
from wacrm.kit.openapi import error_responses
from wacrm.kit.pagination import Paginator

router = APIRouter(prefix="/api/account", tags=["session: account"])


@router.get("/audit-log", response_model=ListOf[AuditEventOut], responses=error_responses(401, 403))
async def list_audit_log(
    request: Request,
    member: AccountManager,
    session: DbSession,
    cursor: Annotated[str | None, Query(description="Cursor from the previous page")] = None,
    limit: Annotated[int | None, Query(description="Page size, 1-100 (default 50)")] = None,
) -> ListOf[AuditEventOut]:
    """The account's audit log, newest first (owner/admin)."""
    paginator = Paginator(request.app.state.settings.secret_key, member.account_id, "audit-log", {})
    events, next_cursor = await service.list_events(
        session, member.account_id, paginator, cursor, limit
    )
    return ListOf(
        data=[AuditEventOut.of(e) for e in events], meta=PageMeta(next_cursor=next_cursor)
    )
