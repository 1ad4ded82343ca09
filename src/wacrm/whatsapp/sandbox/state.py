"""What the sandbox remembers, in memory per app instance: open 24 h windows and throughput."""

from __future__ import annotations

import base64
import secrets
import time
from collections import Counter
from collections.abc import Callable

WINDOW_SECONDS = 24 * 3600


def new_wamid(wa_id: str) -> str:
    """A fresh id in the shape of Meta's: ``wamid.`` and base64 of opaque bytes."""
    raw = b"\x0c" + wa_id.encode()[:15] + b"\x15\x02\x00\x11\x18" + secrets.token_bytes(18)
    return "wamid." + base64.b64encode(raw).decode()


class SandboxState:
    """Customer-service windows per (number, customer), a token bucket per number, and the
    sends accepted per customer (what a test or a demo checks was sent once)."""

    def __init__(self, messages_per_second: float, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._rate = messages_per_second
        # One second of burst, like a per-second limit counted by the second.
        self._capacity = max(1.0, messages_per_second)
        self._last_inbound: dict[tuple[str, str], float] = {}
        self._buckets: dict[str, tuple[float, float]] = {}
        self.accepted: Counter[str] = Counter()

    def record_inbound(self, phone_number_id: str, wa_id: str) -> None:
        """The customer wrote to this number now: free-form replies are allowed for 24 h."""
        self._last_inbound[(phone_number_id, wa_id)] = self._clock()

    def window_open(self, phone_number_id: str, wa_id: str) -> bool:
        last = self._last_inbound.get((phone_number_id, wa_id))
        return last is not None and self._clock() - last < WINDOW_SECONDS

    def take_send_slot(self, phone_number_id: str) -> bool:
        """False when this number is over its throughput (Meta's 130429)."""
        now = time.monotonic()
        tokens, updated = self._buckets.get(phone_number_id, (self._capacity, now))
        tokens = min(self._capacity, tokens + (now - updated) * self._rate)
        if tokens < 1.0:
            self._buckets[phone_number_id] = (tokens, now)
            return False
        self._buckets[phone_number_id] = (tokens - 1.0, now)
        return True
