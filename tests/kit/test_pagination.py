"""Keyset pagination: signed cursors bound to account, endpoint and filters; ties never skipped."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.helpers import create_account, login
from wacrm.kit.errors import BadRequest
from wacrm.kit.pagination import DEFAULT_LIMIT, MAX_LIMIT, Paginator, Position
from wacrm.models import AuditEvent

SECRET = "pagination-test-secret"
ACCOUNT = uuid.UUID("11111111-1111-4111-8111-111111111111")
OTHER_ACCOUNT = uuid.UUID("22222222-2222-4222-8222-222222222222")


@dataclass
class _Row:
    created_at: datetime
    id: uuid.UUID


def _paginator(
    account: uuid.UUID = ACCOUNT, endpoint: str = "contacts", filters: dict | None = None
) -> Paginator:
    return Paginator(SECRET, account, endpoint, {"tag": "vip"} if filters is None else filters)


def _cursor(paginator: Paginator, created_at: datetime | None = None) -> tuple[str, _Row]:
    moment = created_at or datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
    rows = [_Row(moment, uuid.uuid4()) for _ in range(3)]
    page = paginator.page(None, 2)
    items, cursor = paginator.split(rows, page)
    assert items == rows[:2]
    assert cursor is not None
    return cursor, rows[1]


def test_a_cursor_round_trips_to_the_last_row_of_the_page():
    paginator = _paginator()
    cursor, last = _cursor(paginator)
    page = paginator.page(cursor, 2)
    assert page.after == Position(last.created_at, last.id)
    assert page.after.created_at.tzinfo is not None
    # The same binding built again (another request, another process) accepts it.
    assert _paginator().page(cursor, 10).after == page.after


def test_a_naive_or_offset_timestamp_comes_back_in_utc():
    paginator = _paginator()
    offset = datetime(2026, 3, 1, 14, 0, tzinfo=UTC).astimezone(timezone(timedelta(hours=2)))
    cursor, _ = _cursor(paginator, offset)
    after = paginator.page(cursor, 2).after
    assert after.created_at == offset
    assert after.created_at.utcoffset() == timedelta(0)
    naive = datetime(2026, 3, 1, 14, 0)
    cursor, _ = _cursor(paginator, naive)
    assert paginator.page(cursor, 2).after.created_at == naive.replace(tzinfo=UTC)


def test_the_last_page_has_no_cursor():
    paginator = _paginator()
    page = paginator.page(None, 2)
    rows = [_Row(datetime.now(UTC), uuid.uuid4()) for _ in range(2)]
    assert paginator.split(rows, page) == (rows, None)
    assert paginator.split([], page) == ([], None)


def test_limit_defaults_to_50_and_must_be_1_to_100():
    paginator = _paginator()
    assert DEFAULT_LIMIT == 50 and MAX_LIMIT == 100
    assert paginator.page(None, None).limit == 50
    assert paginator.page(None, 1).limit == 1
    assert paginator.page(None, 100).limit == 100
    for limit in (0, -1, 101, 100_000):
        with pytest.raises(BadRequest) as caught:
            paginator.page(None, limit)
        assert caught.value.details == [{"field": "limit", "message": "must be between 1 and 100"}]


def _signed(payload: bytes, paginator: Paginator) -> str:
    """A cursor properly signed by the server's key around an arbitrary payload."""
    signature = paginator._signature(payload)
    return base64.urlsafe_b64encode(payload + signature).decode().rstrip("=")


def _tampered(cursor: str) -> list[str]:
    token = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    variants = []
    for index in (0, len(token) // 2, len(token) - 1):
        flipped = bytearray(token)
        flipped[index] ^= 0x01
        variants.append(base64.urlsafe_b64encode(bytes(flipped)).decode().rstrip("="))
    variants.append(cursor[:-1])
    variants.append(cursor + "A")
    variants.append(cursor[:-4])
    return variants


def _garbage() -> list[str]:
    return [
        "",
        "null",
        "%%%",
        "invalid",
        base64.b64encode(b"invalid").decode(),
        base64.urlsafe_b64encode(b"x" * 16).decode(),
        base64.urlsafe_b64encode(b"x" * 17).decode(),
        "é",
        "\x00",
        "a" * 10_000,
        "====",
        "AAAA====AAAA",
    ]


@pytest.mark.parametrize("kind", ["tampered", "garbage", "foreign"])
def test_a_bad_cursor_is_a_400(kind):
    paginator = _paginator()
    cursor, _ = _cursor(paginator)
    if kind == "tampered":
        candidates = _tampered(cursor)
    elif kind == "garbage":
        candidates = _garbage()
    else:
        candidates = [cursor]
        paginator = _paginator(account=OTHER_ACCOUNT)
    for candidate in candidates:
        with pytest.raises(BadRequest) as caught:
            paginator.page(candidate, 2)
        assert caught.value.details[0]["field"] == "cursor"


@pytest.mark.parametrize(
    "other",
    [
        {"account": OTHER_ACCOUNT},
        {"endpoint": "conversations"},
        {"filters": {"tag": "other"}},
        {"filters": {}},
        {"filters": {"tag": "vip", "search": "a"}},
    ],
)
def test_a_cursor_is_bound_to_account_endpoint_and_filters(other):
    cursor, _ = _cursor(_paginator())
    with pytest.raises(BadRequest):
        _paginator(**other).page(cursor, 2)


def test_a_cursor_from_another_deployment_secret_is_refused():
    cursor, _ = _cursor(_paginator())
    other = Paginator("another-secret", ACCOUNT, "contacts", {"tag": "vip"})
    with pytest.raises(BadRequest):
        other.page(cursor, 2)


@pytest.mark.parametrize(
    "payload",
    [
        b"5",
        b"null",
        b"{}",
        b'{"a": 1, "b": 2}',
        b"[]",
        b'["2026-01-01T00:00:00+00:00"]',
        b"[1, 2]",
        b"[null, null]",
        b'["not a date", "11111111-1111-4111-8111-111111111111"]',
        b'["2026-01-01T00:00:00+00:00", "not-a-uuid"]',
        b'["2026-01-01T00:00:00+00:00", 5]',
        b'"ab"',
        b"\xff\xfe",
        b"",
    ],
)
def test_a_signed_but_malformed_payload_is_still_a_400(payload):
    # Only the server can sign, but a bug in an old version might have: never a 500.
    paginator = _paginator()
    with pytest.raises(BadRequest):
        paginator.page(_signed(payload, paginator), 2)


def test_the_signature_is_not_a_bare_hash_of_the_payload():
    paginator = _paginator()
    payload = json.dumps(["2026-01-01T00:00:00+00:00", str(uuid.uuid4())]).encode()
    forged = payload + hashlib.sha256(payload).digest()[:16]
    with pytest.raises(BadRequest):
        paginator.page(base64.urlsafe_b64encode(forged).decode(), 2)
    naive_hmac = hmac.new(SECRET.encode(), payload, hashlib.sha256).digest()[:16]
    with pytest.raises(BadRequest):
        paginator.page(base64.urlsafe_b64encode(payload + naive_hmac).decode(), 2)


# ---- end to end: /api/account/audit-log -----------------------------------------------


def _event(account_id: uuid.UUID, created_at: datetime, label: str) -> AuditEvent:
    return AuditEvent(
        account_id=account_id,
        actor_label="cli",
        action="test.tie",
        target_type="test",
        target_id=label,
        details={},
        created_at=created_at,
    )


@pytest.mark.parametrize(
    "created_at",
    [
        datetime(2026, 2, 1, 9, 30, 0, 0, tzinfo=UTC),  # whole second: a classic format trap
        datetime(2026, 2, 1, 9, 30, 0, 123456, tzinfo=UTC),
    ],
)
async def test_equal_timestamps_are_each_returned_exactly_once(client, db, created_at):
    account = await create_account(db)
    headers = await login(client, account.owner_email, account.owner_password)
    originals = [_event(account.id, created_at, f"original-{i}") for i in range(5)]
    db.add_all(originals)
    db.add(_event(account.id, created_at - timedelta(days=1), "older"))
    await db.commit()

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2} if cursor is None else {"limit": 2, "cursor": cursor}
        response = await client.get("/api/account/audit-log", params=params, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [event["target_id"] for event in body["data"]]
        cursor = body["meta"]["next_cursor"]
        pages += 1
        if pages == 1:
            # Written mid-walk with the very same timestamp, and one newer than all.
            db.add(_event(account.id, created_at, "mid-walk"))
            db.add(_event(account.id, created_at + timedelta(hours=1), "newer"))
            await db.commit()
        if cursor is None:
            break
        assert pages < 10

    assert len(seen) == len(set(seen)), seen
    for original in originals:
        assert seen.count(original.target_id) == 1
    assert seen[-1] == "older"
    assert "newer" not in seen


async def test_audit_log_cursor_errors_over_http(client, db):
    account = await create_account(db)
    other = await create_account(db, name="Other")
    moment = datetime(2026, 2, 1, tzinfo=UTC)
    db.add_all([_event(account.id, moment, f"a-{i}") for i in range(3)])
    db.add_all([_event(other.id, moment, f"b-{i}") for i in range(3)])
    await db.commit()

    url = "/api/account/audit-log"
    headers = await login(client, account.owner_email, account.owner_password)
    response = await client.get(url, params={"limit": 1}, headers=headers)
    assert response.status_code == 200
    assert response.json()["data"][0]["target_id"].startswith("a-")
    cursor = response.json()["meta"]["next_cursor"]
    assert cursor

    for bad in ["null", "%%%", base64.b64encode(b"invalid").decode(), cursor[:-2], ""]:
        response = await client.get(url, params={"cursor": bad}, headers=headers)
        assert response.status_code == 400, bad
        assert response.json()["error"]["code"] == "bad_request"
    for limit in ("0", "101", "-5", "100000"):
        response = await client.get(url, params={"limit": limit}, headers=headers)
        assert response.status_code == 400, limit

    # Account A's cursor used by account B: refused, and never A's rows.
    client.cookies.clear()
    other_headers = await login(client, other.owner_email, other.owner_password)
    response = await client.get(url, params={"cursor": cursor}, headers=other_headers)
    assert response.status_code == 400
    assert "a-" not in response.text
    response = await client.get(url, headers=other_headers)
    assert {e["target_id"] for e in response.json()["data"]} == {"b-0", "b-1", "b-2"}
    assert response.json()["meta"]["next_cursor"] is None
