"""Who is logged in: the session cookie resolved on every request, roles as dependencies."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request, Response

from wacrm.accounts import repository, service
from wacrm.accounts.service import SESSION_COOKIE, StartedSession, hash_token
from wacrm.audit.service import Actor
from wacrm.kit.clock import utcnow
from wacrm.kit.db import DbSession
from wacrm.kit.errors import Forbidden, SessionRequired
from wacrm.kit.http import client_ip
from wacrm.models import Role
from wacrm.settings import Settings
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

    def csrf_matches(self, sent: str) -> bool:
        return hmac.compare_digest(sent.encode(), self.csrf_token.encode())


async def session_member(request: Request, session: DbSession) -> Member:
    """The person behind the session cookie; no CSRF check (each caller checks its own way)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        auth_failed("session", "missing")
        raise SessionRequired()
    row = await repository.find_live_session(session, hash_token(token), utcnow())
    if row is None:
        auth_failed("session", "unknown")
        raise SessionRequired("Your session has ended; log in again.")
    bind_account(row.account_id)
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


async def current_member(
    request: Request, member: Annotated[Member, Depends(session_member)]
) -> Member:
    if request.method not in SAFE_METHODS and not member.csrf_matches(
        request.headers.get(CSRF_HEADER, "")
    ):
        auth_failed("session", "csrf")
        raise Forbidden(f"Missing or wrong {CSRF_HEADER} header.")
    return member


def ensure_manager(member: Member) -> Member:
    """Owner or admin, or 403: the server enforces every role, whatever a page shows."""
    service.ensure_can_manage(member)
    return member


def ensure_writer(member: Member) -> Member:
    """Agent, admin or owner, or 403: a viewer reads only."""
    if not member.role.can_write:
        raise Forbidden("A viewer can read but not change anything.")
    return member


async def manager(member: Annotated[Member, Depends(current_member)]) -> Member:
    return ensure_manager(member)


CurrentMember = Annotated[Member, Depends(current_member)]
AccountManager = Annotated[Member, Depends(manager)]


async def log_in(
    request: Request,
    response: Response,
    session: DbSession,
    *,
    email: str,
    password: str,
    account_id: uuid.UUID | None = None,
) -> StartedSession:
    """Check the password (throttled), open a server-side session and set its cookie."""
    settings: Settings = request.app.state.settings
    started = await service.login(
        session,
        request.app.state.rate_limiter,
        email=email,
        password=password,
        account_id=account_id,
        client_ip=client_ip(request),
        attempts_per_minute=settings.login_attempts_per_minute,
        ttl=session_ttl(settings),
    )
    set_session_cookie(request, response, started)
    return started


def session_ttl(settings: Settings) -> timedelta:
    return timedelta(hours=settings.session_ttl_hours)


def set_session_cookie(request: Request, response: Response, started: StartedSession) -> None:
    """The browser's half of a session just started: an HttpOnly cookie holding its token."""
    settings: Settings = request.app.state.settings
    response.set_cookie(
        SESSION_COOKIE,
        started.token,
        max_age=int(session_ttl(settings).total_seconds()),
        httponly=True,
        secure=settings.secure_cookies,
        samesite="lax",
        path="/",
    )


async def log_out(member: Member, response: Response, session: DbSession) -> None:
    """End the session on the server (at once, on every process) and clear the cookie."""
    await service.logout(session, member.session_id)
    response.delete_cookie(SESSION_COOKIE, path="/")
