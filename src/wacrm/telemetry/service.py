"""What a scrape of ``/metrics`` returns, and who may read it."""

from __future__ import annotations

import hmac
import logging

from wacrm.kit.clock import utcnow
from wacrm.kit.db import Database
from wacrm.kit.errors import Unauthorized
from wacrm.telemetry import repository
from wacrm.telemetry.metrics import auth_failed, exposition

logger = logging.getLogger(__name__)


def check_metrics_token(expected: str | None, authorization: str | None) -> None:
    """With ``WACRM_METRICS_TOKEN`` set, the scraper must present it as a bearer token."""
    if not expected:
        return
    scheme, _, presented = (authorization or "").strip(" \t").partition(" ")
    if not authorization:
        reason = "missing"
    elif scheme.lower() != "bearer":
        reason = "malformed"
    elif not hmac.compare_digest(presented.strip(" \t").encode(), expected.encode()):
        reason = "wrong"
    else:
        return
    auth_failed("metrics_token", reason)
    raise Unauthorized()


async def scrape(database: Database) -> bytes:
    """Process metrics plus queue depths read now; a database that does not answer is
    reported as ``wacrm_database_up 0`` rather than failing the scrape."""
    try:
        async with database.autocommit.connect() as connection:
            depths = await repository.queue_depths(connection, utcnow())
    except Exception as exc:
        logger.warning("metrics: queue depths unavailable: %s", exc)
        depths = None
    return exposition(depths)
