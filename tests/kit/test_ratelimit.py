"""SPEC §4 rate limits: per key, failed authentications per client IP, shared through Redis."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from tests.conftest import TEST_REDIS_URL
from tests.helpers import create_account, create_key
from wacrm.app import create_app
from wacrm.settings import Settings

BAD_KEY = {"Authorization": "Bearer wacrm_live_00000000000000000000000000000000000000"}


@asynccontextmanager
async def _client_for(settings: Settings, **changes: object) -> AsyncIterator[httpx.AsyncClient]:
    """A separate app instance (its own limiter) on the test database, with changed settings."""
    application = create_app(settings.model_copy(update=changes))
    transport = httpx.ASGITransport(app=application)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http
    finally:
        await application.state.database.dispose()


def _assert_limit_headers(response: httpx.Response, limit: int, remaining: int) -> None:
    assert response.headers["x-ratelimit-limit"] == str(limit)
    assert response.headers["x-ratelimit-remaining"] == str(remaining)
    reset = int(response.headers["x-ratelimit-reset"])
    assert time.time() - 1 <= reset <= time.time() + 61


async def test_every_key_has_its_own_per_minute_budget(app, settings, db):
    account = await create_account(db)
    key = await create_key(db, account.id)
    other = await create_key(db, account.id, name="other")
    async with _client_for(settings, rate_limit_per_minute=3) as http:
        for remaining in (2, 1, 0):
            response = await http.get("/api/v1/me", headers=key.headers)
            assert response.status_code == 200
            _assert_limit_headers(response, 3, remaining)
            assert "retry-after" not in response.headers

        response = await http.get("/api/v1/me", headers=key.headers)
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(response.headers["retry-after"]) <= 60
        _assert_limit_headers(response, 3, 0)

        response = await http.get("/api/v1/me", headers=other.headers)
        assert response.status_code == 200
        _assert_limit_headers(response, 3, 2)


async def test_failed_authentications_are_limited_per_client_ip(app, settings, db):
    account = await create_account(db)
    key = await create_key(db, account.id)
    async with _client_for(settings, auth_failures_per_minute=3) as http:
        for remaining in (2, 1, 0):
            response = await http.get("/api/v1/me", headers=BAD_KEY)
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"
            _assert_limit_headers(response, 3, remaining)

        response = await http.get("/api/v1/me", headers=BAD_KEY)
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "rate_limited"
        assert int(response.headers["retry-after"]) >= 1
        _assert_limit_headers(response, 3, 0)
        # Without any header at all: still blocked, still no 500.
        assert (await http.get("/api/v1/me")).status_code == 429

    # Another address is not blocked by the first one's failures.
    application = create_app(settings.model_copy(update={"auth_failures_per_minute": 3}))
    try:
        for ip in ("10.0.0.1", "10.0.0.2"):
            transport = httpx.ASGITransport(app=application, client=(ip, 4000))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                for _ in range(3):
                    assert (await http.get("/api/v1/me", headers=BAD_KEY)).status_code == 401
                assert (await http.get("/api/v1/me", headers=BAD_KEY)).status_code == 429
        transport = httpx.ASGITransport(app=application, client=("10.0.0.3", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            assert (await http.get("/api/v1/me", headers=key.headers)).status_code == 200
    finally:
        await application.state.database.dispose()


async def test_successful_requests_do_not_use_the_failure_budget(app, settings, db):
    account = await create_account(db)
    key = await create_key(db, account.id)
    async with _client_for(settings, auth_failures_per_minute=2) as http:
        for _ in range(5):
            assert (await http.get("/api/v1/me", headers=key.headers)).status_code == 200
        assert (await http.get("/api/v1/me", headers=BAD_KEY)).status_code == 401


@pytest.mark.skipif(not TEST_REDIS_URL, reason="needs WACRM_TEST_REDIS_URL")
async def test_two_app_instances_share_the_count_through_redis(app, settings, db):
    account = await create_account(db)
    key = await create_key(db, account.id)
    async with (
        _client_for(settings, rate_limit_per_minute=3) as first,
        _client_for(settings, rate_limit_per_minute=3) as second,
    ):
        assert (await first.get("/api/v1/me", headers=key.headers)).status_code == 200
        assert (await first.get("/api/v1/me", headers=key.headers)).status_code == 200
        response = await second.get("/api/v1/me", headers=key.headers)
        assert response.status_code == 200
        _assert_limit_headers(response, 3, 0)
        response = await second.get("/api/v1/me", headers=key.headers)
        assert response.status_code == 429
        assert (await first.get("/api/v1/me", headers=key.headers)).status_code == 429


@pytest.mark.skipif(not TEST_REDIS_URL, reason="needs WACRM_TEST_REDIS_URL")
async def test_failed_authentications_are_shared_through_redis(app, settings, db):
    async with (
        _client_for(settings, auth_failures_per_minute=3) as first,
        _client_for(settings, auth_failures_per_minute=3) as second,
    ):
        for http in (first, second, first):
            assert (await http.get("/api/v1/me", headers=BAD_KEY)).status_code == 401
        assert (await second.get("/api/v1/me", headers=BAD_KEY)).status_code == 429


async def test_unreachable_redis_falls_back_to_in_process_counting(app, settings, db, caplog):
    account = await create_account(db)
    key = await create_key(db, account.id)
    caplog.set_level(logging.WARNING, logger="wacrm.kit.ratelimit")
    started = time.monotonic()
    async with _client_for(
        settings, redis_url="redis://127.0.0.1:1/0", rate_limit_per_minute=3
    ) as http:
        for remaining in (2, 1, 0):
            response = await http.get("/api/v1/me", headers=key.headers)
            assert response.status_code == 200, response.text
            _assert_limit_headers(response, 3, remaining)
        # The in-process fallback still enforces the limit.
        assert (await http.get("/api/v1/me", headers=key.headers)).status_code == 429
        assert (await http.get("/api/v1/me", headers=BAD_KEY)).status_code == 401
        response = await http.post(
            "/api/auth/login", json={"email": "nobody@example.com", "password": "x"}
        )
        assert response.status_code == 401
    assert time.monotonic() - started < 15
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("in-process" in r.getMessage() for r in warnings)
    assert len(warnings) == 1, "one warning when it degrades, not one per request"
