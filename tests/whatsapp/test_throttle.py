"""The per-number send throttle shared by every process through Redis (Meta counts per
number, whichever worker sends), and its in-process fallback while Redis is away."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import pytest

from tests.conftest import TEST_REDIS_URL
from wacrm.whatsapp.throttle import LocalThrottle, SharedThrottle, _RedisClock, number_throttle

NEEDS_REDIS = pytest.mark.skipif(not TEST_REDIS_URL, reason="needs WACRM_TEST_REDIS_URL")


async def _waits(throttles: list, number: str, count: int) -> float:
    """``count`` sends from one number spread over the throttles (processes); seconds taken."""
    started = time.monotonic()
    await asyncio.gather(*(throttles[i % len(throttles)].wait(number) for i in range(count)))
    return time.monotonic() - started


def _count_redis_calls(throttle: SharedThrottle, monkeypatch: pytest.MonkeyPatch) -> list[None]:
    """A list that grows by one at each request for slots the throttle makes to Redis."""
    calls: list[None] = []
    reserve = throttle._reserve

    async def counted(*args: object, **kwargs: object) -> object:
        calls.append(None)
        return await reserve(*args, **kwargs)

    monkeypatch.setattr(throttle, "_reserve", counted)
    return calls


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


@NEEDS_REDIS
async def test_sends_spaced_in_process_during_an_outage_are_not_doubled_when_redis_returns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert TEST_REDIS_URL
    throttle = SharedThrottle(50, TEST_REDIS_URL)
    try:
        number = uuid.uuid4().hex
        reserve = throttle._reserve

        async def unreachable(*args: object, **kwargs: object) -> int:
            raise ConnectionError("redis is away")

        monkeypatch.setattr(throttle, "_reserve", unreachable)
        started = time.monotonic()
        # 25 sends queued in-process while Redis is away (0.5 s of slots at 50/s) ...
        outage = asyncio.gather(*(throttle.wait(number) for _ in range(25)))
        await asyncio.sleep(0)
        # ... then Redis is back, and 25 more sends come: they queue behind those.
        monkeypatch.setattr(throttle, "_reserve", reserve)
        throttle._retry_shared_at = 0.0
        await asyncio.gather(outage, *(throttle.wait(number) for _ in range(25)))
        assert time.monotonic() - started >= 0.95  # 49 intervals of 20 ms
    finally:
        await throttle.aclose()


@NEEDS_REDIS
async def test_an_outage_spaces_sends_after_the_slots_redis_gave(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert TEST_REDIS_URL
    throttle = SharedThrottle(50, TEST_REDIS_URL)
    try:
        number = uuid.uuid4().hex
        started = time.monotonic()
        shared = [asyncio.ensure_future(throttle.wait(number)) for _ in range(25)]
        await asyncio.sleep(0.1)  # all 25 slots reserved through Redis, 0.5 s of them

        async def unreachable(*args: object, **kwargs: object) -> int:
            raise ConnectionError("redis is away")

        monkeypatch.setattr(throttle, "_reserve", unreachable)
        await asyncio.gather(*shared, *(throttle.wait(number) for _ in range(25)))
        assert time.monotonic() - started >= 0.95
    finally:
        await throttle.aclose()


@NEEDS_REDIS
async def test_slots_are_leased_from_redis_in_blocks_not_one_round_trip_per_send(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert TEST_REDIS_URL
    throttle = SharedThrottle(1000, TEST_REDIS_URL)  # leases of 50 slots (50 ms)
    calls = _count_redis_calls(throttle, monkeypatch)
    try:
        # 100 sends at 1,000/s: still at least 99 intervals of 1 ms, from two leases.
        assert await _waits([throttle], uuid.uuid4().hex, 100) >= 0.099
        assert len(calls) <= 3  # two leases, or three if a slot passed while the first came
    finally:
        await throttle.aclose()


@NEEDS_REDIS
async def test_leased_slots_left_unused_are_lost_never_sent_in_a_burst_later() -> None:
    assert TEST_REDIS_URL
    throttle = SharedThrottle(100, TEST_REDIS_URL)  # leases of 5 slots, 10 ms apart
    try:
        number = uuid.uuid4().hex
        await throttle.wait(number)  # leases 5 slots, uses 1
        await asyncio.sleep(0.2)  # the other 4 pass unused
        # 5 sends now are spaced as ever: 4 intervals of 10 ms, not 4 at once.
        assert await _waits([throttle], number, 5) >= 0.04
    finally:
        await throttle.aclose()


@NEEDS_REDIS
async def test_a_send_finding_its_lease_used_up_asks_redis_again_instead_of_spinning() -> None:
    # The state a busy worker reached: the last lease request has finished (its clean-up not
    # yet run) and its slots are used up or past. Awaiting that finished request again
    # returned at once, so ``wait`` looped forever without yielding (a worker at 100 % CPU
    # with its batches stuck in ``sending``).
    assert TEST_REDIS_URL
    throttle = SharedThrottle(1000, TEST_REDIS_URL)
    number = uuid.uuid4().hex
    finished = asyncio.get_running_loop().create_future()
    finished.set_result(True)
    throttle._pending[number] = finished
    takes = 0
    real_take = throttle._take

    def counted_take(phone_number_id: str) -> float | None:
        nonlocal takes
        takes += 1
        if takes > 100:
            raise AssertionError("wait() is spinning")
        return real_take(phone_number_id)

    throttle._take = counted_take  # type: ignore[method-assign]
    try:
        await asyncio.wait_for(throttle.wait(number), 2)
    finally:
        await throttle.aclose()
    assert takes == 2  # none left, then the first slot of a fresh lease


@NEEDS_REDIS
async def test_the_next_lease_is_asked_for_before_the_current_one_runs_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A lease asked for only when the last one is used up stops a steady stream of sends
    # for a round trip at every lease boundary (~6 % of the rate at 1,000/s measured).
    assert TEST_REDIS_URL
    throttle = SharedThrottle(1000, TEST_REDIS_URL)  # leases of 50 slots (50 ms)
    number = uuid.uuid4().hex
    waited_for_redis = 0
    leased = throttle._leased

    async def counted(phone_number_id: str) -> bool:
        nonlocal waited_for_redis
        waited_for_redis += 1
        return await leased(phone_number_id)

    monkeypatch.setattr(throttle, "_leased", counted)
    try:
        started = time.monotonic()
        for _ in range(150):  # three leases, one send after another
            await throttle.wait(number)
        assert time.monotonic() - started >= 0.149  # spaced as ever
    finally:
        await throttle.aclose()
    assert waited_for_redis == 1  # the first send only


def test_redis_clock_bounds_narrow_with_answers_and_follow_a_step() -> None:
    clock = _RedisClock()
    # Redis's clock is 1,000 s ahead of the loop's; round trips of 4 ms and 2 ms.
    clock.add(redis_now=1_010.002, asked_at=10.000, answered_at=10.004)
    assert clock.offsets() == pytest.approx((999.998, 1_000.002))
    clock.add(redis_now=1_020.001, asked_at=20.000, answered_at=20.002)
    assert clock.offsets() == pytest.approx((999.999, 1_000.001))  # the shortest trip
    # Redis's clock is stepped 5 s forward: the old answers no longer hold.
    clock.add(redis_now=1_035.001, asked_at=30.000, answered_at=30.002)
    assert clock.offsets() == pytest.approx((1_004.999, 1_005.001))


@NEEDS_REDIS
async def test_every_slot_of_a_lease_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    # At 80/s a lease is 4 slots. Placing a lease a round trip short of its end lost its last
    # slot every time: one worker sent 60/s at a configured 80.
    assert TEST_REDIS_URL
    throttle = SharedThrottle(80, TEST_REDIS_URL)
    calls = _count_redis_calls(throttle, monkeypatch)
    number = uuid.uuid4().hex
    try:
        for _ in range(40):  # ten leases' worth, one send after another
            await throttle.wait(number)
    finally:
        await throttle.aclose()
    assert len(calls) <= 11  # ten, and the next one asked for ahead (three slots a lease: 14)


@NEEDS_REDIS
async def test_an_outage_backlog_is_passed_even_if_another_number_recovered_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Number X queued 0.3 s of sends in-process during an outage; number Y got its lease
    # first when Redis returned. X's backlog must still reach Redis, or X sends its queued
    # and its leased slots side by side: twice the rate.
    assert TEST_REDIS_URL
    throttle = SharedThrottle(1000, TEST_REDIS_URL)
    x, y = uuid.uuid4().hex, uuid.uuid4().hex
    try:
        reserve = throttle._reserve

        async def unreachable(*args: object, **kwargs: object) -> int:
            raise ConnectionError("redis is away")

        monkeypatch.setattr(throttle, "_reserve", unreachable)
        started = time.monotonic()
        outage = asyncio.gather(*(throttle.wait(x) for _ in range(300)))  # 0.3 s in-process
        await asyncio.sleep(0.01)  # the lease request failed: spaced in-process
        assert throttle._degraded
        monkeypatch.setattr(throttle, "_reserve", reserve)
        throttle._retry_shared_at = 0.0
        await throttle.wait(y)  # another number is leased first: "shared again"
        await asyncio.gather(outage, *(throttle.wait(x) for _ in range(100)))
        assert time.monotonic() - started >= 0.39  # 399 intervals of 1 ms
    finally:
        await throttle.aclose()


@NEEDS_REDIS
async def test_a_low_rate_of_one_slot_per_lease_still_sends() -> None:
    # Below 30/s a lease is one slot: shortened by the round trip, none ever fitted.
    assert TEST_REDIS_URL
    throttle = SharedThrottle(20, TEST_REDIS_URL)
    number = uuid.uuid4().hex
    try:
        started = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(throttle.wait(number) for _ in range(3))), 2)
        assert time.monotonic() - started >= 0.1  # two intervals of 50 ms
    finally:
        await throttle.aclose()
