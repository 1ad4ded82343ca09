"""Reading broadcasts: list, one, recipients (paginated, filtered), and tenant isolation."""

from __future__ import annotations

import uuid

from tests.broadcasts.support import broadcast_body, phones
from tests.helpers import create_account, create_key
from wacrm.channels.service import add_sandbox_channel

ZERO_COUNTS = {
    "sent": 0,
    "delivered": 0,
    "read": 0,
    "failed": 0,
    "unknown": 0,
    "pending": 0,
    "cancelled": 0,
}


async def _tenant(db, settings, name="Acme"):
    account = await create_account(db, name)
    key = await create_key(db, account.id, scopes=["broadcasts:send"])
    await add_sandbox_channel(db, settings, account_id=account.id)
    await db.commit()
    return key


async def _launch(client, key, numbers, name="Spring launch") -> str:
    body = broadcast_body(numbers, name=name)
    response = await client.post("/api/v1/broadcasts", json=body, headers=key.headers)
    assert response.status_code == 202, response.text
    return str(response.json()["data"]["broadcast_id"])


async def test_one_broadcast_with_counts_and_timestamps(client, db, settings):
    key = await _tenant(db, settings)
    broadcast_id = await _launch(client, key, [*phones(3), "bad", phones(1)[0]])
    response = await client.get(f"/api/v1/broadcasts/{broadcast_id}", headers=key.headers)
    assert response.status_code == 200
    body = response.json()["data"]
    assert body["id"] == broadcast_id
    assert body["status"] == "queued"
    assert (body["total_recipients"], body["accepted"], body["rejected"]) == (4, 3, 1)
    assert body["duplicates"] == 1
    assert body["counts"] == {**ZERO_COUNTS, "pending": 3}
    assert body["template_name"] == "order_update"
    assert body["created_at"] and body["started_at"] is None and body["completed_at"] is None


async def test_list_is_newest_first_and_paginated(client, db, settings):
    key = await _tenant(db, settings)
    ids = [await _launch(client, key, phones(2), name=f"Campaign {i}") for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/broadcasts", params=params, headers=key.headers)).json()
        seen += [item["id"] for item in page["data"]]
        assert all(item["counts"]["pending"] == 2 for item in page["data"])
        cursor = page["meta"]["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))

    filtered = await client.get(
        "/api/v1/broadcasts", params={"status": "completed"}, headers=key.headers
    )
    assert filtered.json()["data"] == []
    bad = await client.get("/api/v1/broadcasts", params={"status": "nope"}, headers=key.headers)
    assert bad.status_code == 400


async def test_recipients_are_paginated_each_exactly_once(client, db, settings):
    key = await _tenant(db, settings)
    numbers = phones(7)
    broadcast_id = await _launch(client, key, numbers)
    url = f"/api/v1/broadcasts/{broadcast_id}/recipients"
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        response = await client.get(url, params=params, headers=key.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        for recipient in page["data"]:
            assert recipient["status"] == "pending"
            assert recipient["message_id"] is None and recipient["error"] is None
            seen.append(recipient["phone"])
        cursor = page["meta"]["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert sorted(seen) == numbers

    first = (await client.get(url, params={"limit": 3}, headers=key.headers)).json()
    cursor = first["meta"]["next_cursor"]
    other_id = await _launch(client, key, phones(2, start=50))
    foreign = await client.get(
        f"/api/v1/broadcasts/{other_id}/recipients", params={"cursor": cursor}, headers=key.headers
    )
    assert foreign.status_code == 400  # bound to the broadcast it was made for
    filtered = await client.get(
        url, params={"cursor": cursor, "status": "pending"}, headers=key.headers
    )
    assert filtered.status_code == 400  # and to its filters
    mangled = await client.get(url, params={"cursor": cursor[:-2] + "xx"}, headers=key.headers)
    assert mangled.status_code == 400

    failed = await client.get(url, params={"status": "failed"}, headers=key.headers)
    assert failed.json()["data"] == []
    pending = await client.get(url, params={"status": "pending", "limit": 100}, headers=key.headers)
    assert len(pending.json()["data"]) == 7


async def test_another_accounts_broadcast_is_a_404_everywhere(client, db, settings):
    key = await _tenant(db, settings)
    broadcast_id = await _launch(client, key, phones(2))
    intruder = await _tenant(db, settings, name="Intruder")
    for method, path in [
        ("GET", f"/api/v1/broadcasts/{broadcast_id}"),
        ("GET", f"/api/v1/broadcasts/{broadcast_id}/recipients"),
        ("POST", f"/api/v1/broadcasts/{broadcast_id}/cancel"),
        ("GET", f"/api/v1/broadcasts/{uuid.uuid4()}"),
        ("POST", f"/api/v1/broadcasts/{uuid.uuid4()}/cancel"),
    ]:
        response = await client.request(method, path, headers=intruder.headers)
        assert response.status_code == 404, (method, path)
        assert response.json()["error"]["code"] == "not_found"
    listed = await client.get("/api/v1/broadcasts", headers=intruder.headers)
    assert listed.json()["data"] == []
    # Still intact for its owner.
    mine = await client.get(f"/api/v1/broadcasts/{broadcast_id}", headers=key.headers)
    assert mine.json()["data"]["status"] == "queued"


async def test_cancelling_a_queued_broadcast(client, db, settings):
    key = await _tenant(db, settings)
    broadcast_id = await _launch(client, key, phones(4))
    response = await client.post(f"/api/v1/broadcasts/{broadcast_id}/cancel", headers=key.headers)
    assert response.status_code == 200
    body = response.json()["data"]
    assert body["status"] == "cancelled"
    assert body["counts"] == {**ZERO_COUNTS, "cancelled": 4}
    recipients = await client.get(
        f"/api/v1/broadcasts/{broadcast_id}/recipients", headers=key.headers
    )
    assert {r["status"] for r in recipients.json()["data"]} == {"cancelled"}
