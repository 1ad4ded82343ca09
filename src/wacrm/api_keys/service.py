"""Creating, listing, revoking and rolling API keys: every rule of SPEC §3 lives here."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.api_keys import repository
from wacrm.api_keys.scopes import Scope
from wacrm.api_keys.secret import NewSecret, generate_secret
from wacrm.audit.service import Actor, record
from wacrm.kit.clock import utcnow
from wacrm.kit.errors import BadRequest, Conflict, NotFound, field_error
from wacrm.kit.text import clean_name, text_problem
from wacrm.models import ApiKey

MAX_NAME_LENGTH = 80
MAX_EXPIRY_DAYS = 365
MAX_GRACE_HOURS = 7 * 24


class KeyStatus(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True, repr=False)
class CreatedKey:
    key: ApiKey
    plaintext: str


def key_status(key: ApiKey, now: datetime) -> KeyStatus:
    if key.revoked_at is not None:
        return KeyStatus.REVOKED
    if key.expires_at is not None and key.expires_at <= now:
        return KeyStatus.EXPIRED
    return KeyStatus.ACTIVE


def validate_name(name: str) -> str:
    try:
        return clean_name(name, max_length=MAX_NAME_LENGTH)
    except ValueError as exc:
        raise field_error("name", str(exc)) from None


def validate_scopes(scopes: Iterable[str]) -> list[str]:
    """Known scopes only, duplicates collapsed, in the canonical order."""
    requested = set(scopes)
    unknown = sorted(requested - set(Scope))
    if unknown:
        raise BadRequest(
            f"Unknown scope(s): {', '.join(repr(s[:40]) for s in unknown[:7])}.",
            details=[{"field": "scopes", "message": f"unknown scope {s[:40]!r}"} for s in unknown],
        )
    return [scope.value for scope in Scope if scope.value in requested]


def resolve_expiry(
    now: datetime, *, expires_in_days: int | None, expires_at: str | None
) -> datetime | None:
    """None means never. Anything out of range is an error, never "never expires"."""
    if expires_in_days is not None and expires_at is not None:
        raise field_error("expires_at", "give expires_in_days or expires_at, not both")
    if expires_in_days is not None:
        if isinstance(expires_in_days, bool) or not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
            raise field_error(
                "expires_in_days", f"must be a whole number from 1 to {MAX_EXPIRY_DAYS}"
            )
        return now + timedelta(days=expires_in_days)
    if expires_at is None:
        return None
    if text_problem(expires_at):
        raise field_error("expires_at", "must be an ISO-8601 date-time")
    try:
        moment = datetime.fromisoformat(expires_at.strip())
    except ValueError:
        raise field_error("expires_at", "must be an ISO-8601 date-time") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise field_error("expires_at", "must carry a UTC offset, e.g. 2027-01-31T12:00:00Z")
    try:
        moment = moment.astimezone(now.tzinfo)
    except OverflowError:  # e.g. 0001-01-01T00:00+14:00 has no UTC equivalent
        raise field_error("expires_at", "is out of range") from None
    if moment <= now:
        raise field_error("expires_at", "must be in the future")
    if moment > now + timedelta(days=MAX_EXPIRY_DAYS):
        raise field_error("expires_at", f"must be at most {MAX_EXPIRY_DAYS} days ahead")
    return moment


def _audit_facts(key: ApiKey) -> dict[str, object]:
    return {
        "name": key.name,
        "prefix": key.prefix,
        "scopes": key.scopes,
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
    }


async def _insert_key(
    session: AsyncSession,
    *,
    account_id: uuid.UUID,
    actor: Actor,
    name: str,
    scopes: list[str],
    expires_at: datetime | None,
    now: datetime,
) -> CreatedKey:
    secret: NewSecret = generate_secret()
    key = ApiKey(
        account_id=account_id,
        name=name,
        prefix=secret.prefix,
        key_hash=secret.key_hash,
        scopes=scopes,
        created_at=now,
        created_by_id=actor.user_id,
        expires_at=expires_at,
    )
    session.add(key)
    await session.flush()
    return CreatedKey(key=key, plaintext=secret.plaintext)


async def create_key(
    session: AsyncSession,
    *,
    account_id: uuid.UUID,
    actor: Actor,
    name: str,
    scopes: Iterable[str],
    expires_in_days: int | None = None,
    expires_at: str | None = None,
) -> CreatedKey:
    now = utcnow()
    created = await _insert_key(
        session,
        account_id=account_id,
        actor=actor,
        name=validate_name(name),
        scopes=validate_scopes(scopes),
        expires_at=resolve_expiry(now, expires_in_days=expires_in_days, expires_at=expires_at),
        now=now,
    )
    await record(
        session,
        account_id=account_id,
        actor=actor,
        action="api_key.created",
        target_type="api_key",
        target_id=created.key.id,
        details=_audit_facts(created.key),
    )
    return created


async def roster(session: AsyncSession, account_id: uuid.UUID) -> list[repository.RosterRow]:
    return await repository.roster(session, account_id)


async def roster_entry(
    session: AsyncSession, account_id: uuid.UUID, key_id: uuid.UUID
) -> repository.RosterRow:
    entry = await repository.roster_entry(session, account_id, key_id)
    if entry is None:
        raise NotFound("API key")
    return entry


async def revoke_key(
    session: AsyncSession, *, account_id: uuid.UUID, key_id: uuid.UUID, actor: Actor
) -> ApiKey:
    if not await repository.mark_revoked(session, account_id, key_id, actor.user_id, utcnow()):
        existing = await repository.get_key(session, account_id, key_id)
        if existing is None:
            raise NotFound("API key")
        raise Conflict("This API key is already revoked.")
    key = await repository.get_key(session, account_id, key_id)
    assert key is not None
    await session.refresh(key)
    await record(
        session,
        account_id=account_id,
        actor=actor,
        action="api_key.revoked",
        target_type="api_key",
        target_id=key.id,
        details=_audit_facts(key),
    )
    return key


async def roll_key(
    session: AsyncSession,
    *,
    account_id: uuid.UUID,
    key_id: uuid.UUID,
    actor: Actor,
    grace_period_hours: int = 0,
) -> tuple[CreatedKey, ApiKey]:
    """A replacement with the same name and scopes; the old key ends now or after the grace."""
    if isinstance(grace_period_hours, bool) or not 0 <= grace_period_hours <= MAX_GRACE_HOURS:
        raise field_error("grace_period_hours", f"must be from 0 to {MAX_GRACE_HOURS} (7 days)")
    old = await repository.get_key(session, account_id, key_id)
    if old is None:
        raise NotFound("API key")
    now = utcnow()
    if key_status(old, now) is KeyStatus.REVOKED:
        raise Conflict("A revoked API key cannot be rolled.")
    if old.rolled_to_id is not None:
        raise Conflict("This API key was already rolled.")

    lifetime = None if old.expires_at is None else old.expires_at - old.created_at
    new_expiry = None
    if lifetime is not None:
        new_expiry = now + min(lifetime, timedelta(days=MAX_EXPIRY_DAYS))
    created = await _insert_key(
        session,
        account_id=account_id,
        actor=actor,
        name=old.name,
        scopes=list(old.scopes),
        expires_at=new_expiry,
        now=now,
    )
    ends_at = now + timedelta(hours=grace_period_hours)
    if old.expires_at is not None:
        ends_at = min(old.expires_at, ends_at)
    linked = await repository.mark_rolled(
        session,
        account_id,
        old.id,
        rolled_to_id=created.key.id,
        ends_at=ends_at,
        revoke=grace_period_hours == 0,
        revoked_by=actor.user_id,
    )
    if not linked:  # a concurrent roll or revoke won; the transaction drops our new key
        raise Conflict("This API key was rolled or revoked meanwhile.")
    await session.refresh(old)
    await record(
        session,
        account_id=account_id,
        actor=actor,
        action="api_key.rolled",
        target_type="api_key",
        target_id=old.id,
        details={
            **_audit_facts(old),
            "new_key_id": str(created.key.id),
            "new_prefix": created.key.prefix,
            "grace_period_hours": grace_period_hours,
        },
    )
    return created, old
