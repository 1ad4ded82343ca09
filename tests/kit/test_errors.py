"""Every error answers in the envelope of SPEC §4, with its real status, and never leaks."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import create_account, login


def _error(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


async def test_unknown_route_is_a_404_envelope(client):
    for path in ("/nope", "/api/v1/nope", "/api/v1/contacts/../../etc/passwd", "/api/auth"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("application/json")
        assert _error(response)["code"] == "not_found"


async def test_wrong_method_is_a_405_envelope(client):
    response = await client.put("/api/auth/login", json={})
    assert response.status_code == 405
    assert _error(response)["code"] == "method_not_allowed"
    assert "POST" in response.headers["allow"]
    response = await client.delete("/healthz")
    assert response.status_code == 405
    assert _error(response)["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("content", "fields"),
    [
        (b'{"email": "a@example.com", "password": ', None),  # truncated JSON
        (b"not json at all", None),
        (b"", None),
        (b"null", None),
        (b"[]", None),
        (b'{"email": "a@example.com"}', {"body.password"}),
        (b"{}", {"body.email", "body.password"}),
        (b'{"email": 5, "password": ["x"]}', {"body.email", "body.password"}),
        (b'{"email": "a@example.com", "password": "x", "account_id": "nope"}', {"body.account_id"}),
    ],
)
async def test_malformed_bodies_are_400_with_field_details(client, content, fields):
    response = await client.post(
        "/api/auth/login", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    error = _error(response)
    assert error["code"] == "bad_request"
    assert error["details"], "validation errors list what is wrong"
    for detail in error["details"]:
        assert set(detail) >= {"field", "message"}
    if fields is not None:
        assert {d["field"] for d in error["details"]} == fields


@pytest.mark.parametrize(
    "content",
    [
        b'{"email": "\xff\xfe", "password": "x"}',  # not UTF-8
        b"\xff\xfe\x00{\x00}",  # a UTF-16 byte-order mark with garbage
        b'{"email": "\xc3", "password": "x"}',  # truncated UTF-8 sequence
        b'{"email": "\xed\xa0\x80", "password": "x"}',  # UTF-8-encoded surrogate
    ],
)
async def test_a_body_that_is_not_utf8_is_a_400_not_a_500(client, content):
    response = await client.post(
        "/api/auth/login", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert _error(response)["code"] == "bad_request"


async def test_json_with_lone_surrogate_escape_is_not_a_500(client, db):
    account = await create_account(db)
    response = await client.post(
        "/api/auth/login",
        content=b'{"email": "\\ud800@example.com", "password": "\\udfff"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code in (400, 401), response.text
    headers = await login(client, account.owner_email, account.owner_password)
    response = await client.post(
        "/api/account/api-keys",
        content=b'{"name": "bad \\ud800 name", "scopes": []}',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text


async def test_wrong_content_type_is_a_400(client):
    response = await client.post(
        "/api/auth/login",
        content=b"email=a@example.com&password=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert _error(response)["code"] == "bad_request"


async def test_query_validation_is_a_400_not_a_422(client, db):
    account = await create_account(db)
    headers = await login(client, account.owner_email, account.owner_password)
    response = await client.get("/api/account/audit-log?limit=abc", headers=headers)
    assert response.status_code == 400
    assert _error(response)["details"][0]["field"] == "query.limit"
    response = await client.delete("/api/account/api-keys/not-a-uuid", headers=headers)
    assert response.status_code == 400
    assert _error(response)["details"][0]["field"] == "path.key_id"


async def test_an_unhandled_exception_is_a_500_envelope_without_its_text(app, caplog):
    secret_text = "boom: wacrm_live_should_not_leak connection=postgres://u:pw@db/x"

    async def explode() -> None:
        raise RuntimeError(secret_text)

    app.add_api_route("/test-only/explode", explode, methods=["GET", "POST"])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        for method in ("GET", "POST"):
            response = await http.request(method, "/test-only/explode", json={"a": 1})
            assert response.status_code == 500
            assert response.headers["content-type"].startswith("application/json")
            error = _error(response)
            assert error["code"] == "internal"
            assert "boom" not in response.text
            assert "RuntimeError" not in response.text
            assert "Traceback" not in response.text
    assert any(record.levelname == "ERROR" for record in caplog.records), "500s are logged"


async def test_healthz_and_readyz(client):
    assert (await client.get("/healthz")).text == "ok"
    assert (await client.get("/readyz")).status_code == 200


async def test_openapi_is_served_and_declares_no_422(client):
    """Validation errors are 400s; the only 422 is Idempotency-Key reuse on /api/v1 POSTs."""
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            declared = operation.get("responses", {}).get("422")
            if method == "post" and path.startswith("/api/v1/"):
                assert declared is not None, f"{method.upper()} {path}"
                assert "idempotency_key_reused" in declared["description"]
            else:
                assert declared is None, f"{method.upper()} {path}"
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert (await client.get("/docs")).status_code == 200


async def test_deeply_nested_json_is_a_400_not_a_500(client):
    for body in (b"[" * 300_000 + b"]" * 300_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000):
        response = await client.post(
            "/api/auth/login", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400
        assert _error(response)["code"] == "bad_request"


async def test_validation_errors_do_not_echo_the_submitted_values(client):
    secret = "hunter2-" + "s" * 2000
    response = await client.post(
        "/api/auth/login", json={"email": ["me@example.com"], "password": secret}
    )
    assert response.status_code == 400
    assert "hunter2" not in response.text
    assert {d["field"] for d in _error(response)["details"]} == {"body.email", "body.password"}
