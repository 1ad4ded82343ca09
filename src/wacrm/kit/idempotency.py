"""``Idempotency-Key`` on every POST of ``/api/v1`` (SPEC §4).

Within 24 hours, the same key with the same request replays the stored response
(``Idempotent-Replayed: true``); with a different request it is ``422
idempotency_key_reused``; while the first request still runs it is ``409
idempotency_key_in_use``. Keys are scoped to the account. Responses of 5xx and
unexpected errors are not stored, so the client may retry them.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import timedelta

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from wacrm.kit.clock import utcnow
from wacrm.kit.crypto import decrypt, encrypt
from wacrm.kit.db import Database, get_database
from wacrm.kit.errors import AppError, Conflict, field_error
from wacrm.kit.text import text_problem
from wacrm.models import IdempotencyRecord

HEADER = "Idempotency-Key"
TTL = timedelta(hours=24)
# A record still "in progress" this long after it began belongs to a process that died.
ABANDONED_AFTER = timedelta(minutes=5)
MAX_KEY_LENGTH = 255


class IdempotencyKeyReused(AppError):
    status, code = 422, "idempotency_key_reused"


class IdempotencyKeyInUse(AppError):
    status, code = 409, "idempotency_key_in_use"


def _request_hash(request: Request, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.url.path.encode(), body):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def _validate_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH or text_problem(key) or not key.isprintable():
        raise field_error(HEADER, f"must be 1-{MAX_KEY_LENGTH} printable characters")
    return key


def _seal(secret_key: str, body: bytes) -> bytes:
    """Stored responses may hold secrets shown once (a webhook's signing secret): encrypted."""
    return encrypt(secret_key, body.decode("utf-8", "surrogateescape")).encode()


def _open(secret_key: str, sealed: bytes | None) -> bytes:
    if sealed is None:
        return b""
    return decrypt(secret_key, sealed.decode()).encode("utf-8", "surrogateescape")


async def _begin(
    database: Database, secret_key: str, account_id: uuid.UUID, key: str, request_hash: str
) -> Response | None:
    """Claim the key, or answer from what it already holds."""
    now = utcnow()
    for _ in range(2):
        async with database.sessions() as session:
            existing = (
                await session.execute(
                    select(IdempotencyRecord).where(
                        IdempotencyRecord.account_id == account_id, IdempotencyRecord.key == key
                    )
                )
            ).scalar_one_or_none()
            abandoned = (
                existing is not None
                and existing.response_status is None
                and existing.created_at < now - ABANDONED_AFTER
            )
            if existing is not None and (existing.expires_at <= now or abandoned):
                await session.execute(
                    delete(IdempotencyRecord).where(IdempotencyRecord.id == existing.id)
                )
                await session.commit()
                continue
            if existing is not None:
                if existing.request_hash != request_hash:
                    raise IdempotencyKeyReused(
                        "This Idempotency-Key was used with a different request."
                    )
                if existing.response_status is None:
                    raise IdempotencyKeyInUse(
                        "A request with this Idempotency-Key is still in progress."
                    )
                return Response(
                    content=_open(secret_key, existing.response_body),
                    status_code=existing.response_status,
                    media_type="application/json",
                    # The stored answer may show a secret once (a webhook's): never cached.
                    headers={"Idempotent-Replayed": "true", "Cache-Control": "no-store"},
                )
            session.add(
                IdempotencyRecord(
                    account_id=account_id,
                    key=key,
                    request_hash=request_hash,
                    created_at=now,
                    expires_at=now + TTL,
                )
            )
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                continue  # a concurrent twin claimed it first: read what it holds
            return None
    raise Conflict("Could not claim the Idempotency-Key; retry.")


async def _finish(
    database: Database,
    secret_key: str,
    account_id: uuid.UUID,
    key: str,
    status: int | None,
    body: bytes,
) -> None:
    async with database.sessions() as session:
        where = (IdempotencyRecord.account_id == account_id, IdempotencyRecord.key == key)
        if status is None:
            await session.execute(delete(IdempotencyRecord).where(*where))
        else:
            await session.execute(
                update(IdempotencyRecord)
                .where(*where)
                .values(response_status=status, response_body=_seal(secret_key, body))
            )
        await session.commit()


async def _handle_and_commit(
    handle: Callable[[Request], Awaitable[Response]], request: Request
) -> Response:
    """Run the handler and close its function-scoped dependencies (the DbSession commits)
    before we store the response: a replay must never describe an effect that rolled back.

    FastAPI would otherwise close them only after this route handler returns.
    """
    async with AsyncExitStack() as dependencies:
        previous = request.scope.get("fastapi_function_astack")
        request.scope["fastapi_function_astack"] = dependencies
        try:
            return await handle(request)
        finally:
            request.scope["fastapi_function_astack"] = previous


async def run_idempotently(
    request: Request,
    account_id: uuid.UUID,
    handle: Callable[[Request], Awaitable[Response]],
) -> Response:
    """Run a POST under its Idempotency-Key (if it has one) for the authenticated account."""
    raw_key = request.headers.get(HEADER)
    if request.method != "POST" or raw_key is None:
        return await handle(request)
    key = _validate_key(raw_key)
    database = get_database(request)
    secret_key: str = request.app.state.settings.secret_key
    request_hash = _request_hash(request, await request.body())
    replay = await _begin(database, secret_key, account_id, key, request_hash)
    if replay is not None:
        return replay
    try:
        response = await _handle_and_commit(handle, request)
    except AppError as exc:
        error = JSONResponse(exc.envelope(), status_code=exc.status)
        await _finish(database, secret_key, account_id, key, exc.status, bytes(error.body))
        raise
    except BaseException:
        await _finish(database, secret_key, account_id, key, None, b"")
        raise
    stored = response.status_code if response.status_code < 500 else None
    await _finish(database, secret_key, account_id, key, stored, bytes(response.body))
    return response
