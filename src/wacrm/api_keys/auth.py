"""The Bearer authenticator of ``/api/v1`` and the scope requirement every route declares.

Every failure is the same 401: the body never says whether the key was malformed,
unknown, revoked or expired. There is deliberately no cache of keys: every request does
one indexed lookup (a single round trip, outside any transaction), so a revocation is
seen by the very next request on every process. A cache invalidated by LISTEN/NOTIFY
was tried and measured faster, but a process can serve a request before the
notification reaches it, so it could not keep that promise.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from wacrm.api_keys import repository
from wacrm.api_keys.scopes import Scope
from wacrm.api_keys.secret import KEY_LENGTH, hash_key, is_well_formed
from wacrm.kit.clock import utcnow
from wacrm.kit.db import get_database
from wacrm.kit.errors import Forbidden, RateLimited, Unauthorized
from wacrm.kit.http import client_ip
from wacrm.kit.idempotency import run_idempotently
from wacrm.kit.ratelimit import RateLimiter, RateLimitStatus
from wacrm.settings import Settings
from wacrm.telemetry.context import bind_account
from wacrm.telemetry.metrics import auth_failed

# One or more spaces between scheme and token; anything after the token is an error.
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +(\S+)")
_MAX_HEADER = KEY_LENGTH + 64


@dataclass(frozen=True)
class ApiPrincipal:
    """An authenticated API key: the account it belongs to and what it may do."""

    key_id: uuid.UUID
    account_id: uuid.UUID
    account_name: str
    key_name: str
    prefix: str
    scopes: frozenset[str]
    expires_at: datetime | None


def bearer_token(header: str | None) -> str | None:
    if not header or len(header) > _MAX_HEADER:
        return None
    header = header.strip(" \t")  # only HTTP whitespace: str.strip() would eat NBSP and NEL
    if header.startswith("wacrm_") and " " not in header:
        return header
    match = _BEARER.fullmatch(header)
    return match.group(1) if match else None


class _LastUsedWriter:
    """Keeps ``last_used_at`` writes to about one a minute per key, whatever the traffic."""

    def __init__(self) -> None:
        self._written: dict[uuid.UUID, float] = {}

    def due(self, record: repository.AuthRecord, now: datetime, interval: int) -> bool:
        if record.last_used_at is not None and now - record.last_used_at < timedelta(
            seconds=interval
        ):
            return False
        last = self._written.get(record.key_id)
        return last is None or time.monotonic() - last >= interval

    def mark(self, key_id: uuid.UUID) -> None:
        if len(self._written) > 100_000:
            self._written.clear()
        self._written[key_id] = time.monotonic()


_last_used = _LastUsedWriter()


def _limit(request: Request, status: RateLimitStatus) -> RateLimitStatus:
    request.state.rate_limit = status  # read back by RateLimitHeadersMiddleware
    return status


async def authenticate(request: Request) -> ApiPrincipal:
    """The request's key, authenticated (and rate-limited) once per request."""
    known: ApiPrincipal | None = getattr(request.state, "principal", None)
    if known is not None:
        return known
    principal = await _authenticate(request)
    request.state.principal = principal
    return principal


async def _authenticate(request: Request) -> ApiPrincipal:
    settings: Settings = request.app.state.settings
    limiter: RateLimiter = request.app.state.rate_limiter
    ip = client_ip(request)
    per_ip = settings.auth_failures_per_minute

    blocked = await limiter.peek("auth-fail", ip, per_ip)
    if not blocked.allowed:
        _limit(request, blocked)
        auth_failed("api_key", "rate_limited")
        raise RateLimited("Too many failed authentications from this address; retry later.")

    principal = await _lookup(request, settings)
    if isinstance(principal, AuthFailure):
        auth_failed("api_key", principal.value)
        failure = _limit(request, await limiter.hit("auth-fail", ip, per_ip))
        if not failure.allowed:
            raise RateLimited("Too many failed authentications from this address; retry later.")
        raise Unauthorized()
    bind_account(principal.account_id)

    status = _limit(
        request,
        await limiter.hit("api-key", str(principal.key_id), settings.rate_limit_per_minute),
    )
    if not status.allowed:
        raise RateLimited("Rate limit exceeded for this API key; retry later.")
    return principal


class AuthFailure(StrEnum):
    """Why a key was refused: for metrics only, never for the client (always the same 401)."""

    MISSING = "missing"
    MALFORMED = "malformed"  # not a bearer header, or not a well-formed key (checksum)
    UNKNOWN = "unknown"
    REVOKED = "revoked"
    EXPIRED = "expired"


async def _lookup(request: Request, settings: Settings) -> ApiPrincipal | AuthFailure:
    header = request.headers.get("authorization")
    if not header:
        return AuthFailure.MISSING
    token = bearer_token(header)
    if token is None or not is_well_formed(token):
        return AuthFailure.MALFORMED  # rejected without touching the database
    database = get_database(request)
    async with database.autocommit.connect() as connection:
        record = await repository.find_for_auth(connection, hash_key(token))
    now = utcnow()
    if record is None:
        return AuthFailure.UNKNOWN
    if record.revoked_at is not None:
        return AuthFailure.REVOKED
    if record.expires_at is not None and record.expires_at <= now:
        return AuthFailure.EXPIRED
    interval = settings.last_used_write_interval_seconds
    if _last_used.due(record, now, interval):
        _last_used.mark(record.key_id)
        async with database.sessions() as own:
            await repository.touch_last_used(
                own, record.key_id, now, now - timedelta(seconds=interval)
            )
            await own.commit()
    return ApiPrincipal(
        key_id=record.key_id,
        account_id=record.account_id,
        account_name=record.account_name,
        key_name=record.name,
        prefix=record.prefix,
        scopes=frozenset(record.scopes),
        expires_at=record.expires_at,
    )


AnyKey = Annotated[ApiPrincipal, Depends(authenticate)]


def _declared_scope_checks(dependant: Dependant) -> list[Callable[..., Awaitable[Any]]]:
    checks: list[Callable[..., Awaitable[Any]]] = []
    for sub in dependant.dependencies:
        if sub.call is not None and getattr(sub.call, "required_scope", None) is not None:
            checks.append(sub.call)
        checks += _declared_scope_checks(sub)
    return checks


class PublicRoute(APIRoute):
    """A route of ``/api/v1``: key, rate limit and scope are checked before the body is
    even parsed (no input is looked at for a caller who may not call), then POSTs run
    under their Idempotency-Key."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        scope_checks = _declared_scope_checks(self.dependant)

        async def route_handler(request: Request) -> Response:
            principal = await authenticate(request)
            for check in scope_checks:
                await check(principal)
            return await run_idempotently(request, principal.account_id, handle)

        return route_handler


def public_router(**options: Any) -> APIRouter:
    """A router for ``/api/v1`` (see ``PublicRoute``)."""
    return APIRouter(route_class=PublicRoute, **options)


def require_scope(scope: Scope) -> Callable[[ApiPrincipal], Awaitable[ApiPrincipal]]:
    """A dependency that admits keys holding ``scope``; the scope is readable by tests."""

    async def check(principal: AnyKey) -> ApiPrincipal:
        if scope.value not in principal.scopes:
            raise Forbidden(f"This API key lacks the required scope '{scope.value}'.")
        return principal

    check.required_scope = scope  # type: ignore[attr-defined]
    return check
