"""Worker jobs for the inbound webhook: payloads still pending after a crash or an error."""

from __future__ import annotations

from datetime import timedelta

from wacrm.kit.clock import utcnow
from wacrm.kit.db import Database
from wacrm.settings import Settings
from wacrm.whatsapp import inbox_repository
from wacrm.whatsapp.inbound import process_payload

# A claimed payload is the claimer's for this long; if that worker dies, another takes it.
WORKER_LEASE = timedelta(minutes=5)


async def process_due_payloads(database: Database, settings: Settings, limit: int = 50) -> int:
    """Process up to ``limit`` pending payloads whose retry time has come.

    Returns how many were taken (processed or failed again), so a worker loop can poll
    again at once when it got a full batch. Safe with any number of workers.
    """
    now = utcnow()
    async with database.sessions() as session:
        due = await inbox_repository.claim_due(
            session, now=now, lease_until=now + WORKER_LEASE, limit=limit
        )
        await session.commit()
    for payload_id in due:
        await process_payload(database, settings, payload_id)
    return len(due)
