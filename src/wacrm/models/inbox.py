"""Raw inbound webhook payloads, stored before Meta gets its 200, processed after."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from wacrm.kit.clock import utcnow
from wacrm.kit.db import Base, UTCDateTime, new_id


class InboxState(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"  # gave up after repeated errors; kept for inspection


class InboundPayload(Base):
    __tablename__ = "inbound_payloads"
    __table_args__ = (Index("ix_inbound_payloads_due", "state", "next_attempt_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(16), default=InboxState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class EarlyStatus(Base):
    """A delivery status whose wamid no message of the account carries yet.

    Meta (and the sandbox) can report ``sent`` before the send that got the wamid has
    committed it. Such a status waits here until the message appears, then is applied
    (``whatsapp.tasks.apply_early_statuses``); one that never finds its message (a send
    made outside wacrm) is dropped after ``EARLY_STATUS_TTL``.
    """

    __tablename__ = "early_statuses"
    __table_args__ = (
        Index("ix_early_statuses_account_id_wamid", "account_id", "wamid"),
        Index("ix_early_statuses_received_at", "received_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    wamid: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    raw: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
