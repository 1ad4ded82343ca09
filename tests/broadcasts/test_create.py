"""POST /broadcasts: what is accepted, rejected, collapsed and refused — and nothing stored
when the request is refused."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from tests.broadcasts.support import broadcast_body, phones
from tests.helpers import create_account, create_key
from wacrm.channels.service import add_sandbox_channel
from wacrm.models import Broadcast, BroadcastRecipient, Event


async def _tenant(db, settings, *, channel: bool = True, scopes=("broadcasts:send",)):
    account = await create_account(db)
    key = await create_key(db, account.id, scopes=scopes)
    if channel:
        await add_sandbox_channel(db, settings, account_id=account.id)
        await db.commit()
    return account, key


async def _stored(db) -> tuple[int, int]:
    broadcasts = await db.scalar(select(func.count()).select_from(Broadcast))
    recipients = await db.scalar(select(func.count()).select_from(BroadcastRecipient))
    return broadcasts, recipients


async def test_invalid_numbers_are_rejected_and_duplicates_collapsed(client, db, settings):
    _, key = await _tenant(db, settings)
    body = broadcast_body([])
    body["recipients"] = [
        {"to": "+1 (415) 555-0123", "params": ["Ana", "A-1"]},
        {"to": "not a number"},
        {"to": "4155550123"},  # no country code: never guessed
        {"to": "+14155550123", "params": ["Bob", "B-2"]},  # duplicate of #0
        {"to": "+1-415-555-0123"},  # duplicate again
        {"to": "+1 415 555 0124", "params": ["Cy", "C-3"]},
        {"to": "+٤٤٢٠٧٩٤٦٠٩٥٨"},  # Arabic-Indic digits: refused, not normalised
        {"to": "+1 415 555 0124 ext. 2"},
    ]
    response = await client.post("/api/v1/broadcasts", json=body, headers=key.headers)
    assert response.status_code == 202, response.text
    created = response.json()["data"]
    assert created["status"] == "queued"
    assert created["accepted"] == 2
    assert created["rejected"] == 4
    assert created["duplicates"] == 2
    assert created["total_recipients"] == 6
    assert [r["index"] for r in created["rejected_recipients"]] == [1, 2, 6, 7]
    assert all(r["reason"] for r in created["rejected_recipients"])

    url = f"/api/v1/broadcasts/{created['broadcast_id']}/recipients"
    recipients = (await client.get(url, headers=key.headers)).json()["data"]
    by_phone = {r["phone"]: r for r in recipients}
    assert set(by_phone) == {"+14155550123", "+14155550124"}
    assert by_phone["+14155550123"]["params"] == ["Ana", "A-1"]  # the first one wins
    assert {r["status"] for r in recipients} == {"pending"}
    assert await _stored(db) == (1, 2)


async def test_ten_thousand_recipients_are_accepted_and_one_more_is_a_400(client, db, settings):
    _, key = await _tenant(db, settings)
    body = broadcast_body([])
    body["recipients"] = [{"to": n, "params": ["Ana", "A"]} for n in phones(10_000)]
    body["recipients"].append({"to": "+14155559999"})
    too_many = await client.post("/api/v1/broadcasts", json=body, headers=key.headers)
    assert too_many.status_code == 400
    assert too_many.json()["error"]["details"][0]["field"] == "body.recipients"
    assert await _stored(db) == (0, 0)

    body["recipients"].pop()
    response = await client.post("/api/v1/broadcasts", json=body, headers=key.headers)
    assert response.status_code == 202, response.text
    assert response.json()["data"]["accepted"] == 10_000
    assert await _stored(db) == (1, 10_000)


async def test_an_empty_recipient_list_is_a_400(client, db, settings):
    _, key = await _tenant(db, settings)
    response = await client.post("/api/v1/broadcasts", json=broadcast_body([]), headers=key.headers)
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("two\nlines", "newline"),
        ("carriage\rreturn", "newline"),
        ("a\ttab", "tab"),
        ("five     spaces", "4 consecutive spaces"),
        ("", "empty"),
        ("   ", "empty"),
        ("nul\x00", "NUL"),
    ],
)
async def test_parameters_meta_always_rejects_are_a_400_naming_recipient_and_position(
    client, db, settings, value, reason
):
    _, key = await _tenant(db, settings)
    body = broadcast_body(phones(3))
    body["recipients"][2]["params"] = ["Ana", value]
    response = await client.post("/api/v1/broadcasts", json=body, headers=key.headers)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "bad_request"
    assert "Recipient 2, template parameter 2" in error["message"]
    assert reason in error["message"]
    [detail] = error["details"]
    assert detail["field"] == "recipients[2].params[1]"
    assert (detail["recipient_index"], detail["param_position"]) == (2, 2)
    assert await _stored(db) == (0, 0)


async def test_four_spaces_in_a_row_are_fine(client, db, settings):
    _, key = await _tenant(db, settings)
    body = broadcast_body(phones(1))
    body["recipients"][0]["params"] = ["Ana    Maria", "A-1"]
    response = await client.post("/api/v1/broadcasts", json=body, headers=key.headers)
    assert response.status_code == 202, response.text


async def test_without_a_whatsapp_number_it_is_a_400(client, db, settings):
    _, key = await _tenant(db, settings, channel=False)
    response = await client.post(
        "/api/v1/broadcasts", json=broadcast_body(phones(2)), headers=key.headers
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "whatsapp_not_configured"
    assert await _stored(db) == (0, 0)


async def test_another_accounts_channel_is_a_404(client, db, settings):
    _, key = await _tenant(db, settings)
    other = await create_account(db, "Other")
    theirs = await add_sandbox_channel(db, settings, account_id=other.id)
    await db.commit()
    for channel_id in (theirs.id, uuid.uuid4()):
        body = broadcast_body(phones(2), channel_id=str(channel_id))
        response = await client.post("/api/v1/broadcasts", json=body, headers=key.headers)
        assert response.status_code == 404
    assert await _stored(db) == (0, 0)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", ""),
        ("name", "bad\x00name"),
        ("template_name", "  "),
        ("template_language", "en\nUS"),
        ("template_language", "x" * 17),
    ],
)
async def test_bad_fields_are_a_400(client, db, settings, field, value):
    _, key = await _tenant(db, settings)
    body = broadcast_body(phones(1), **{field: value})
    response = await client.post("/api/v1/broadcasts", json=body, headers=key.headers)
    assert response.status_code == 400, response.text
    assert await _stored(db) == (0, 0)


async def test_the_scope_is_required(client, db, settings):
    _, key = await _tenant(db, settings, scopes=("messages:send",))
    response = await client.post(
        "/api/v1/broadcasts", json=broadcast_body(phones(1)), headers=key.headers
    )
    assert response.status_code == 403


async def test_all_numbers_rejected_completes_at_once(client, db, settings):
    account, key = await _tenant(db, settings)
    body = broadcast_body(["nope", "+1"])
    response = await client.post("/api/v1/broadcasts", json=body, headers=key.headers)
    assert response.status_code == 202
    created = response.json()["data"]
    assert (created["status"], created["accepted"], created["rejected"]) == ("completed", 0, 2)
    events = (await db.execute(select(Event).where(Event.account_id == account.id))).scalars()
    [event] = [e for e in events if e.type == "broadcast.completed"]
    assert event.data["broadcast_id"] == created["broadcast_id"]
