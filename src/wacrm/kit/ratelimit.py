"""Rate limits with the ``limits`` package: in-process by default, shared through Redis.

When Redis is configured but unreachable, limits degrade to in-process counting with a
warning instead of failing the request.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wacrm.kit.http import add_missing_headers

logger = logging.getLogger(__name__)

STATE_KEY = "rate_limit"
SHARED_RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class RateLimitStatus:
    allowed: bool
    limit: int
    remaining: int
    reset_at: float  # unix seconds

    @property
    def retry_after(self) -> int:
        return max(1, math.ceil(self.reset_at - time.time()))

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class RateLimiter:
    def __init__(self, redis_url: str | None) -> None:
        self._memory = SlidingWindowCounterRateLimiter(MemoryStorage())
        self._shared: SlidingWindowCounterRateLimiter | None = None
        if redis_url:
            storage: Storage = RedisStorage(
                redis_url.replace("redis://", "async+redis://", 1),
                implementation="redispy",
                socket_timeout=0.5,
                socket_connect_timeout=0.5,
            )
            self._shared = SlidingWindowCounterRateLimiter(storage)
        self._degraded = False
        self._retry_shared_at = 0.0

    @property
    def shared(self) -> bool:
        return self._shared is not None

    async def hit(self, namespace: str, identity: str, per_minute: int) -> RateLimitStatus:
        """Count one request and say whether it is within the limit."""
        return await self._run(namespace, identity, per_minute, count=True)

    async def peek(self, namespace: str, identity: str, per_minute: int) -> RateLimitStatus:
        """Say whether the limit is already used up, without counting."""
        return await self._run(namespace, identity, per_minute, count=False)

    async def _run(
        self, namespace: str, identity: str, per_minute: int, *, count: bool
    ) -> RateLimitStatus:
        item = RateLimitItemPerMinute(per_minute, namespace=namespace)
        if self._shared is not None and time.monotonic() >= self._retry_shared_at:
            try:
                status = await self._apply(self._shared, item, identity, count)
            except Exception as exc:  # Redis down must never become a 500
                if not self._degraded:
                    logger.warning("rate limiting falls back to in-process counting: %s", exc)
                self._degraded = True
                # Don't make every request wait for a dead Redis: look again in a while.
                self._retry_shared_at = time.monotonic() + SHARED_RETRY_SECONDS
            else:
                if self._degraded:
                    logger.warning("rate limiting is shared through Redis again")
                self._degraded = False
                return status
        return await self._apply(self._memory, item, identity, count)

    @staticmethod
    async def _apply(
        limiter: SlidingWindowCounterRateLimiter,
        item: RateLimitItemPerMinute,
        identity: str,
        count: bool,
    ) -> RateLimitStatus:
        allowed = await (limiter.hit(item, identity) if count else limiter.test(item, identity))
        stats = await limiter.get_window_stats(item, identity)
        return RateLimitStatus(
            allowed=allowed, limit=item.amount, remaining=stats.remaining, reset_at=stats.reset_time
        )


class RateLimitHeadersMiddleware:
    """Adds ``X-RateLimit-*`` to any response whose request recorded a limit status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status: RateLimitStatus | None = scope.get("state", {}).get(STATE_KEY)
                if status is not None:
                    add_missing_headers(message, status.headers())
            await send(message)

        await self.app(scope, receive, send_with_headers)
