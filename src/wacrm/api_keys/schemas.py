"""API keys on the wire. Serializers whitelist fields: the hash and secret never leave."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from wacrm.api_keys.repository import RosterRow
from wacrm.api_keys.scopes import Scope
from wacrm.api_keys.service import CreatedKey, KeyStatus, key_status
from wacrm.models import ApiKey


class ApiKeyCreate(BaseModel):
    name: str = Field(description="1-80 characters, no control characters", examples=["n8n prod"])
    scopes: list[str] = Field(
        default_factory=list,
        description=f"Any of: {', '.join(s.value for s in Scope)}. May be empty.",
        max_length=64,
    )
    expires_in_days: int | None = Field(
        None, strict=True, description="Expire this many days from now (1-365); or use expires_at"
    )
    expires_at: str | None = Field(
        None,
        max_length=64,
        description="ISO-8601 date-time with a UTC offset, in the future, at most 365 days ahead",
    )


class ApiKeyRoll(BaseModel):
    grace_period_hours: int = Field(
        0,
        strict=True,
        description="Keep the old key working this long (0-168 hours); 0 = revoke now",
    )


class Person(BaseModel):
    id: uuid.UUID = Field(description="User id")
    email: str = Field(description="User email")


class ApiKeyOut(BaseModel):
    id: uuid.UUID = Field(description="Key id")
    name: str = Field(description="Human label")
    prefix: str = Field(description="Non-secret display prefix, e.g. wacrm_live_a1b2c3d4")
    scopes: list[str] = Field(description="What the key may do")
    status: KeyStatus = Field(description="active, expired or revoked")
    created_at: datetime = Field(description="When it was created (UTC)")
    created_by: Person | None = Field(description="Who created it (null: CLI or removed user)")
    expires_at: datetime | None = Field(description="When it stops working; null = never")
    last_used_at: datetime | None = Field(description="Last use, to about a minute")
    revoked_at: datetime | None = Field(description="When it was revoked")
    revoked_by: Person | None = Field(description="Who revoked it")
    rolled_to_id: uuid.UUID | None = Field(description="The replacement key, if it was rolled")

    @classmethod
    def of(
        cls,
        key: ApiKey,
        now: datetime,
        created_by_email: str | None = None,
        revoked_by_email: str | None = None,
    ) -> ApiKeyOut:
        return cls(
            id=key.id,
            name=key.name,
            prefix=key.prefix,
            scopes=list(key.scopes),
            status=key_status(key, now),
            created_at=key.created_at,
            created_by=_person(key.created_by_id, created_by_email),
            expires_at=key.expires_at,
            last_used_at=key.last_used_at,
            revoked_at=key.revoked_at,
            revoked_by=_person(key.revoked_by_id, revoked_by_email),
            rolled_to_id=key.rolled_to_id,
        )

    @classmethod
    def of_row(cls, row: RosterRow, now: datetime) -> ApiKeyOut:
        return cls.of(row.key, now, row.created_by_email, row.revoked_by_email)


def _person(user_id: uuid.UUID | None, email: str | None) -> Person | None:
    return None if user_id is None or email is None else Person(id=user_id, email=email)


class ApiKeyCreated(BaseModel):
    key: ApiKeyOut = Field(description="The new key's metadata")
    plaintext: str = Field(description="The secret. Shown this once only: store it now.")

    @classmethod
    def of(cls, created: CreatedKey, now: datetime, created_by_email: str) -> ApiKeyCreated:
        return cls(
            key=ApiKeyOut.of(created.key, now, created_by_email), plaintext=created.plaintext
        )


class ApiKeyRolled(ApiKeyCreated):
    previous: ApiKeyOut = Field(description="The old key, revoked or expiring after the grace")

    @classmethod
    def of_roll(
        cls, created: CreatedKey, previous: RosterRow, now: datetime, created_by_email: str
    ) -> ApiKeyRolled:
        return cls(
            key=ApiKeyOut.of(created.key, now, created_by_email),
            plaintext=created.plaintext,
            previous=ApiKeyOut.of_row(previous, now),
        )


class MeAccount(BaseModel):
    id: uuid.UUID = Field(description="Account id")
    name: str = Field(description="Account name")


class MeKey(BaseModel):
    id: uuid.UUID = Field(description="Key id")
    name: str = Field(description="Key name")
    prefix: str = Field(description="Display prefix")
    scopes: list[str] = Field(description="Scopes of this key")
    expires_at: datetime | None = Field(description="Expiry; null = never")


class Me(BaseModel):
    account: MeAccount = Field(description="The account the key belongs to")
    key: MeKey = Field(description="The key making this request")
