"""Session login for people (SPEC §2, §8): cookies, throttling, server-side sessions, CSRF."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import delete, func, select, update

from tests.helpers import create_account, create_member, login
from wacrm.accounts import passwords
from wacrm.accounts.service import SESSION_COOKIE
from wacrm.app import create_app
from wacrm.kit.clock import utcnow
from wacrm.models import LoginSession, Membership, Role, User
from wacrm.settings import Settings, get_settings


async def _sessions(db) -> int:
    return int(await db.scalar(select(func.count()).select_from(LoginSession)) or 0)


async def test_login_sets_an_httponly_lax_cookie_and_returns_csrf_and_role(client, db):
    account = await create_account(db)
    response = await client.post(
        "/api/auth/login",
        json={"email": account.owner_email, "password": account.owner_password},
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["role"] == "owner"
    assert data["account_id"] == str(account.id)
    assert data["account_name"] == "Acme"
    assert data["email"] == account.owner_email
    assert len(data["csrf_token"]) >= 32

    cookie = response.headers["set-cookie"]
    attributes = [part.strip().lower() for part in cookie.split(";")]
    name, _, value = attributes[0].partition("=")
    assert name == SESSION_COOKIE
    assert len(value) >= 32
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert "path=/" in attributes
    assert value != data["csrf_token"].lower()
    # The token itself is not what the server stores.
    stored = (await db.execute(select(LoginSession.token_hash))).scalar_one()
    assert response.cookies[SESSION_COOKIE] not in stored


async def test_secure_cookie_in_production(settings, db, app):
    account = await create_account(db)
    production = create_app(settings.model_copy(update={"env": "production"}))
    transport = httpx.ASGITransport(app=production)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
            response = await http.post(
                "/api/auth/login",
                json={"email": account.owner_email, "password": account.owner_password},
            )
        assert response.status_code == 200
        assert "secure" in [p.strip().lower() for p in response.headers["set-cookie"].split(";")]
    finally:
        await production.state.database.dispose()


async def test_wrong_password_and_unknown_email_get_identical_401s(client, db):
    account = await create_account(db)
    no_membership_email = "loner@example.com"
    from wacrm.accounts import service

    await service.create_user(db, no_membership_email, "loner-password-1")
    await db.commit()

    attempts = [
        {"email": account.owner_email, "password": "wrong-password"},
        {"email": "nobody@example.com", "password": "wrong-password"},
        {"email": account.owner_email, "password": ""},
        {"email": no_membership_email, "password": "loner-password-1"},
        {
            "email": account.owner_email,
            "password": account.owner_password,
            "account_id": "00000000-0000-4000-8000-000000000000",
        },
    ]
    responses = [await client.post("/api/auth/login", json=body) for body in attempts]
    for response in responses:
        assert response.status_code == 401
        assert response.json() == responses[0].json()
        assert "set-cookie" not in response.headers
    assert responses[0].json()["error"]["code"] == "unauthorized"
    assert await _sessions(db) == 0


async def test_email_match_is_case_insensitive(client, db):
    account = await create_account(db, email="Mixed.Case@Example.COM")
    for email in ("mixed.case@example.com", "MIXED.CASE@EXAMPLE.COM", "  Mixed.Case@example.com "):
        client.cookies.clear()
        response = await client.post(
            "/api/auth/login", json={"email": email, "password": account.owner_password}
        )
        assert response.status_code == 200, email
        assert response.json()["data"]["email"] == "mixed.case@example.com"


async def test_a_second_account_with_the_same_email_in_other_case_is_refused(db):
    from wacrm.accounts import service
    from wacrm.kit.errors import Conflict

    await create_account(db, email="dup@example.com")
    try:
        await service.create_user(db, "DUP@example.com", "x-password-1")
    except Conflict:
        await db.rollback()
    else:
        raise AssertionError("a case variant of an existing email must conflict")


async def test_login_is_throttled_per_ip_and_per_email(settings, db, app):
    account = await create_account(db)
    throttled = create_app(settings.model_copy(update={"login_attempts_per_minute": 3}))
    try:

        def client_from(ip: str) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=throttled, client=(ip, 5000))
            return httpx.AsyncClient(transport=transport, base_url="http://testserver")

        wrong = {"email": account.owner_email, "password": "wrong"}
        right = {"email": account.owner_email, "password": account.owner_password}
        async with client_from("10.1.0.1") as http:
            for _ in range(3):
                assert (await http.post("/api/auth/login", json=wrong)).status_code == 401
            response = await http.post("/api/auth/login", json=right)
            assert response.status_code == 429
            assert response.json()["error"]["code"] == "rate_limited"
            assert 1 <= int(response.headers["retry-after"]) <= 60
            assert "set-cookie" not in response.headers

        # The email is throttled from any address (guessing from many IPs)...
        async with client_from("10.1.0.2") as http:
            response = await http.post(
                "/api/auth/login", json={**right, "email": account.owner_email.upper()}
            )
            assert response.status_code == 429

        # ...and one address is throttled whatever emails it tries.
        async with client_from("10.1.0.3") as http:
            for n in range(3):
                body = {"email": f"guess-{n}@example.com", "password": "x"}
                assert (await http.post("/api/auth/login", json=body)).status_code == 401
            body = {"email": "guess-9@example.com", "password": "x"}
            assert (await http.post("/api/auth/login", json=body)).status_code == 429
        assert await _sessions(db) == 0
    finally:
        await throttled.state.database.dispose()


async def test_get_session_says_who_is_logged_in(client, db):
    account = await create_account(db)
    email, password = await create_member(db, account.id, Role.VIEWER)
    assert (await client.get("/api/auth/session")).status_code == 401
    headers = await login(client, email, password)
    response = await client.get("/api/auth/session")
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["email"] == email
    assert data["role"] == "viewer"
    assert data["account_id"] == str(account.id)
    assert data["csrf_token"] == headers["X-CSRF-Token"]


async def test_logout_deletes_the_server_side_session(client, db):
    account = await create_account(db)
    headers = await login(client, account.owner_email, account.owner_password)
    token = client.cookies[SESSION_COOKIE]
    assert await _sessions(db) == 1

    response = await client.post("/api/auth/logout", headers=headers)
    assert response.status_code == 204
    assert SESSION_COOKIE in response.headers["set-cookie"]
    assert await _sessions(db) == 0

    # Someone who kept a copy of the old cookie gets nothing.
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, token)
    response = await client.get("/api/auth/session")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert (await client.get("/api/account/api-keys")).status_code == 401
    assert (await client.post("/api/auth/logout", headers=headers)).status_code == 401


async def test_logging_out_one_session_keeps_the_others(client, db, app):
    account = await create_account(db)
    await login(client, account.owner_email, account.owner_password)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        other_headers = await login(other, account.owner_email, account.owner_password)
        assert (await other.post("/api/auth/logout", headers=other_headers)).status_code == 204
    assert (await client.get("/api/auth/session")).status_code == 200


async def test_removing_the_membership_ends_the_session(client, db):
    account = await create_account(db)
    email, password = await create_member(db, account.id, Role.ADMIN)
    await login(client, email, password)
    assert (await client.get("/api/auth/session")).status_code == 200

    user_id = (await db.execute(select(User.id).where(User.email == email))).scalar_one()
    await db.execute(delete(Membership).where(Membership.user_id == user_id))
    await db.commit()
    assert (await client.get("/api/auth/session")).status_code == 401
    assert (await client.get("/api/account/api-keys")).status_code == 401


async def test_a_changed_role_takes_effect_on_the_next_request(client, db):
    account = await create_account(db)
    email, password = await create_member(db, account.id, Role.ADMIN)
    await login(client, email, password)
    await db.execute(update(Membership).where(Membership.role == "admin").values(role="viewer"))
    await db.commit()
    assert (await client.get("/api/auth/session")).json()["data"]["role"] == "viewer"


async def test_an_expired_session_is_a_401(client, db):
    account = await create_account(db)
    await login(client, account.owner_email, account.owner_password)
    await db.execute(update(LoginSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    await db.commit()
    response = await client.get("/api/auth/session")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


async def test_a_session_has_the_configured_lifetime(client, db, settings):
    account = await create_account(db)
    before = utcnow()
    response = await client.post(
        "/api/auth/login",
        json={"email": account.owner_email, "password": account.owner_password},
    )
    expires_at = (await db.execute(select(LoginSession.expires_at))).scalar_one()
    ttl = timedelta(hours=settings.session_ttl_hours)
    assert before + ttl - timedelta(seconds=5) <= expires_at <= utcnow() + ttl
    max_age = [p for p in response.headers["set-cookie"].split(";") if "max-age" in p.lower()]
    assert max_age and int(max_age[0].split("=")[1]) == int(ttl.total_seconds())


async def test_garbage_session_cookies_are_401s_not_500s(client):
    values = [b"x", b"a" * 5000, b"%00", b'"quoted"', "ünï".encode(), b"\xff\xfe", b";;=;"]
    for value in values:
        cookie = b"wacrm_session=" + value
        response = await client.get("/api/auth/session", headers={"Cookie": cookie})
        assert response.status_code == 401, value
        response = await client.post("/api/auth/logout", headers={"Cookie": cookie})
        assert response.status_code == 401, value


async def test_state_changing_requests_need_the_csrf_header(client, db):
    account = await create_account(db)
    headers = await login(client, account.owner_email, account.owner_password)

    for sent in (
        {},
        {"X-CSRF-Token": ""},
        {"X-CSRF-Token": "wrong"},
        {"X-CSRF-Token": "é".encode()},
    ):
        response = await client.post("/api/auth/logout", headers=sent)
        assert response.status_code == 403, sent
        assert response.json()["error"]["code"] == "forbidden"
        response = await client.post("/api/account/api-keys", json={"name": "x"}, headers=sent)
        assert response.status_code == 403, sent
    assert await _sessions(db) == 1
    assert (await client.get("/api/auth/session")).status_code == 200

    # Another session's token does not work either.
    transport = client._transport
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as other:
        other_headers = await login(other, account.owner_email, account.owner_password)
    assert other_headers != headers
    assert (await client.post("/api/auth/logout", headers=other_headers)).status_code == 403
    assert (await client.post("/api/auth/logout", headers=headers)).status_code == 204


async def test_passwords_are_stored_as_argon2id(db):
    account = await create_account(db)
    email, password = await create_member(db, account.id, Role.AGENT)
    hashes = (await db.execute(select(User.password_hash))).scalars().all()
    assert len(hashes) == 2
    for stored in hashes:
        assert stored.startswith("$argon2id$")
        assert account.owner_password not in stored
        assert password not in stored
    two = [
        (await db.execute(select(User.password_hash).where(User.email == e))).scalar_one()
        for e in (account.owner_email, email)
    ]
    assert two[0] != two[1], "salted"


def test_the_default_argon2id_cost_meets_owasp_minimums():
    # OWASP: Argon2id with at least 19 MiB of memory and 2 passes (tests run cheaper).
    assert Settings.model_fields["argon2_memory_kib"].default >= 19 * 1024
    assert Settings.model_fields["argon2_time_cost"].default >= 2


def test_the_configured_hasher_is_argon2id_with_the_configured_cost():
    stored = passwords.hash_password("correct horse")
    settings = get_settings()
    _, variant, version, params, _salt, _digest = stored.split("$")
    assert (variant, version) == ("argon2id", "v=19")
    cost = dict(part.split("=") for part in params.split(","))
    assert int(cost["m"]) == settings.argon2_memory_kib
    assert int(cost["t"]) == settings.argon2_time_cost
    assert passwords.verify_password("correct horse", stored)
    assert not passwords.verify_password("correct horse ", stored)
    assert not passwords.verify_password("anything", None)


async def test_a_member_of_two_accounts_picks_one_at_login(client, db):
    from wacrm.accounts import service

    first = await create_account(db, name="First")
    second = await create_account(db, name="Second")
    user_id = (
        await db.execute(select(User.id).where(User.email == first.owner_email))
    ).scalar_one()
    await service.add_member(db, second.id, user_id, Role.AGENT)
    await db.commit()

    credentials = {"email": first.owner_email, "password": first.owner_password}
    response = await client.post(
        "/api/auth/login", json={**credentials, "account_id": str(second.id)}
    )
    assert response.status_code == 200
    assert response.json()["data"]["account_name"] == "Second"
    assert response.json()["data"]["role"] == "agent"
    # The agent session cannot manage keys in Second, whatever the user is in First.
    csrf = {"X-CSRF-Token": response.json()["data"]["csrf_token"]}
    response = await client.post("/api/account/api-keys", json={"name": "x"}, headers=csrf)
    assert response.status_code == 403

    client.cookies.clear()
    response = await client.post(
        "/api/auth/login", json={**credentials, "account_id": str(first.id)}
    )
    assert response.json()["data"]["role"] == "owner"
