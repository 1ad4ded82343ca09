"""The delivery queue: leasing due deliveries, and recording what each attempt did.

A claim leases rows: it stamps them with the claimer's token and moves ``next_attempt_at`` to
the end of the lease, in one statement (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite has
one writer at a time). Nobody else can claim them until the lease ends, and the outcome is
only written while the token still matches, so a worker that outlived its lease cannot
overwrite the work of the one that took over.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, and_, bindparam, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.kit.db import UTCDateTime
from wacrm.kit.upsert import insert_many
from wacrm.models import Event
from wacrm.models.webhooks import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from wacrm.webhooks.repository import disable_endpoints
from wacrm.webhooks.transport import AttemptResult, clean_text

MAX_RETRY_AFTER = 24 * 3600.0  # a receiver may ask us to wait, but not forever
_JITTER = 0.1


@dataclass(frozen=True)
class ClaimedDelivery:
    id: uuid.UUID
    lease_token: uuid.UUID
    attempts: int
    endpoint_id: uuid.UUID
    endpoint_active: bool
    url: str
    secret_encrypted: str
    event_id: uuid.UUID
    event_type: str
    occurred_at: datetime
    account_id: uuid.UUID
    data: dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    delivery: ClaimedDelivery
    result: AttemptResult | None  # None: not attempted, the endpoint was disabled meanwhile
    attempted_at: datetime


@dataclass(frozen=True)
class RetryPolicy:
    schedule: Sequence[float]  # delay before attempt 1, 2, ...; its length is the attempt budget
    disable_after_failures: int
    disable_after: timedelta
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self, attempts_made: int, retry_after: float | None) -> float | None:
        """Seconds until the next attempt, or None when the budget is spent."""
        if attempts_made >= len(self.schedule):
            return None
        delay = self.schedule[attempts_made] * self.rng.uniform(1 - _JITTER, 1 + _JITTER)
        if retry_after is not None:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
        return delay


async def claim_due(
    session: AsyncSession, *, now: datetime, lease_until: datetime, token: uuid.UUID, limit: int
) -> list[ClaimedDelivery]:
    """Lease up to ``limit`` due deliveries to ``token``, with what their attempts need."""
    due = and_(
        WebhookDelivery.status == DeliveryStatus.PENDING.value,
        WebhookDelivery.next_attempt_at <= now,
    )
    candidates = (
        select(WebhookDelivery.id).where(due).order_by(WebhookDelivery.next_attempt_at).limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    # Two statements, not ``UPDATE ... WHERE id IN (SELECT ... LIMIT ... SKIP LOCKED)``: in
    # one, PostgreSQL may rescan the subquery for every row (a nested-loop semi-join), and
    # every rescan locks and returns further rows, far past the limit. The rows found here
    # stay locked until commit (PostgreSQL). On SQLite the UPDATE re-checks ``due`` and
    # writers are serialised, so a row leased by someone else meanwhile is not taken; and an
    # idle poll never takes the database's write lock.
    found = list((await session.execute(candidates)).scalars())
    if not found:
        return []
    leased = await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(found), due)
        .values(next_attempt_at=lease_until, lease_token=token)
        .returning(WebhookDelivery.id)
        .execution_options(synchronize_session=False)
    )
    ids = list(leased.scalars())
    if not ids:
        return []
    rows = await session.execute(
        select(
            WebhookDelivery.id,
            WebhookDelivery.attempts,
            WebhookEndpoint.id,
            WebhookEndpoint.is_active,
            WebhookEndpoint.url,
            WebhookEndpoint.secret_encrypted,
            Event.id,
            Event.type,
            Event.occurred_at,
            Event.account_id,
            Event.data,
        )
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .join(Event, Event.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.id.in_(ids))
    )
    return [ClaimedDelivery(row[0], token, *row[1:]) for row in rows]


_deliveries = WebhookDelivery.__table__
assert isinstance(_deliveries, Table)
_SETTLE = (
    update(_deliveries)
    .where(_deliveries.c.id == bindparam("b_id"), _deliveries.c.lease_token == bindparam("b_token"))
    .values(
        status=bindparam("b_status"),
        attempts=bindparam("b_attempts"),
        next_attempt_at=bindparam("b_next", type_=UTCDateTime()),
        lease_token=None,
        last_status_code=bindparam("b_code"),
        last_error=bindparam("b_error"),
        completed_at=bindparam("b_completed", type_=UTCDateTime()),
    )
)


def _settlement(outcome: Outcome, policy: RetryPolicy, now: datetime) -> dict[str, Any]:
    delivery, result = outcome.delivery, outcome.result
    row: dict[str, Any] = {"b_id": delivery.id, "b_token": delivery.lease_token}
    if result is None:
        return row | {
            "b_status": DeliveryStatus.FAILED.value,
            "b_attempts": delivery.attempts,
            "b_next": None,
            "b_code": None,
            "b_error": "endpoint disabled",
            "b_completed": now,
        }
    made = delivery.attempts + 1
    row |= {"b_attempts": made, "b_code": result.status_code, "b_error": result.error}
    delay = None if result.succeeded or result.gone else policy.next_delay(made, result.retry_after)
    if delay is None:
        status = DeliveryStatus.SUCCEEDED if result.succeeded else DeliveryStatus.FAILED
        return row | {"b_status": status.value, "b_next": None, "b_completed": now}
    return row | {
        "b_status": DeliveryStatus.PENDING.value,
        "b_next": now + timedelta(seconds=delay),
        "b_completed": None,
    }


async def record_outcomes(
    session: AsyncSession, outcomes: Sequence[Outcome], policy: RetryPolicy, now: datetime
) -> None:
    """Log every attempt, settle or reschedule each delivery, and keep endpoint health."""
    if not outcomes:
        return
    if session.get_bind().dialect.name == "postgresql":
        # Endpoints before their deliveries, the order a DELETE of an endpoint takes (the
        # endpoint, then its deliveries by cascade): the reverse order deadlocked with it.
        endpoint_ids = sorted({o.delivery.endpoint_id for o in outcomes})
        await session.execute(
            select(WebhookEndpoint.id)
            .where(WebhookEndpoint.id.in_(endpoint_ids))
            .order_by(WebhookEndpoint.id)
            .with_for_update(key_share=True)
        )
    await session.execute(_SETTLE, [_settlement(o, policy, now) for o in outcomes])
    # An endpoint deleted meanwhile took its deliveries with it: log attempts of the others.
    present = select(WebhookDelivery.id).where(
        WebhookDelivery.id.in_([o.delivery.id for o in outcomes])
    )
    if session.get_bind().dialect.name == "postgresql":
        present = present.with_for_update(key_share=True)  # and keep them until we commit
    existing = set((await session.execute(present)).scalars())
    await insert_many(
        session,
        WebhookAttempt,
        [
            {
                "id": uuid.uuid4(),
                "delivery_id": o.delivery.id,
                "number": o.delivery.attempts + 1,
                "attempted_at": o.attempted_at,
                "succeeded": o.result.succeeded,
                "status_code": o.result.status_code,
                "latency_ms": o.result.latency_ms,
                "error": o.result.error,
                "response_body": o.result.response_body,
            }
            for o in outcomes
            if o.result is not None and o.delivery.id in existing
        ],
    )
    await _keep_endpoint_health(session, outcomes, policy, now)


@dataclass
class _Health:
    successes: int = 0
    failures: int = 0
    gone: bool = False
    last_error: str = ""


async def _keep_endpoint_health(
    session: AsyncSession, outcomes: Sequence[Outcome], policy: RetryPolicy, now: datetime
) -> None:
    health: dict[uuid.UUID, _Health] = {}
    for outcome in outcomes:
        if outcome.result is None or outcome.result.internal:
            continue
        entry = health.setdefault(outcome.delivery.endpoint_id, _Health())
        if outcome.result.succeeded:
            entry.successes += 1
        else:
            entry.failures += 1
            entry.gone = entry.gone or outcome.result.gone
            entry.last_error = outcome.result.error or ""
    endpoints = WebhookEndpoint
    healthy = sorted(e for e, h in health.items() if h.successes)
    if healthy:
        await session.execute(
            update(endpoints)
            .where(endpoints.id.in_(healthy), endpoints.consecutive_failures > 0)
            .values(consecutive_failures=0, failing_since=None)
            .execution_options(synchronize_session=False)
        )
    for endpoint_id in sorted(health):  # one order everywhere: no deadlocks between workers
        entry = health[endpoint_id]
        if entry.gone:
            await disable_endpoints(session, [endpoint_id], "The receiver answered 410 Gone.", now)
        if entry.successes or not entry.failures:
            continue
        await session.execute(
            update(endpoints)
            .where(endpoints.id == endpoint_id)
            .values(
                consecutive_failures=endpoints.consecutive_failures + entry.failures,
                failing_since=func.coalesce(
                    endpoints.failing_since, literal(now, type_=UTCDateTime())
                ),
            )
            .execution_options(synchronize_session=False)
        )
        limit, period = policy.disable_after_failures, policy.disable_after
        reason = (
            f"Disabled automatically: {limit} or more delivery attempts in a row failed over "
            f"at least {_duration(period)}. Last error: {clean_text(entry.last_error, 200)}"
        )
        await disable_endpoints(
            session,
            [endpoint_id],
            reason,
            now,
            only_if=and_(
                endpoints.consecutive_failures >= limit,
                endpoints.failing_since <= now - period,
            ),
        )


def _duration(period: timedelta) -> str:
    seconds = period.total_seconds()
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    return f"{seconds:g} s"
