"""Session login for people (the dashboard and the session JSON API)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from wacrm.accounts.auth import CurrentMember, Member, log_in, log_out
from wacrm.accounts.repository import SessionRow
from wacrm.accounts.schemas import LoginRequest, SessionInfo
from wacrm.kit.db import DbSession
from wacrm.kit.envelope import Data
from wacrm.kit.openapi import error_responses

router = APIRouter(prefix="/api/auth", tags=["session: auth"])


def _info(row: SessionRow | Member) -> SessionInfo:
    return SessionInfo.model_validate(row, from_attributes=True)


@router.post("/login", response_model=Data[SessionInfo], responses=error_responses(401))
async def login(
    body: LoginRequest, request: Request, response: Response, session: DbSession
) -> Data[SessionInfo]:
    """Log in with email and password; sets an HttpOnly session cookie."""
    started = await log_in(
        request,
        response,
        session,
        email=body.email,
        password=body.password,
        account_id=body.account_id,
    )
    return Data(data=_info(started.row))


@router.get("/session", response_model=Data[SessionInfo], responses=error_responses(401))
async def current_session(member: CurrentMember) -> Data[SessionInfo]:
    """Who is logged in, in which account, with which role."""
    return Data(data=_info(member))


@router.post("/logout", status_code=204, responses=error_responses(401, 403))
async def logout(member: CurrentMember, response: Response, session: DbSession) -> Response:
    """End this session on the server and clear the cookie."""
    await log_out(member, response, session)
    response.status_code = 204
    return response
