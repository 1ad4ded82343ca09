"""Login and session payloads."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field

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
