"""The per-number send throttle shared by every process through Redis (Meta counts per
number, whichever worker sends), and its in-process fallback while Redis is away."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import pytest

from tests.conftest import TEST_REDIS_URL
from wacrm.whatsapp.throttle import LocalThrottle, SharedThrottle, number_throttle

NEEDS_REDIS = pytest.mark.skipif(not TEST_REDIS_URL, reason="needs WACRM_TEST_REDIS_URL")


async def _waits(throttles: list, number: str, count: int) -> float:
    """``count`` sends from one number spread over the throttles (processes); seconds taken."""
    started = time.monotonic()
    await asyncio.gather(*(throttles[i % len(throttles)].wait(number) for i in range(count)))
    return time.monotonic() - started


@NEEDS_REDIS
async def test_two_processes_share_one_rate_per_number() -> None:
    assert TEST_REDIS_URL
    first, second = SharedThrottle(50, TEST_REDIS_URL), SharedThrottle(50, TEST_REDIS_URL)
    try:
        number = uuid.uuid4().hex
        # 26 sends at 50/s: at least 25 intervals of 20 ms, however they are split.
        assert await _waits([first, second], number, 26) >= 0.5
        # Another number has its own rate: nothing to wait for.
        assert await _waits([first, second], uuid.uuid4().hex, 1) < 0.5
    finally:
        await first.aclose()
        await second.aclose()


async def test_unreachable_redis_falls_back_to_spacing_in_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="wacrm.whatsapp.throttle")
    throttle = SharedThrottle(50, "redis://127.0.0.1:1/0")
    try:
        assert await _waits([throttle], uuid.uuid4().hex, 26) >= 0.5
    finally:
        await throttle.aclose()
    assert caplog.text.count("falls back to in-process spacing") == 1


def test_without_redis_each_process_spaces_its_own_sends() -> None:
    assert isinstance(number_throttle(80, None), LocalThrottle)
    assert isinstance(number_throttle(80, "redis://127.0.0.1:6379/0"), SharedThrottle)
