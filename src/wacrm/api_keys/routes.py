"""Session API for people managing keys, and ``GET /api/v1/me`` for machines."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Request

from wacrm.accounts.auth import AccountManager, CurrentMember
from wacrm.api_keys import service
from wacrm.api_keys.auth import AnyKey, public_router
from wacrm.api_keys.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    ApiKeyRoll,
    ApiKeyRolled,
    Me,
    MeAccount,
    MeKey,
)
from wacrm.api_keys.scopes import Scope
from wacrm.kit.clock import utcnow
from wacrm.kit.db import DbSession
from wacrm.kit.envelope import Data
from wacrm.kit.http import no_store
from wacrm.kit.openapi import error_responses

session_router = APIRouter(prefix="/api/account/api-keys", tags=["session: api keys"])
v1_router = public_router(tags=["account"])


@session_router.get("", response_model=Data[list[ApiKeyOut]], responses=error_responses(401))
async def list_keys(member: CurrentMember, session: DbSession) -> Data[list[ApiKeyOut]]:
    """The key roster (any member): metadata only, never a secret or hash."""
    rows = await service.roster(session, member.account_id)
    now = utcnow()
    return Data(data=[ApiKeyOut.of_row(row, now) for row in rows])


@session_router.post(
    "",
    status_code=201,
    response_model=Data[ApiKeyCreated],
    responses=error_responses(401, 403),
    dependencies=[Depends(no_store)],
)
async def create_key(
    body: ApiKeyCreate, member: AccountManager, session: DbSession
) -> Data[ApiKeyCreated]:
    """Create a key (owner/admin). The plaintext is in this response and nowhere else, ever."""
    created = await service.create_key(
        session,
        account_id=member.account_id,
        actor=member.actor,
        name=body.name,
        scopes=body.scopes,
        expires_in_days=body.expires_in_days,
        expires_at=body.expires_at,
    )
    return Data(data=ApiKeyCreated.of(created, utcnow(), member.email))


@session_router.delete(
    "/{key_id}", response_model=Data[ApiKeyOut], responses=error_responses(401, 403, 404, 409)
)
async def revoke_key(
    key_id: uuid.UUID, member: AccountManager, session: DbSession
) -> Data[ApiKeyOut]:
    """Revoke a key (owner/admin): its next request fails, on every process. No un-revoke."""
    key = await service.revoke_key(
        session, account_id=member.account_id, key_id=key_id, actor=member.actor
    )
    # As the roster shows it: who created the key is not who revoked it.
    entry = await service.roster_entry(session, member.account_id, key.id)
    return Data(data=ApiKeyOut.of_row(entry, utcnow()))


@session_router.post(
    "/{key_id}/roll",
    status_code=201,
    response_model=Data[ApiKeyRolled],
    responses=error_responses(401, 403, 404, 409),
    dependencies=[Depends(no_store)],
)
async def roll_key(
    key_id: uuid.UUID, member: AccountManager, session: DbSession, body: ApiKeyRoll | None = None
) -> Data[ApiKeyRolled]:
    """Replace a key with a new one of the same name and scopes (owner/admin).

    With a grace period the old key keeps working until it ends (at most 7 days);
    without one it is revoked now.
    """
    created, old = await service.roll_key(
        session,
        account_id=member.account_id,
        key_id=key_id,
        actor=member.actor,
        grace_period_hours=(body or ApiKeyRoll()).grace_period_hours,
    )
    previous = await service.roster_entry(session, member.account_id, old.id)
    return Data(data=ApiKeyRolled.of_roll(created, previous, utcnow(), member.email))


@v1_router.get("/me", response_model=Data[Me], responses=error_responses(401))
async def me(principal: AnyKey, request: Request) -> Data[Me]:
    """The account and key making this request. Needs no scope: use it to check a key."""
    return Data(
        data=Me(
            account=MeAccount(id=principal.account_id, name=principal.account_name),
            key=MeKey(
                id=principal.key_id,
                name=principal.key_name,
                prefix=principal.prefix,
                scopes=[s.value for s in Scope if s.value in principal.scopes],
                expires_at=principal.expires_at,
            ),
        )
    )
