"""Queue depths for ``/metrics``: one round trip of three indexed counts.

Deliberately across all accounts: these are facts about the deployment's backlog, read
only by the operator's scraper, and they carry no account data.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from wacrm.models import BroadcastRecipient, RecipientStatus
from wacrm.models.inbox import InboundPayload, InboxState
from wacrm.models.webhooks import DeliveryStatus, WebhookDelivery


async def queue_depths(connection: AsyncConnection, now: datetime) -> dict[str, int]:
    # Each count is served by an index (ix_webhook_deliveries_due is partial on pending,
    # ix_broadcast_recipients_claim and ix_inbound_payloads_due lead with the status).
    deliveries_due = (
        select(func.count())
        .select_from(WebhookDelivery)
        .where(
            WebhookDelivery.status == DeliveryStatus.PENDING.value,
            WebhookDelivery.next_attempt_at <= now,
        )
        .scalar_subquery()
    )
    recipients_pending = (
        select(func.count())
        .select_from(BroadcastRecipient)
        .where(BroadcastRecipient.status == RecipientStatus.PENDING.value)
        .scalar_subquery()
    )
    payloads_pending = (
        select(func.count())
        .select_from(InboundPayload)
        .where(InboundPayload.state == InboxState.PENDING.value)
        .scalar_subquery()
    )
    row = (
        await connection.execute(select(deliveries_due, recipients_pending, payloads_pending))
    ).one()
    return {
        "webhook_deliveries_due": int(row[0]),
        "broadcast_recipients_pending": int(row[1]),
        "inbound_payloads_pending": int(row[2]),
    }
