"""Idempotency-Key on /api/v1 POSTs (SPEC §4), through a test-only route made like every
public route (``public_router``)."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select, update

from tests.helpers import create_account, create_key
from wacrm.api_keys.auth import AnyKey, public_router
from wacrm.kit.clock import utcnow
from wacrm.kit.errors import Conflict
from wacrm.models import IdempotencyRecord

URL = "/api/v1/test-only/things"


@pytest.fixture
def calls(app):
    """Mount a POST route that counts its executions and can be held or made to fail."""
    state = {"count": itertools.count(1), "gate": None, "fail": None}
    router = public_router()

    @router.post("/test-only/things", status_code=201)
    async def create_thing(body: dict, principal: AnyKey) -> dict:
        n = next(state["count"])
        if state["gate"] is not None:
            await state["gate"].wait()
        if state["fail"] == "conflict":
            raise Conflict("that thing already exists")
        if state["fail"] == "crash":
            raise RuntimeError("boom")
        return {"n": n, "body": body}

    app.include_router(router, prefix="/api/v1")
    return state


async def _key(db):
    account = await create_account(db)
    return account, await create_key(db, account.id)


def _headers(key, idem: str) -> dict[str, str]:
    return {**key.headers, "Idempotency-Key": idem}


async def test_same_key_same_body_replays_without_running_again(client, db, calls):
    _, key = await _key(db)
    first = await client.post(URL, json={"a": 1}, headers=_headers(key, "k-1"))
    again = await client.post(URL, json={"a": 1}, headers=_headers(key, "k-1"))
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() == {"n": 1, "body": {"a": 1}}
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    third = await client.post(URL, json={"a": 1}, headers=key.headers)  # no key: runs again
    assert third.json()["n"] == 2


async def test_same_key_other_body_is_422(client, db, calls):
    _, key = await _key(db)
    await client.post(URL, json={"a": 1}, headers=_headers(key, "k-2"))
    reused = await client.post(URL, json={"a": 2}, headers=_headers(key, "k-2"))
    assert reused.status_code == 422
    assert reused.json()["error"]["code"] == "idempotency_key_reused"


async def test_while_the_first_runs_a_twin_gets_409(client, db, calls):
    _, key = await _key(db)
    calls["gate"] = asyncio.Event()
    first = asyncio.create_task(client.post(URL, json={"a": 1}, headers=_headers(key, "k-3")))
    await asyncio.sleep(0.2)
    twin = await client.post(URL, json={"a": 1}, headers=_headers(key, "k-3"))
    assert twin.status_code == 409
    assert twin.json()["error"]["code"] == "idempotency_key_in_use"
    calls["gate"].set()
    assert (await first).status_code == 201


async def test_keys_are_scoped_to_the_account(client, db, calls):
    _, key_a = await _key(db)
    _, key_b = await _key(db)
    a = await client.post(URL, json={"a": 1}, headers=_headers(key_a, "shared"))
    b = await client.post(URL, json={"a": 1}, headers=_headers(key_b, "shared"))
    assert a.json()["n"] == 1 and b.json()["n"] == 2
    assert "Idempotent-Replayed" not in b.headers


async def test_errors_the_client_caused_replay_but_crashes_do_not(app, db, calls):
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        await _client_errors_and_crashes(client, db, calls)


async def _client_errors_and_crashes(client, db, calls):
    _, key = await _key(db)
    calls["fail"] = "conflict"
    first = await client.post(URL, json={}, headers=_headers(key, "k-4"))
    again = await client.post(URL, json={}, headers=_headers(key, "k-4"))
    assert first.status_code == again.status_code == 409
    assert again.headers["Idempotent-Replayed"] == "true"

    calls["fail"] = "crash"
    crashed = await client.post(URL, json={}, headers=_headers(key, "k-5"))
    assert crashed.status_code == 500
    calls["fail"] = None
    retried = await client.post(URL, json={}, headers=_headers(key, "k-5"))
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried.headers


async def test_after_24_hours_a_key_starts_over(client, db, calls):
    _, key = await _key(db)
    await client.post(URL, json={"a": 1}, headers=_headers(key, "k-6"))
    await db.execute(update(IdempotencyRecord).values(expires_at=utcnow() - timedelta(seconds=1)))
    await db.commit()
    fresh = await client.post(URL, json={"a": 2}, headers=_headers(key, "k-6"))
    assert fresh.status_code == 201 and fresh.json()["body"] == {"a": 2}


@pytest.mark.parametrize("bad", ["x" * 256, ""])
async def test_bad_keys_are_400_and_nothing_runs(client, db, calls, bad):
    _, key = await _key(db)
    response = await client.post(URL, json={}, headers=_headers(key, bad))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
    assert next(calls["count"]) == 1  # the handler never ran
    count = await db.scalar(select(func.count()).select_from(IdempotencyRecord))
    assert count == 0


async def test_a_bad_key_header_without_auth_is_still_401(client, db, calls):
    response = await client.post(URL, json={}, headers={"Idempotency-Key": "k"})
    assert response.status_code == 401
