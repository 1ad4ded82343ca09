"""Redis dies under a running ``wacrm serve`` and comes back: rate limiting degrades to
in-process counting with one warning, never answers 500, and is shared again once Redis is.

The Redis is the test's own (a private ``redis-server`` on a free port), so killing it
touches no one else's data. Runs on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import httpx
import pytest
import redis

from tests import helpers
from tests.faults.processes import cluster, private_redis, redis_answers
from tests.helpers import create_account, create_key

pytestmark = pytest.mark.slow

LIMIT = 20
FALLBACK = "rate limiting falls back to in-process counting"
SHARED_AGAIN = "rate limiting is shared through Redis again"


async def test_rate_limiting_survives_redis_going_away_and_coming_back(app, db, settings, tmp_path):
    account = await create_account(db)
    before, during, after = [
        await create_key(db, account.id, scopes=[], name=name)
        for name in ("before", "during", "after")
    ]
    seen: list[int] = []
    with private_redis(tmp_path) as server:
        environment = {
            "WACRM_REDIS_URL": f"redis://127.0.0.1:{server.port}/0",
            "WACRM_RATE_LIMIT_PER_MINUTE": str(LIMIT),
            "WACRM_SANDBOX_ENABLED": "false",
        }
        with cluster(settings, tmp_path, **environment) as running:
            await running.until(_redis_up(server), 30, "redis-server to answer")
            api = running.serve()
            await running.wait_healthy(api)
            store = redis.Redis(port=server.port, socket_timeout=2)
            async with httpx.AsyncClient(timeout=30) as http:

                async def me(key: helpers.TestKey) -> httpx.Response:
                    response = await http.get(f"{api.url}/api/v1/me", headers=key.headers)
                    seen.append(response.status_code)
                    return response

                # Shared: the count lives in Redis.
                assert (await me(before)).headers["x-ratelimit-remaining"] == str(LIMIT - 1)
                assert store.dbsize() > 0

                server.kill()
                # Degraded: every request answered, and the limit still holds, in-process.
                answers = [await me(during) for _ in range(LIMIT + 5)]
                assert [r.status_code for r in answers] == [200] * LIMIT + [429] * 5
                assert answers[-1].json()["error"]["code"] == "rate_limited"
                assert api.log_text().count(FALLBACK) == 1, api.log_text()[-3000:]

                server.start()
                await running.until(_redis_up(server), 30, "redis-server to answer again")
                assert store.dbsize() == 0  # a fresh, empty Redis

                async def shared_again() -> bool:
                    await me(after)
                    return SHARED_AGAIN in api.log_text() and store.dbsize() > 0

                await running.until(shared_again, 60, "rate limits shared again", poll=0.5)
                counted = int(store.dbsize())
                response = await me(after)
                assert response.status_code == 200
                assert store.dbsize() >= counted
            store.close()
            assert api.alive
    log = api.log_text()
    assert log.count(FALLBACK) == 1, "one warning when it degrades, not one per request"
    assert log.count(SHARED_AGAIN) == 1
    assert set(seen) <= {200, 429}, seen
    assert "unhandled error" not in log and "Traceback" not in log


def _redis_up(server):
    async def check() -> bool:
        return redis_answers(server)

    return check
