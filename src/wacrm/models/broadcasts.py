"""Broadcasts: one template sent to many numbers, one row per recipient.

The recipient rows are the queue: workers claim ``pending`` rows, mark them ``sending``
and commit before calling Meta, so no two workers ever send to one recipient and a crash
mid-send leaves a ``sending`` row that is settled as ``unknown``, never sent again.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from wacrm.kit.clock import utcnow
from wacrm.kit.db import Base, UTCDateTime, new_id


class BroadcastStatus(StrEnum):
    QUEUED = "queued"  # accepted, no recipient claimed yet
    SENDING = "sending"  # workers are sending
    COMPLETED = "completed"  # every recipient was handed to WhatsApp (or settled)
    CANCELLED = "cancelled"  # stopped: its pending recipients were never sent


class RecipientStatus(StrEnum):
    PENDING = "pending"  # waiting for a worker
    SENDING = "sending"  # claimed by a worker; Meta may be being called right now
    SENT = "sent"  # handed to its message (accepted by Meta, or left to the retry job)
    FAILED = "failed"  # Meta refused it
    UNKNOWN = "unknown"  # the send may or may not have happened; never sent again
    CANCELLED = "cancelled"  # the broadcast was cancelled before it was sent


class Broadcast(Base):
    __tablename__ = "broadcasts"
    __table_args__ = (
        Index("ix_broadcasts_account_created", "account_id", "created_at", "id"),
        Index("ix_broadcasts_status_created", "status", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    channel_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("channels.id", ondelete="SET NULL")
    )
    name: Mapped[str] = mapped_column(String(200))
    template_name: Mapped[str] = mapped_column(String(512))
    template_language: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=BroadcastStatus.QUEUED.value)
    # Distinct numbers considered (accepted + rejected); duplicates are collapsed first.
    total_recipients: Mapped[int] = mapped_column(Integer, default=0)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class BroadcastRecipient(Base):
    __tablename__ = "broadcast_recipients"
    __table_args__ = (
        UniqueConstraint("broadcast_id", "phone"),
        # Claiming: a broadcast's pending rows in request order.
        Index("ix_broadcast_recipients_claim", "status", "broadcast_id", "position"),
        Index("ix_broadcast_recipients_page", "broadcast_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    broadcast_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("broadcasts.id", ondelete="CASCADE"))
    # Index of the recipient in the request that created the broadcast.
    position: Mapped[int] = mapped_column(Integer)
    phone: Mapped[str] = mapped_column(String(32))
    params: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default=RecipientStatus.PENDING.value)
    message_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), index=True
    )
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
