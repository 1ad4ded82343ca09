"""Login and session payloads, and the account roster the CLI prints."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from wacrm.accounts.repository import AccountRow
from wacrm.models import Role


class LoginRequest(BaseModel):
    email: str = Field(max_length=320, description="Your email")
    password: str = Field(max_length=1024, description="Your password")
    account_id: uuid.UUID | None = Field(
        None, description="Which account to act in, if you belong to several"
    )


class SessionInfo(BaseModel):
    user_id: uuid.UUID = Field(description="You")
    email: str = Field(description="Your email")
    account_id: uuid.UUID = Field(description="The account this session acts in")
    account_name: str = Field(description="Its name")
    role: Role = Field(description="Your role there")
    csrf_token: str = Field(
        description="Send as the X-CSRF-Token header on every POST/PATCH/DELETE of the session API"
    )


class AccountOut(BaseModel):
    """One account of the installation, as ``wacrm accounts list`` prints it."""

    id: uuid.UUID = Field(description="The account id other commands take as --account")
    name: str = Field(description="The account's name")
    owner_email: str | None = Field(description="Its owner's login email")
    created_at: datetime = Field(description="When it was created (UTC)")

    @classmethod
    def of_row(cls, row: AccountRow) -> AccountOut:
        return cls(
            id=row.account_id, name=row.name, owner_email=row.owner_email, created_at=row.created_at
        )
