"""What ``POST /sandbox/inbound`` accepts and answers."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

from wacrm.kit.phone import normalise_phone


class InboundMessage(BaseModel):
    """A customer writing to a business number, as the sandbox will tell wacrm about it."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    phone_number_id: str = Field(
        pattern=r"^[0-9]{1,20}$", description="the business number's Meta phone_number_id"
    )
    from_: str = Field(
        alias="from", max_length=40, description="the customer: E.164 (+14155550123) or digits"
    )
    name: str = Field(
        "Sandbox Customer", min_length=1, max_length=256, description="WhatsApp profile name"
    )
    type: Literal["text", "image", "location"] = Field("text", description="message type")
    text: str | None = Field(
        None, min_length=1, max_length=4096, description="text body (type text)"
    )
    link: HttpUrl | None = Field(None, description="image URL (type image)")
    caption: str | None = Field(None, max_length=1024, description="image caption")
    latitude: float | None = Field(None, ge=-90, le=90, description="type location")
    longitude: float | None = Field(None, ge=-180, le=180, description="type location")
    reply_to: str | None = Field(
        None, min_length=1, max_length=256, description="wamid of the business message quoted"
    )

    @field_validator("from_")
    @classmethod
    def _e164(cls, value: str) -> str:
        raw = value.strip()
        return normalise_phone(raw if raw.startswith("+") else "+" + raw)

    @model_validator(mode="after")
    def _fields_for_type(self) -> InboundMessage:
        needed = {"text": ("text",), "image": ("link",), "location": ("latitude", "longitude")}
        missing = [field for field in needed[self.type] if getattr(self, field) is None]
        if missing:
            raise ValueError(f"a {self.type} message needs {', '.join(missing)}")
        return self

    @property
    def wa_id(self) -> str:
        """Meta's wa_id: the E.164 number without its ``+``."""
        return self.from_[1:]

    def content(self) -> dict[str, Any]:
        """The type-specific part of Meta's inbound message object."""
        if self.type == "image":
            link = str(self.link)
            image: dict[str, Any] = {
                "id": str(10**15 + secrets.randbelow(9 * 10**15)),
                "mime_type": "image/jpeg",
                "sha256": hashlib.sha256(link.encode()).hexdigest(),
                "url": link,
            }
            if self.caption:
                image["caption"] = self.caption
            return {"type": "image", "image": image}
        if self.type == "location":
            return {
                "type": "location",
                "location": {"latitude": self.latitude, "longitude": self.longitude},
            }
        return {"type": "text", "text": {"body": self.text}}


class InboundAnswer(BaseModel):
    wamid: str = Field(description="the id the inbound message got")
    webhook_status: int | None = Field(
        description="HTTP status the webhook receiver answered; null if unreachable"
    )
    webhook_error: str | None = Field(None, description="why the webhook was not delivered")
