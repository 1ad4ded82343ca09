"""The per-number send throttle: sends from one number spaced at least 1/rate apart.

Meta counts messages per number, whichever process sends them. With ``WACRM_REDIS_URL``
the slots are handed out by Redis, so every worker process shares one rate per number;
without it (or while Redis is unreachable, with a warning) each process spaces its own
sends, and N worker processes may send up to N times the rate (Meta answers the excess
with 130429, which is retried later, never failed).

No burst allowance: a burst of 80 in the same millisecond followed by a refill would be
160 in one second as Meta counts it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass

from redis.asyncio import Redis

logger = logging.getLogger(__name__)

SHARED_RETRY_SECONDS = 5.0
LEASE_SECONDS = 0.05  # a process takes this much of a number's slots from Redis at a time
KEY_PREFIX = "wacrm:send-slot:"
# Redis's own clock, so processes with skewed clocks agree. ARGV[1]: the interval between
# slots; ARGV[2]: microseconds of slots this process already gave out in-process (while
# Redis was away), not to be given again; ARGV[3]: how many consecutive slots to take.
# Returns the first of them and Redis's now, in microseconds of Redis's clock.
_RESERVE_SLOTS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local taken = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = math.max(now + tonumber(ARGV[2]), taken)
local ends = slot + tonumber(ARGV[1]) * tonumber(ARGV[3])
redis.call('SET', KEYS[1], string.format('%d', ends), 'PX', 60000)
return {slot, now}
"""
CLOCK_SAMPLES_SECONDS = 60.0  # how long an answer's timing bounds Redis's clock (drift, steps)
CLOCK_DRIFT = 1e-4  # seconds per second two unsynchronised clocks may drift apart


class LocalThrottle:
    """Spaces one process's sends per number."""

    def __init__(self, per_second: float) -> None:
        self._interval = 1.0 / per_second
        self._next_at: dict[str, float] = {}

    async def wait(self, phone_number_id: str) -> None:
        now = asyncio.get_running_loop().time()
        slot = max(now, self._next_at.get(phone_number_id, now))
        self._next_at[phone_number_id] = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)

    def next_at(self, phone_number_id: str) -> float:
        """The loop time of this number's next free slot (in the past when idle)."""
        return self._next_at.get(phone_number_id, 0.0)

    def follow(self, phone_number_id: str, next_at: float) -> None:
        """Take note of a slot given out elsewhere (by Redis): spacing continues after it."""
        self._next_at[phone_number_id] = max(self.next_at(phone_number_id), next_at)

    async def aclose(self) -> None:
        return None


class _RedisClock:
    """Where Redis's clock sits on this event loop's: ``loop time = redis time - offset``.

    Redis read its clock somewhere between asking and answering, so each answer bounds the
    offset to an interval; the answers of the last minute together bound it to about the
    shortest round trip, however late any one answer was handled (a busy event loop)."""

    def __init__(self) -> None:
        self._samples: deque[tuple[float, float, float]] = deque()  # (answered_at, low, high)

    def add(self, redis_now: float, asked_at: float, answered_at: float) -> None:
        self._samples.append((answered_at, redis_now - answered_at, redis_now - asked_at))
        while self._samples[0][0] < answered_at - CLOCK_SAMPLES_SECONDS:
            self._samples.popleft()
        low, high = self.offsets()
        if low > high:  # Redis's clock stepped (or drifted): only the newest answer holds
            self._samples = deque([self._samples[-1]])

    def offsets(self) -> tuple[float, float]:
        """The lowest and highest the offset can be, each answer's bounds widened by how far
        the two clocks may have drifted apart since (100 ppm: clocks without NTP)."""
        newest = self._samples[-1][0]
        low = max(s[1] - (newest - s[0]) * CLOCK_DRIFT for s in self._samples)
        high = min(s[2] + (newest - s[0]) * CLOCK_DRIFT for s in self._samples)
        return low, high


@dataclass
class _Lease:
    """Consecutive slots of one number that Redis gave this process (event-loop times)."""

    next_at: float
    ends_at: float


class SharedThrottle:
    """Spaces every process's sends per number through Redis; in-process while it's down.

    Slots are taken from Redis ``LEASE_SECONDS`` at a time (50 at 1,000/s, 4 at 80/s) and
    handed out here, so a send costs no round trip of its own. The next lease is asked for
    when half of the current one is used, so a steady stream of sends never stops for the
    round trip (which had cost ~6 % of the rate at 1,000/s). A leased slot that passes
    unused is lost, never given late: the rate can only come out lower.
    """

    def __init__(self, per_second: float, redis_url: str) -> None:
        self._interval_us = max(1, round(1_000_000 / per_second))
        self._interval = self._interval_us / 1_000_000
        self._lease_size = max(1, round(per_second * LEASE_SECONDS))
        self._redis = Redis.from_url(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._reserve = self._redis.register_script(_RESERVE_SLOTS)
        self._fallback = LocalThrottle(per_second)
        self._retry_shared_at = 0.0
        self._degraded = False
        self._spaced_locally: set[str] = set()  # numbers with in-process slots since a lease
        self._leases: dict[str, deque[_Lease]] = {}
        self._clock = _RedisClock()
        self._pending: dict[str, asyncio.Future[bool]] = {}

    async def wait(self, phone_number_id: str) -> None:
        while (slot := self._take(phone_number_id)) is None:
            if time.monotonic() < self._retry_shared_at or not await self._leased(phone_number_id):
                self._spaced_locally.add(phone_number_id)
                await self._fallback.wait(phone_number_id)  # Redis is away
                return
        delay = slot - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _leased(self, phone_number_id: str) -> bool:
        """Wait for this number's next lease: one request to Redis at a time per number,
        which every send waiting meanwhile shares (woken together, none misses a slot)."""
        return await asyncio.shield(self._request_lease(phone_number_id))

    def _request_lease(self, phone_number_id: str) -> asyncio.Future[bool]:
        """The request for this number's next lease: the one in flight, or a new one."""
        # A finished request is never awaited again: awaiting a done future does not yield,
        # so a send finding its lease already used up (or past) would spin in ``wait``.
        pending = self._pending.get(phone_number_id)
        if pending is None or pending.done():
            pending = asyncio.ensure_future(self._lease(phone_number_id))
            self._pending[phone_number_id] = pending
        return pending

    def _take(self, phone_number_id: str) -> float | None:
        """The next slot of this number's leases (the loop time to send at), if one is left."""
        leases = self._leases.get(phone_number_id)
        now = asyncio.get_running_loop().time()
        while leases:
            lease = leases[0]
            slot = max(now, lease.next_at)
            # The last slot starts an interval before the end; a start moved later by clock
            # jitter (a fraction of a round trip) must not lose it.
            if slot > lease.ends_at - self._interval / 2:  # used up or past
                if len(leases) == 1:
                    return None  # kept: the next lease starts after it
                leases.popleft()
                continue
            lease.next_at = slot + self._interval
            half_used = lease.ends_at - lease.next_at < self._lease_size * self._interval / 2
            if half_used and len(leases) == 1:
                self._request_lease(phone_number_id)  # the next one, while this one lasts
            return slot
        return None

    async def _lease(self, phone_number_id: str) -> bool:
        """Take the next slots of this number from Redis; False when Redis is away."""
        # The in-process spacing follows every slot this process took, from Redis or not:
        # slots given out during an outage are passed on to Redis when it returns, and an
        # outage starts after the slots Redis gave (either way, no doubled rate meanwhile).
        # Only an outage's slots are passed (per number: another may have had its lease
        # already): Redis knows its own, and a backlog counted from here would add the
        # request's latency to every lease.
        loop = asyncio.get_running_loop()
        outage = phone_number_id in self._spaced_locally
        local_next = self._fallback.next_at(phone_number_id) if outage else 0.0
        asked_at = loop.time()
        backlog_us = max(0, round((local_next - asked_at) * 1_000_000))
        try:
            slot_us, now_us = await self._reserve(
                keys=[KEY_PREFIX + phone_number_id],
                args=[self._interval_us, backlog_us, self._lease_size],
            )
        except Exception as exc:  # Redis down must not stop sending
            if not self._degraded:
                logger.warning("the send throttle falls back to in-process spacing: %s", exc)
            self._degraded = True
            self._retry_shared_at = time.monotonic() + SHARED_RETRY_SECONDS
            return False
        if self._degraded:
            logger.warning("the send throttle is shared through Redis again")
            self._degraded = False
        # Placed where Redis's slots fall on this loop's clock at the latest: never early, and
        # late by at most the shortest round trip, however late this answer was handled (a
        # late answer placed as it came cost two workers double the rate for half a lease).
        self._spaced_locally.discard(phone_number_id)
        self._clock.add(int(now_us) / 1_000_000, asked_at, loop.time())
        low, _high = self._clock.offsets()
        first = int(slot_us) / 1_000_000 - low
        ends_at = first + self._lease_size * self._interval
        leases = self._leases.setdefault(phone_number_id, deque())
        starts_at = max(first, leases[-1].ends_at if leases else 0.0)  # never overlapping
        leases.append(_Lease(next_at=starts_at, ends_at=ends_at))
        self._fallback.follow(phone_number_id, ends_at)
        return True

    async def aclose(self) -> None:
        for pending in self._pending.values():
            pending.cancel()  # a lease asked for ahead that nobody will use
        await self._redis.aclose()


def number_throttle(per_second: float, redis_url: str | None) -> LocalThrottle | SharedThrottle:
    return SharedThrottle(per_second, redis_url) if redis_url else LocalThrottle(per_second)
