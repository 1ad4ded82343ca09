"""Who may call is decided before what they sent is read (found by a CASES.md review)."""

from __future__ import annotations

from tests.api.test_scope_matrix import ROUTES
from tests.helpers import create_account, create_key, create_member, login
from wacrm.api_keys.scopes import Scope
from wacrm.models import Role

WRITES = [(m, p) for m, p, scope in ROUTES if m in ("POST", "PATCH") and scope is not None]


async def test_a_malformed_body_without_credentials_is_401(client):
    assert WRITES
    for method, path in WRITES:
        response = await client.request(
            method,
            path.replace("{", "").replace("}", ""),
            content=b"{bad",
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_a_malformed_body_with_a_narrow_key_is_403(client, db):
    account = await create_account(db)
    reader = await create_key(db, account.id, scopes=[Scope.CONTACTS_READ])
    for method, path in WRITES:
        response = await client.request(
            method,
            path.replace("{", "").replace("}", ""),
            content=b"{bad",
            headers={**reader.headers, "content-type": "application/json"},
        )
        assert response.status_code == 403, (method, path, response.text)


async def test_unicode_spaces_around_a_key_are_not_trimmed(client, db):
    account = await create_account(db)
    key = await create_key(db, account.id)
    for raw in (
        f"Bearer {key.plaintext}\xa0",
        f"\xa0Bearer {key.plaintext}",
        f"{key.plaintext}\x85",
    ):
        response = await client.get("/api/v1/me", headers={"Authorization": raw.encode("latin-1")})
        assert response.status_code == 401, repr(raw)
    ok = await client.get("/api/v1/me", headers={"Authorization": f" Bearer {key.plaintext}\t"})
    assert ok.status_code == 200


async def test_an_expiry_with_a_nul_is_400(client, db):
    account = await create_account(db)
    email, password = await create_member(db, account.id, Role.ADMIN)
    csrf = await login(client, email, password)
    for bad in ("2030-01-01T00:00:00\u0000Z", "2030-01-01T00:00:00\u0001+00:00"):
        response = await client.post(
            "/api/account/api-keys", json={"name": "k", "expires_at": bad}, headers=csrf
        )
        assert response.status_code == 400, bad
