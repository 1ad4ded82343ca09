"""Broadcasts on the wire. Responses are built field by field from rows."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from wacrm.broadcasts.repository import BroadcastCounts, RecipientRow
from wacrm.models import Broadcast

MAX_RECIPIENTS = 10_000

RecipientState = Literal[
    "pending", "sending", "retrying", "sent", "delivered", "read", "failed", "unknown", "cancelled"
]
_RECIPIENT_STATES = (
    "`pending` (waiting), `sending` (being sent now), `retrying` (WhatsApp said later; "
    "retried automatically), `sent`, `delivered`, `read` (WhatsApp's delivery statuses), "
    "`failed` (refused; see `error`), `unknown` (the send timed out or its worker died: it "
    "may have been sent, and is never sent again), `cancelled` (the broadcast was cancelled)"
)


class BroadcastRecipientIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(
        description="Phone number with its country code (`+1 415 555 0123`), normalised to "
        "E.164. An invalid number does not fail the request: it is counted in `rejected`."
    )
    params: list[str] | None = Field(
        None,
        max_length=100,
        description="The template's body parameters {{1}}, {{2}}… for this recipient, in "
        "order. Each 1-1024 characters, without newlines, tabs or more than 4 consecutive "
        "spaces (WhatsApp refuses those): a bad one is a 400 naming the recipient and position.",
    )


class BroadcastCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=1000, description="Your name for the campaign (1-200 chars)")
    template_name: str = Field(
        max_length=512, description="Approved template to send, e.g. `order_update`"
    )
    template_language: str = Field(
        max_length=16, description="The template's language code, e.g. `en_US`"
    )
    channel_id: uuid.UUID | None = Field(
        None, description="Send from this WhatsApp number; default: the account's default number"
    )
    recipients: list[BroadcastRecipientIn] = Field(
        min_length=1,
        max_length=MAX_RECIPIENTS,
        description=f"1-{MAX_RECIPIENTS:,} recipients. The same number twice (after "
        "normalisation) is sent once: the first occurrence wins.",
    )


class RejectedRecipient(BaseModel):
    index: int = Field(description="Position of the recipient in `recipients` (0-based)")
    reason: str = Field(description="Why the number was not accepted")


class BroadcastCreated(BaseModel):
    broadcast_id: uuid.UUID = Field(description="The new broadcast")
    status: str = Field(description="`queued` (or `completed` when no number was accepted)")
    total_recipients: int = Field(
        description="Distinct recipients considered: `accepted` + `rejected`"
    )
    accepted: int = Field(description="Valid, distinct numbers that will be sent the template")
    rejected: int = Field(description="Invalid numbers, not sent (see `rejected_recipients`)")
    duplicates: int = Field(
        description="Entries collapsed into an earlier one with the same number"
    )
    rejected_recipients: list[RejectedRecipient] = Field(
        description="Each rejected entry with its index and reason"
    )


class BroadcastCountsOut(BaseModel):
    sent: int = Field(description="Accepted by WhatsApp (includes delivered and read)")
    delivered: int = Field(description="Delivered to the phone (includes read)")
    read: int = Field(description="Read by the customer")
    failed: int = Field(description="Refused by WhatsApp, at sending or later")
    unknown: int = Field(description="Outcome unknown (timeout or worker crash); never re-sent")
    pending: int = Field(description="Not sent yet: waiting, being sent, or awaiting a retry")
    cancelled: int = Field(description="Never sent because the broadcast was cancelled")

    @classmethod
    def of(cls, counts: BroadcastCounts) -> BroadcastCountsOut:
        return cls(**counts.as_dict())


class BroadcastOut(BaseModel):
    id: uuid.UUID = Field(description="Broadcast id")
    name: str = Field(description="Your name for the campaign")
    channel_id: uuid.UUID | None = Field(description="The number it is sent from")
    template_name: str = Field(description="Template sent")
    template_language: str = Field(description="Template language code")
    status: str = Field(description="`queued`, `sending`, `completed` or `cancelled`")
    total_recipients: int = Field(description="Distinct recipients considered")
    accepted: int = Field(description="Recipients to send to")
    rejected: int = Field(description="Invalid numbers, not sent")
    duplicates: int = Field(description="Entries collapsed as duplicates")
    counts: BroadcastCountsOut = Field(
        description="Accepted recipients by outcome, following WhatsApp's status webhooks; "
        "sent + failed + unknown + pending + cancelled = accepted"
    )
    created_at: datetime = Field(description="When it was created")
    started_at: datetime | None = Field(description="When the first recipient was claimed")
    completed_at: datetime | None = Field(
        description="When every recipient had been handed to WhatsApp; counts keep following "
        "delivery statuses afterwards"
    )
    cancelled_at: datetime | None = Field(description="When it was cancelled")

    @classmethod
    def of(cls, broadcast: Broadcast, counts: BroadcastCounts) -> BroadcastOut:
        return cls(
            id=broadcast.id,
            name=broadcast.name,
            channel_id=broadcast.channel_id,
            template_name=broadcast.template_name,
            template_language=broadcast.template_language,
            status=broadcast.status,
            total_recipients=broadcast.total_recipients,
            accepted=broadcast.accepted,
            rejected=broadcast.rejected,
            duplicates=broadcast.duplicates,
            counts=BroadcastCountsOut.of(counts),
            created_at=broadcast.created_at,
            started_at=broadcast.started_at,
            completed_at=broadcast.completed_at,
            cancelled_at=broadcast.cancelled_at,
        )


class BroadcastRecipientOut(BaseModel):
    id: uuid.UUID = Field(description="Recipient id")
    phone: str = Field(description="E.164 number")
    params: list[str] = Field(description="Template body parameters sent to this recipient")
    status: str = Field(description=_RECIPIENT_STATES)
    message_id: uuid.UUID | None = Field(
        description="The message sent (see `GET /messages/{id}`); null until it is sent"
    )
    whatsapp_message_id: str | None = Field(description="Meta's wamid, once accepted")
    error: dict[str, Any] | None = Field(description="WhatsApp's error, for failed recipients")
    created_at: datetime = Field(description="When it was added")
    updated_at: datetime = Field(description="Last change of the recipient itself")

    @classmethod
    def of(cls, row: RecipientRow) -> BroadcastRecipientOut:
        return cls(
            id=row.id,
            phone=row.phone,
            params=row.params,
            status=row.status,
            message_id=row.message_id,
            whatsapp_message_id=row.wamid,
            error=row.error,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
