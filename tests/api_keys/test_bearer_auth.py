"""SPEC §3.4-3.5: parsing the Authorization header, indistinguishable 401s, expiry to the
second, rejection without a query, last_used_at throttling, and scopes-only authorization.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from fastapi import APIRouter, Depends
from sqlalchemy import delete, update

import wacrm.api_keys.auth as key_auth
from tests.api_keys import (
    KEYS_URL,
    ME_URL,
    bearer,
    create_via_api,
    key_row,
    log_in_as,
    recorded_statements,
    set_key,
)
from tests.helpers import create_account, create_key
from wacrm.api_keys.auth import ApiPrincipal, require_scope
from wacrm.api_keys.scopes import ALL_SCOPES, Scope
from wacrm.api_keys.secret import generate_secret
from wacrm.kit.clock import as_utc, utcnow
from wacrm.models import Membership, Role, User


@pytest.fixture(autouse=True)
def many_failures_allowed(settings):
    # These tests send many bad keys from one address on purpose; the per-IP limit on
    # failed authentications is tested with the rate limiter, not here.
    settings.auth_failures_per_minute = 100_000


def flip_case(key: str) -> str:
    index = next(i for i in range(len("wacrm_live_"), len(key)) if key[i].isalpha())
    return key[:index] + key[index].swapcase() + key[index + 1 :]


def forge_checksum(key: str) -> str:
    return key[:-6] + ("000000" if key[-6:] != "000000" else "000001")


def assert_unauthorized(response):
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "unauthorized"


# ---------------------------------------------------------------- header parsing (case 4)

ACCEPTED = {
    "canonical": "Bearer {k}",
    "lower-scheme": "bearer {k}",
    "upper-two-spaces": "BEARER  {k}",  # the rule: one or more spaces after the scheme
    "mixed-case-scheme": "BeArEr {k}",
    "bare-key": "{k}",
    "trailing-space": "Bearer {k} ",
}

REJECTED = {
    "xbearer": "XBearer {k}",
    "token-scheme": "Token {k}",
    "basic": "Basic dXNlcjpw",
    "extra-word": "Bearer {k} extra",
    "scheme-only": "Bearer",
    "scheme-and-space": "Bearer ",
    "empty": "",
    "no-space": "Bearer{k}",
    "tab": "Bearer\t{k}",
    "comma": "Bearer,{k}",
    "colon": "Bearer: {k}",
    "double-scheme": "Bearer Bearer {k}",
    "twice": "Bearer {k} {k}",
    "concatenated": "Bearer {k}{k}",
    "truncated": "Bearer {short}",
    "case-flipped": "Bearer {flipped}",
    "bare-case-flipped": "{flipped}",
    "marker-case": "Bearer {upper_marker}",
    "bare-marker-only": "wacrm_",
    "bare-with-extra": "{k} extra",
}


def render(template: str, key: str) -> str:
    return template.format(
        k=key,
        short=key[:-1],
        flipped=flip_case(key),
        upper_marker=key.replace("wacrm_live_", "WACRM_LIVE_"),
    )


@pytest.mark.parametrize("template", ACCEPTED.values(), ids=ACCEPTED.keys())
async def test_accepted_header_forms(client, db, template):
    key = await create_key(db, (await create_account(db)).id)
    response = await client.get(ME_URL, headers={"Authorization": render(template, key.plaintext)})
    assert response.status_code == 200, response.text
    assert response.json()["data"]["key"]["id"] == str(key.id)


@pytest.mark.parametrize("template", REJECTED.values(), ids=REJECTED.keys())
async def test_rejected_header_forms(client, db, template):
    key = await create_key(db, (await create_account(db)).id)
    response = await client.get(ME_URL, headers={"Authorization": render(template, key.plaintext)})
    assert_unauthorized(response)


async def test_no_header_is_401_with_a_bearer_challenge_not_403(client):
    assert_unauthorized(await client.get(ME_URL))


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"Bearer \xff\xfe", id="latin1-garbage"),
        pytest.param("Bearer \u043a\u043b\u044e\u0447".encode(), id="utf8-cyrillic"),
        pytest.param(b"\xff" * 64, id="bare-garbage"),
        pytest.param(b"Bearer " + b"a" * 10_240, id="10kb-token"),
        pytest.param(b"wacrm_" + b"a" * 10_240, id="10kb-bare"),
        pytest.param(b"Bearer " + b" " * 10_240 + b"x", id="10kb-spaces"),
        pytest.param(b"Bearer wacrm_live_" + b"\x80" * 38, id="right-length-non-ascii"),
    ],
)
async def test_odd_header_bytes_are_401_never_500(client, raw):
    assert_unauthorized(await client.get(ME_URL, headers=[(b"authorization", raw)]))


async def test_a_valid_key_padded_to_10kb_is_rejected(client, db):
    key = await create_key(db, (await create_account(db)).id)
    header = f"Bearer {key.plaintext}" + " " * 10_240 + "x"
    assert_unauthorized(await client.get(ME_URL, headers={"Authorization": header}))


async def test_every_401_is_byte_identical(client, db):
    account = await create_account(db)
    revoked, expired = await create_key(db, account.id), await create_key(db, account.id)
    await set_key(db, revoked.id, revoked_at=utcnow())
    await set_key(db, expired.id, expires_at=utcnow() - timedelta(seconds=1))
    headers = {
        "no header": {},
        "malformed": {"Authorization": "Bearer nope"},
        "bad checksum": bearer(forge_checksum(generate_secret().plaintext)),
        "unknown": bearer(generate_secret().plaintext),
        "revoked": revoked.headers,
        "expired": expired.headers,
        "bare unknown": {"Authorization": generate_secret().plaintext},
    }
    responses = {name: await client.get(ME_URL, headers=h) for name, h in headers.items()}
    for response in responses.values():
        assert_unauthorized(response)
    assert len({r.content for r in responses.values()}) == 1, {
        n: r.content for n, r in responses.items()
    }
    assert len({r.headers["content-type"] for r in responses.values()}) == 1
    for name in ("revoked", "expired", "unknown"):
        secret = headers[name]["Authorization"].split()[-1]
        assert secret[11:] not in responses[name].text


# ---------------------------------------------------------------- expiry to the second (case 1)


@pytest.mark.parametrize(
    ("expires", "status"),
    [
        pytest.param(lambda now: now - timedelta(seconds=1), 401, id="one-second-ago"),
        pytest.param(lambda now: now, 401, id="exactly-now"),
        pytest.param(lambda now: now.replace(hour=0), 401, id="today-midnight-at-15h"),
        pytest.param(lambda now: now - timedelta(microseconds=1), 401, id="a-microsecond-ago"),
        pytest.param(lambda now: now + timedelta(seconds=1), 200, id="in-one-second"),
    ],
)
async def test_expiry_is_checked_to_the_second(client, db, monkeypatch, expires, status):
    key = await create_key(db, (await create_account(db)).id)
    clock = datetime.now(UTC).replace(hour=15, minute=0, second=0, microsecond=0)
    moment = expires(clock)
    await set_key(db, key.id, expires_at=moment)
    monkeypatch.setattr(key_auth, "utcnow", lambda: clock)

    response = await client.get(ME_URL, headers=key.headers)

    assert response.status_code == status, response.text
    row = await key_row(db, key.id)
    assert row.expires_at == moment
    assert row.revoked_at is None
    if status == 401:
        assert_unauthorized(response)
        assert row.last_used_at is None


async def test_a_key_expiring_in_a_minute_works_on_the_real_clock(client, db):
    key = await create_key(db, (await create_account(db)).id)
    moment = utcnow() + timedelta(seconds=60)
    await set_key(db, key.id, expires_at=moment)
    response = await client.get(ME_URL, headers=key.headers)
    assert response.status_code == 200
    assert datetime.fromisoformat(response.json()["data"]["key"]["expires_at"]) == moment


# ---------------------------------------------------------------- no query for a bad key


async def test_a_bad_checksum_is_rejected_without_any_query(client, db, app):
    key = await create_key(db, (await create_account(db)).id)
    forged = forge_checksum(key.plaintext)
    with recorded_statements(app) as log:
        for header in (bearer(forged), bearer(flip_case(key.plaintext)), {"Authorization": "x"}):
            assert_unauthorized(await client.get(ME_URL, headers=header))
    assert log.touching("api_keys") == []
    assert log.statements == []


async def test_an_unknown_well_formed_key_costs_exactly_one_lookup(client, db, app):
    await create_key(db, (await create_account(db)).id)
    with recorded_statements(app) as log:
        assert_unauthorized(await client.get(ME_URL, headers=bearer(generate_secret().plaintext)))
    assert len(log.touching("api_keys")) == 1
    assert log.touching("api_keys")[0].lstrip().upper().startswith("SELECT")


# ---------------------------------------------------------------- last_used_at


async def test_last_used_at_is_written_at_most_once_per_interval(
    client, db, app, settings, monkeypatch
):
    settings.last_used_write_interval_seconds = 60
    # The clock moves only when the test says so: a loaded machine can't cross the interval.
    clock, ticks = [utcnow()], [0.0]
    monkeypatch.setattr(key_auth, "utcnow", lambda: clock[0])
    monkeypatch.setattr(key_auth, "time", SimpleNamespace(monotonic=lambda: ticks[0]))
    key = await create_key(db, (await create_account(db)).id)
    assert (await key_row(db, key.id)).last_used_at is None

    with recorded_statements(app) as first:
        assert (await client.get(ME_URL, headers=key.headers)).status_code == 200
    assert len(first.updates_of("api_keys")) == 1
    written = (await key_row(db, key.id)).last_used_at
    assert written is not None and as_utc(written) == clock[0]

    clock[0] += timedelta(seconds=59)
    ticks[0] += 59
    with recorded_statements(app) as second:
        assert (await client.get(ME_URL, headers=key.headers)).status_code == 200
    assert second.updates_of("api_keys") == []
    assert len(second.touching("api_keys")) == 1  # the one lookup
    assert (await key_row(db, key.id)).last_used_at == written

    clock[0] += timedelta(seconds=2)
    ticks[0] += 2
    with recorded_statements(app) as third:
        assert (await client.get(ME_URL, headers=key.headers)).status_code == 200
    assert len(third.updates_of("api_keys")) == 1
    assert as_utc((await key_row(db, key.id)).last_used_at) == clock[0]


async def test_a_burst_of_first_uses_writes_last_used_at_once(client, db, app):
    key = await create_key(db, (await create_account(db)).id)
    with recorded_statements(app) as log:
        responses = await asyncio.gather(
            *(client.get(ME_URL, headers=key.headers) for _ in range(10))
        )
    assert [r.status_code for r in responses] == [200] * 10
    assert len(log.updates_of("api_keys")) == 1


async def test_the_default_interval_is_about_a_minute(settings):
    assert 30 <= settings.last_used_write_interval_seconds <= 120


# ---------------------------------------------------------------- scopes only (case 5)


def _route_path(scope: Scope) -> str:
    return "/needs/" + scope.value.replace(":", "-")


@pytest.fixture
def scoped_routes(app):
    """A test-only route per scope, each declaring exactly that one scope."""
    router = APIRouter()
    for scope in ALL_SCOPES:

        async def handler(
            principal: ApiPrincipal = Depends(require_scope(scope)),
        ) -> dict[str, str]:
            return {"data": str(principal.key_id)}

        router.add_api_route(_route_path(scope), handler, methods=["POST"])
    app.include_router(router, prefix="/api/v1/test-only")
    return lambda scope: "/api/v1/test-only" + _route_path(scope)


@pytest.mark.parametrize("scope", ALL_SCOPES, ids=[s.value for s in ALL_SCOPES])
async def test_each_scope_matches_exactly(client, db, scoped_routes, scope):
    account = await create_account(db)
    only = await create_key(db, account.id, scopes=[scope])
    all_but = await create_key(db, account.id, scopes=[s for s in ALL_SCOPES if s is not scope])

    assert (await client.post(scoped_routes(scope), headers=only.headers)).status_code == 200
    response = await client.post(scoped_routes(scope), headers=all_but.headers)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert scope.value in response.json()["error"]["message"]
    for other in ALL_SCOPES:
        if other is not scope:  # no hierarchy: write does not imply read, nor the reverse
            assert (
                await client.post(scoped_routes(other), headers=only.headers)
            ).status_code == 403


async def test_a_key_without_scopes_can_only_call_me(client, db, scoped_routes):
    owner = await log_in_as(client, db, Role.OWNER)  # the owner's role grants the key nothing
    key = (await create_via_api(client, owner, scopes=[]))["plaintext"]
    assert (await client.get(ME_URL, headers=bearer(key))).status_code == 200
    for scope in ALL_SCOPES:
        response = await client.post(scoped_routes(scope), headers=bearer(key))
        assert response.status_code == 403
        assert scope.value in response.json()["error"]["message"]


async def test_a_revoked_key_is_401_on_a_scoped_route_not_403(client, db, scoped_routes):
    key = await create_key(db, (await create_account(db)).id, scopes=[])
    await set_key(db, key.id, revoked_at=utcnow())
    assert_unauthorized(await client.post(scoped_routes(Scope.CONTACTS_WRITE), headers=key.headers))


async def test_a_key_outlives_its_creators_demotion_and_removal(client, db, scoped_routes):
    owner = await log_in_as(client, db, Role.OWNER)
    admin = await log_in_as(client, db, Role.ADMIN, account=owner.account)
    created = await create_via_api(client, admin, scopes=["contacts:write"])
    key, route = bearer(created["plaintext"]), scoped_routes(Scope.CONTACTS_WRITE)
    assert created["key"]["created_by"]["email"] == admin.email
    admin_id = uuid.UUID(created["key"]["created_by"]["id"])
    membership = (Membership.user_id == admin_id) & (Membership.account_id == owner.account.id)

    await db.execute(update(Membership).where(membership).values(role=Role.VIEWER.value))
    await db.commit()
    assert (await client.post(route, headers=key)).status_code == 200

    await db.execute(delete(Membership).where(membership))
    await db.commit()
    assert (await client.post(route, headers=key)).status_code == 200

    await db.execute(delete(User).where(User.id == admin_id))
    await db.commit()
    assert (await client.post(route, headers=key)).status_code == 200
    assert (await client.get(ME_URL, headers=key)).status_code == 200
    await log_in_as(client, db, Role.VIEWER, account=owner.account)
    roster = (await client.get(KEYS_URL)).json()["data"]
    assert [k["created_by"] for k in roster] == [None]
