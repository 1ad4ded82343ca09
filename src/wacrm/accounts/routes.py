"""Session login for people (the dashboard and the session JSON API)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request, Response

from wacrm.accounts import service
from wacrm.accounts.auth import CurrentMember, Member
from wacrm.accounts.repository import SessionRow
from wacrm.accounts.schemas import LoginRequest, SessionInfo
from wacrm.kit.db import DbSession
from wacrm.kit.envelope import Data
from wacrm.kit.http import client_ip
from wacrm.kit.openapi import error_responses
from wacrm.settings import Settings

router = APIRouter(prefix="/api/auth", tags=["session: auth"])


def _info(row: SessionRow | Member) -> SessionInfo:
    return SessionInfo.model_validate(row, from_attributes=True)


@router.post("/login", response_model=Data[SessionInfo], responses=error_responses(401))
async def login(
    body: LoginRequest, request: Request, response: Response, session: DbSession
) -> Data[SessionInfo]:
    """Log in with email and password; sets an HttpOnly session cookie."""
    settings: Settings = request.app.state.settings
    ttl = timedelta(hours=settings.session_ttl_hours)
    started = await service.login(
        session,
        request.app.state.rate_limiter,
        email=body.email,
        password=body.password,
        account_id=body.account_id,
        client_ip=client_ip(request),
        attempts_per_minute=settings.login_attempts_per_minute,
        ttl=ttl,
    )
    response.set_cookie(
        service.SESSION_COOKIE,
        started.token,
        max_age=int(ttl.total_seconds()),
        httponly=True,
        secure=settings.secure_cookies,
        samesite="lax",
        path="/",
    )
    return Data(data=_info(started.row))


@router.get("/session", response_model=Data[SessionInfo], responses=error_responses(401))
async def current_session(member: CurrentMember) -> Data[SessionInfo]:
    """Who is logged in, in which account, with which role."""
    return Data(data=_info(member))


@router.post("/logout", status_code=204, responses=error_responses(401, 403))
async def logout(member: CurrentMember, response: Response, session: DbSession) -> Response:
    """End this session on the server and clear the cookie."""
    await service.logout(session, member.session_id)
    response.status_code = 204
    response.delete_cookie(service.SESSION_COOKIE, path="/")
    return response
