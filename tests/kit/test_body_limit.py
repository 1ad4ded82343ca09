"""Case 13: bodies over 1 MiB are refused before parsing, chunked ones too, in bounded memory."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select

from tests.helpers import create_account, create_key
from wacrm.kit.body_limit import BodyLimitMiddleware
from wacrm.models import LoginSession

MIB = 1024 * 1024


def _login_body(account, size: int) -> bytes:
    """A valid login whose unknown ``pad`` field makes the body exactly ``size`` bytes."""
    empty = json.dumps(
        {"email": account.owner_email, "password": account.owner_password, "pad": ""}
    ).encode()
    body = json.dumps(
        {
            "email": account.owner_email,
            "password": account.owner_password,
            "pad": "x" * (size - len(empty)),
        }
    ).encode()
    assert len(body) == size
    return body


async def _chunks(body: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def _session_count(db) -> int:
    return int(await db.scalar(select(func.count()).select_from(LoginSession)) or 0)


def _assert_too_large(response: httpx.Response) -> None:
    assert response.status_code == 413, response.text[:200]
    assert response.json()["error"]["code"] == "payload_too_large"


async def test_two_megabytes_with_content_length_is_413_and_stores_nothing(client, db):
    account = await create_account(db)
    body = _login_body(account, 2 * 1000 * 1000)
    response = await client.post(
        "/api/auth/login", content=body, headers={"Content-Type": "application/json"}
    )
    _assert_too_large(response)
    assert "set-cookie" not in response.headers
    assert await _session_count(db) == 0


async def test_two_megabytes_chunked_without_content_length_is_413(client, db):
    account = await create_account(db)
    body = _login_body(account, 2 * 1000 * 1000)
    request = client.build_request(
        "POST",
        "/api/auth/login",
        content=_chunks(body),
        headers={"Content-Type": "application/json"},
    )
    assert "content-length" not in request.headers
    assert request.headers["transfer-encoding"] == "chunked"
    _assert_too_large(await client.send(request))
    assert await _session_count(db) == 0


async def test_two_megabytes_to_the_public_api_is_413(client, db):
    account = await create_account(db)
    key = await create_key(db, account.id)
    body = b'{"pad": "' + b"x" * (2 * MIB) + b'"}'
    for content in (body, _chunks(body)):
        response = await client.post(
            "/api/v1/me",
            content=content,
            headers={**key.headers, "Content-Type": "application/json"},
        )
        _assert_too_large(response)
    # Even a GET with a body, and without a valid key: the limit comes first.
    response = await client.request("GET", "/api/v1/me", content=body)
    _assert_too_large(response)


async def test_exactly_one_mebibyte_passes_the_limit(client, db):
    account = await create_account(db)
    response = await client.post(
        "/api/auth/login",
        content=_login_body(account, MIB),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text[:200]
    assert await _session_count(db) == 1
    request = client.build_request(
        "POST",
        "/api/auth/login",
        content=_chunks(_login_body(account, MIB)),
        headers={"Content-Type": "application/json"},
    )
    assert (await client.send(request)).status_code == 200


async def test_one_byte_over_is_refused(client, db):
    account = await create_account(db)
    body = _login_body(account, MIB + 1)
    _assert_too_large(await client.post("/api/auth/login", content=body))
    _assert_too_large(await client.post("/api/auth/login", content=_chunks(body, 1000)))
    assert await _session_count(db) == 0


@pytest.mark.parametrize("value", [b"abc", b"-1", b"1e3", b"", b" 12", b"0x10", b"\xd9\xa3"])
async def test_a_bogus_content_length_is_a_400(value):
    sent = await _call_middleware([b"{}"], headers=[(b"content-length", value)])
    assert sent.status == 400
    assert json.loads(sent.body)["error"]["code"] == "bad_request"
    assert not sent.app_called


async def test_a_bogus_content_length_over_http_is_a_400(client):
    request = client.build_request("POST", "/api/auth/login", content=b"{}")
    request.headers["Content-Length"] = "abc"
    response = await client.send(request)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


async def test_a_huge_declared_content_length_is_413_without_reading():
    sent = await _call_middleware(
        [b"{}"], headers=[(b"content-length", b"99999999999999999999999999")]
    )
    assert sent.status == 413
    assert sent.pulled == 0


class _Sent:
    def __init__(self) -> None:
        self.status: int | None = None
        self.body = b""
        self.pulled = 0
        self.app_called = False
        self.app_body = b""


async def _call_middleware(
    chunks, headers: list[tuple[bytes, bytes]] | None = None, limit: int = MIB
) -> _Sent:
    sent = _Sent()
    iterator = iter(chunks)

    async def receive():
        try:
            chunk = next(iterator)
        except StopIteration:
            return {"type": "http.disconnect"}
        sent.pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message):
        if message["type"] == "http.response.start":
            sent.status = message["status"]
        elif message["type"] == "http.response.body":
            sent.body += message.get("body", b"")

    async def app(scope, receive, send):
        sent.app_called = True
        while True:
            message = await receive()
            sent.app_body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers or []}
    await BodyLimitMiddleware(app, max_bytes=limit)(scope, receive, send)
    return sent


async def test_memory_stays_bounded_by_the_limit_whatever_the_client_sends():
    chunk = 64 * 1024
    twenty_megabytes = (b"x" * chunk for _ in range(20 * MIB // chunk))
    sent = await _call_middleware(twenty_megabytes)
    assert sent.status == 413
    assert not sent.app_called
    # It stopped pulling right after crossing the limit: one chunk past it at most.
    assert MIB < sent.pulled <= MIB + chunk


async def test_a_body_within_the_limit_reaches_the_app_intact():
    body = bytes(range(256)) * 1000
    chunks = [body[i : i + 999] for i in range(0, len(body), 999)]

    sent = _Sent()
    iterator = iter(chunks)

    async def receive():
        chunk = next(iterator, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        sent.pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def app(scope, receive, send):
        message = await receive()
        sent.app_body = message["body"]
        assert message["more_body"] is False
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(message):
        if message["type"] == "http.response.start":
            sent.status = message["status"]

    scope = {"type": "http", "method": "POST", "path": "/", "headers": []}
    await BodyLimitMiddleware(app, max_bytes=MIB)(scope, receive, send)
    assert sent.status == 200
    assert sent.app_body == body
