"""Who is logged in: the session cookie resolved on every request, roles as dependencies."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from wacrm.accounts import repository
from wacrm.accounts.service import SESSION_COOKIE, hash_token
from wacrm.audit.service import Actor
from wacrm.kit.clock import utcnow
from wacrm.kit.db import DbSession
from wacrm.kit.errors import Forbidden, SessionRequired
from wacrm.kit.http import client_ip
from wacrm.models import Role
from wacrm.telemetry.context import bind_account
from wacrm.telemetry.metrics import auth_failed

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"


@dataclass(frozen=True)
class Member:
    """A person acting in one account through the dashboard or the session API."""

    session_id: uuid.UUID
    user_id: uuid.UUID
    email: str
    name: str
    account_id: uuid.UUID
    account_name: str
    role: Role
    csrf_token: str
    client_ip: str

    @property
    def actor(self) -> Actor:
        return Actor(user_id=self.user_id, label=self.email, client_ip=self.client_ip)


async def current_member(request: Request, session: DbSession) -> Member:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        auth_failed("session", "missing")
        raise SessionRequired()
    row = await repository.find_live_session(session, hash_token(token), utcnow())
    if row is None:
        auth_failed("session", "unknown")
        raise SessionRequired("Your session has ended; log in again.")
    bind_account(row.account_id)
    if request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), row.csrf_token.encode()):
            auth_failed("session", "csrf")
            raise Forbidden(f"Missing or wrong {CSRF_HEADER} header.")
    return Member(
        session_id=row.session_id,
        user_id=row.user_id,
        email=row.email,
        name=row.user_name,
        account_id=row.account_id,
        account_name=row.account_name,
        role=row.role,
        csrf_token=row.csrf_token,
        client_ip=client_ip(request),
    )


async def manager(member: Annotated[Member, Depends(current_member)]) -> Member:
    if not member.role.can_manage:
        raise Forbidden("Only an owner or admin can do this.")
    return member


CurrentMember = Annotated[Member, Depends(current_member)]
AccountManager = Annotated[Member, Depends(manager)]
