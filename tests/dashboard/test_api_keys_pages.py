"""Settings → API keys over plain HTTP: roster, create, revoke and roll, and every refusal."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.api_keys import (
    HEX64,
    another_client,
    bearer,
    count_audit_events,
    count_keys,
    key_row,
    log_in_as,
    set_key,
)
from tests.dashboard.support import (
    PAGE,
    assert_no_inline_code,
    post_form,
    shown_secret,
    text_of,
)
from tests.helpers import create_account, create_key
from wacrm.api_keys.scopes import SCOPE_DESCRIPTIONS
from wacrm.kit.clock import utcnow
from wacrm.models import ApiKey, Role

FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


def _csrf(person) -> str:
    return person.csrf["X-CSRF-Token"]


async def _create(client, person, **fields):
    body = {"csrf_token": _csrf(person), "name": "n8n prod", "expiry": "never", **fields}
    return await post_form(client, PAGE, body)


async def test_roster_for_a_viewer_shows_every_key_without_controls_or_secrets(client, db):
    owner = await create_account(db)
    active = await create_key(db, owner.id, scopes=[], name="no scopes key")
    expired = await create_key(db, owner.id, scopes=["contacts:read"], name="old sync")
    revoked = await create_key(db, owner.id, scopes=["messages:send"], name="leaked")
    await set_key(db, expired.id, expires_at=utcnow() - timedelta(seconds=1))
    await set_key(db, revoked.id, revoked_at=utcnow())
    await log_in_as(client, db, Role.VIEWER, owner)

    page = await client.get(PAGE)
    assert page.status_code == 200
    text = text_of(page.text)
    for name in ("no scopes key", "old sync", "leaked"):
        assert name in text
    assert "No scopes" in text and "Never used" in text
    assert {"Active", "Expired", "Revoked"} <= set(text.split())
    for key in (active, expired, revoked):
        assert key.plaintext not in page.text
        assert key.plaintext[:19] in page.text  # the display prefix
    assert not HEX64.search(page.text)
    assert "Create key" not in text and "/revoke" not in page.text and "/roll" not in page.text
    assert "Only an owner or admin can create" in text
    assert_no_inline_code(page.text)


async def test_the_form_offers_every_scope_with_its_description(client, db):
    await log_in_as(client, db, Role.ADMIN)
    text = text_of((await client.get(PAGE)).text)
    for scope, description in SCOPE_DESCRIPTIONS.items():
        assert f"{scope.value} {description}" in text


@pytest.mark.parametrize("role", [Role.AGENT, Role.VIEWER])
async def test_forged_posts_from_agents_and_viewers_get_403_and_change_nothing(
    client, db, app, role
):
    owner = await create_account(db)
    key = await create_key(db, owner.id, name="keep me")
    person = await log_in_as(client, db, role, owner)
    before = (await count_keys(db), await count_audit_events(db))

    attempts = [
        (PAGE, {"name": "forged", "scopes": "webhooks:manage", "expiry": "never"}),
        (f"{PAGE}/{key.id}/revoke", {}),
        (f"{PAGE}/{key.id}/roll", {"grace_period_hours": "0"}),
    ]
    for url, fields in attempts:
        response = await post_form(client, url, {**fields, "csrf_token": _csrf(person)})
        assert response.status_code == 403, (url, response.text)
        assert "Only an owner or admin can do this." in text_of(response.text)
    for url in (f"{PAGE}/{key.id}/revoke", f"{PAGE}/{key.id}/roll"):
        assert (await client.get(url)).status_code == 403

    assert (await count_keys(db), await count_audit_events(db)) == before
    row = await key_row(db, key.id)
    assert (row.revoked_at, row.rolled_to_id) == (None, None)
    async with another_client(app) as machine:
        assert (await machine.get("/api/v1/me", headers=key.headers)).status_code == 200


@pytest.mark.parametrize("token", [None, "", "wrong-token", "x" * 5000])
async def test_csrf_missing_or_wrong_is_403_and_nothing_is_created_or_revoked(client, db, token):
    person = await log_in_as(client, db, Role.OWNER)
    key = await create_key(db, person.account.id)
    csrf = {} if token is None else {"csrf_token": token}

    created = await post_form(client, PAGE, {"name": "x", "expiry": "never", **csrf})
    revoked = await post_form(client, f"{PAGE}/{key.id}/revoke", csrf)
    rolled = await post_form(client, f"{PAGE}/{key.id}/roll", {"grace_period_hours": "0", **csrf})
    for response in (created, revoked, rolled):
        assert response.status_code == 403
        assert "did not come from this dashboard" in text_of(response.text)
    assert await count_keys(db) == 1
    assert (await key_row(db, key.id)).revoked_at is None


async def test_another_sessions_token_is_refused(client, db, app):
    owner = await create_account(db)
    person = await log_in_as(client, db, Role.OWNER, owner)
    async with another_client(app) as other_browser:
        other = await log_in_as(other_browser, db, Role.ADMIN, owner)
    assert _csrf(other) != _csrf(person)
    response = await post_form(
        client, PAGE, {"name": "x", "expiry": "never", "csrf_token": _csrf(other)}
    )
    assert response.status_code == 403
    assert await count_keys(db) == 0


async def test_create_shows_the_secret_once_with_scopes_and_30_day_expiry(client, db, app):
    person = await log_in_as(client, db, Role.ADMIN)
    response = await post_form(
        client,
        PAGE,
        [
            ("csrf_token", _csrf(person)),
            ("name", "  n8n production  "),
            ("scopes", "contacts:read"),
            ("scopes", "messages:send"),
            ("scopes", "contacts:read"),
            ("expiry", "30"),
        ],
    )
    assert response.status_code == 201, response.text
    [row] = (await db.execute(select(ApiKey))).scalars().all()
    assert row.name == "n8n production"
    assert row.scopes == ["messages:send", "contacts:read"]
    assert abs(row.expires_at - (utcnow() + timedelta(days=30))) < timedelta(minutes=1)
    plaintext = shown_secret(response.text)
    assert response.text.count(plaintext) == 1
    assert "it will not be shown again" in text_of(response.text)
    assert f'data-replace-url="{PAGE}"' in response.text
    assert_no_inline_code(response.text)

    async with another_client(app) as machine:
        me = await machine.get("/api/v1/me", headers=bearer(plaintext))
    assert me.status_code == 200
    assert me.json()["data"]["key"]["scopes"] == ["messages:send", "contacts:read"]

    again = await client.get(PAGE)
    assert plaintext not in again.text
    assert "n8n production" in text_of(again.text)


@pytest.mark.parametrize("days", ["never", "90", "365"])
async def test_each_expiry_choice(client, db, days):
    person = await log_in_as(client, db, Role.OWNER)
    assert (await _create(client, person, expiry=days)).status_code == 201
    [row] = (await db.execute(select(ApiKey))).scalars().all()
    if days == "never":
        assert row.expires_at is None
    else:
        assert abs(row.expires_at - (utcnow() + timedelta(days=int(days)))) < timedelta(minutes=1)


async def test_a_custom_date_up_to_365_days_expires_at_its_start_in_utc(client, db):
    person = await log_in_as(client, db, Role.OWNER)
    last = (utcnow().date() + timedelta(days=365)).isoformat()
    response = await _create(client, person, expiry="custom", expires_on=last)
    assert response.status_code == 201, text_of(response.text)
    [row] = (await db.execute(select(ApiKey))).scalars().all()
    assert row.expires_at == datetime.fromisoformat(last).replace(tzinfo=UTC)


def _days(n: int) -> str:
    return (utcnow().date() + timedelta(days=n)).isoformat()


BAD_FORMS = [
    ({"name": "x" * 81}, "Name: must be at most 80 characters"),
    ({"name": "   "}, "Name: must not be empty"),
    ({"name": "tab\there"}, "Name: must not contain control characters"),
    ({"name": "nul\x00"}, "Name: must not contain NUL characters"),
    ({"name": "invoice\u202egpj.exe"}, "Name: must not contain bidirectional control"),
    ({"scopes": "contacts:*"}, "unknown scope 'contacts:*'"),
    ({"scopes": "CONTACTS:READ"}, "unknown scope 'CONTACTS:READ'"),
    ({"expiry": "366"}, "Expiry: choose never, 30, 90 or 365 days"),
    ({"expiry": ""}, "Expiry: choose never, 30, 90 or 365 days"),
    ({"expiry": "0"}, "Expiry: choose never"),
    ({"expiry": "-30"}, "Expiry: choose never"),
    ({"expiry": "custom", "expires_on": ""}, "Custom date: enter a date like 2027-01-31"),
    ({"expiry": "custom", "expires_on": "31/01/2027"}, "Custom date: enter a date like"),
    ({"expiry": "custom", "expires_on": "2027-02-30"}, "Custom date: enter a date like"),
    ({"expiry": "custom", "expires_on": "2027-01-31T00:00Z"}, "Custom date: enter a date"),
    ({"expiry": "custom", "expires_on": _days(366)}, "Custom date: must be at most 365 days"),
    ({"expiry": "custom", "expires_on": _days(0)}, "Custom date: must be in the future"),
    ({"expiry": "custom", "expires_on": _days(-1)}, "Custom date: must be in the future"),
    ({"expiry": "custom", "expires_on": "0001-01-01"}, "Custom date: must be in the future"),
]


@pytest.mark.parametrize(("fields", "message"), BAD_FORMS)
async def test_bad_input_rerenders_the_form_with_the_error_and_creates_nothing(
    client, db, fields, message
):
    person = await log_in_as(client, db, Role.OWNER)
    before = await count_audit_events(db)
    response = await _create(client, person, **fields)
    assert response.status_code == 400, response.text
    text = text_of(response.text)
    assert "There is a problem" in text
    assert message in text, text
    assert await count_keys(db) == 0
    assert await count_audit_events(db) == before
    assert "wacrm_live_" not in response.text
    if "name" in fields and fields["name"].strip():
        assert f'value="{fields["name"]}"' in response.text  # the input is kept


async def test_refused_form_keeps_every_input(client, db):
    person = await log_in_as(client, db, Role.OWNER)
    response = await post_form(
        client,
        PAGE,
        [
            ("csrf_token", _csrf(person)),
            ("name", "<b>kept & escaped</b>"),
            ("scopes", "messages:read"),
            ("scopes", "nope:nope"),
            ("expiry", "custom"),
            ("expires_on", _days(400)),
        ],
    )
    assert response.status_code == 400
    html = response.text
    assert 'value="&lt;b&gt;kept &amp; escaped&lt;/b&gt;"' in html
    assert 'value="messages:read" checked' in html
    assert 'id="expiry-custom" name="expiry" value="custom" checked' in html
    assert f'value="{_days(400)}"' in html
    assert 'aria-invalid="true"' in html
    assert "<b>kept" not in html


@pytest.mark.parametrize(
    "raw",
    [
        "name=%FF%FE%FD&expiry=never",
        "name=%ED%A0%80&expiry=never",  # an encoded lone surrogate
        "name=" + "x" * 30_000 + "&expiry=never",
        "name=ok&expiry=never&scopes=%C3",
        "name=ok&expiry=custom&expires_on=%FF",
    ],
)
async def test_non_utf8_or_huge_fields_are_form_errors_not_500s(client, db, raw):
    person = await log_in_as(client, db, Role.OWNER)
    body = f"{raw}&csrf_token={_csrf(person)}"
    response = await client.post(PAGE, content=body, headers=FORM_HEADERS)
    assert response.status_code == 400, response.text
    text = text_of(response.text)
    assert "There is a problem" in text
    assert "is not valid text (UTF-8)" in text or "is far too long" in text
    assert await count_keys(db) == 0


async def test_a_form_that_is_not_urlencoded_or_has_too_many_fields_is_a_400_page(client, db):
    person = await log_in_as(client, db, Role.OWNER)
    as_json = await client.post(
        PAGE, json={"name": "x", "csrf_token": _csrf(person)}, headers=person.csrf
    )
    assert as_json.status_code == 400
    assert as_json.headers["content-type"].startswith("text/html")
    many = "&".join(f"f{i}=1" for i in range(500)) + f"&csrf_token={_csrf(person)}"
    too_many = await client.post(PAGE, content=many, headers=FORM_HEADERS)
    assert too_many.status_code == 400
    assert "at most 200 fields" in text_of(too_many.text)
    assert await count_keys(db) == 0


async def test_revoke_confirms_first_then_revokes_at_once(client, db, app):
    person = await log_in_as(client, db, Role.OWNER)
    key = await create_key(db, person.account.id, name="zapier")

    confirm = await client.get(f"{PAGE}/{key.id}/revoke")
    assert confirm.status_code == 200
    assert "Revoke “zapier”?" in text_of(confirm.text)
    assert (await key_row(db, key.id)).revoked_at is None  # looking changes nothing

    done = await post_form(client, f"{PAGE}/{key.id}/revoke", {"csrf_token": _csrf(person)})
    assert (done.status_code, done.headers["location"]) == (303, PAGE)
    async with another_client(app) as machine:
        assert (await machine.get("/api/v1/me", headers=key.headers)).status_code == 401
    page = text_of((await client.get(PAGE)).text)
    assert "Revoked “zapier”" in page
    assert "Revoked" in page.split()

    twice = await post_form(client, f"{PAGE}/{key.id}/revoke", {"csrf_token": _csrf(person)})
    assert twice.status_code == 303
    assert "already revoked" in text_of((await client.get(PAGE)).text)
    assert "already revoked" in text_of((await client.get(f"{PAGE}/{key.id}/revoke")).text)


async def test_another_accounts_key_is_not_found(client, db):
    person = await log_in_as(client, db, Role.OWNER)
    other = await create_account(db, "Other Co")
    foreign = await create_key(db, other.id, name="theirs")
    for response in (
        await client.get(f"{PAGE}/{foreign.id}/revoke"),
        await client.get(f"{PAGE}/{uuid.uuid4()}/roll"),
        await post_form(client, f"{PAGE}/{foreign.id}/revoke", {"csrf_token": _csrf(person)}),
        await post_form(
            client,
            f"{PAGE}/{foreign.id}/roll",
            {"csrf_token": _csrf(person), "grace_period_hours": "0"},
        ),
    ):
        assert response.status_code == 404
        assert "theirs" not in response.text
    row = await key_row(db, foreign.id)
    assert (row.revoked_at, row.rolled_to_id) == (None, None)


async def test_roll_with_a_grace_period_shows_the_new_secret_and_keeps_the_old_key(client, db, app):
    person = await log_in_as(client, db, Role.ADMIN)
    old = await create_key(db, person.account.id, scopes=["contacts:read"], name="sync")
    form = await client.get(f"{PAGE}/{old.id}/roll")
    assert "Grace period (hours)" in text_of(form.text)

    response = await post_form(
        client, f"{PAGE}/{old.id}/roll", {"csrf_token": _csrf(person), "grace_period_hours": "24"}
    )
    assert response.status_code == 201, text_of(response.text)
    text = text_of(response.text)
    assert "keeps working until" in text
    plaintext = shown_secret(response.text)
    async with another_client(app) as machine:
        new = await machine.get("/api/v1/me", headers=bearer(plaintext))
        still = await machine.get("/api/v1/me", headers=old.headers)
    assert new.status_code == 200 and new.json()["data"]["key"]["scopes"] == ["contacts:read"]
    assert still.status_code == 200
    row = await key_row(db, old.id)
    assert abs(row.expires_at - (utcnow() + timedelta(hours=24))) < timedelta(minutes=1)


@pytest.mark.parametrize(
    ("grace", "message"),
    [
        ("169", "from 0 to 168"),
        ("-1", "whole number of hours"),
        ("1.5", "whole number of hours"),
        ("", "whole number of hours"),
        ("9" * 40, "whole number of hours"),
        ("%FF", "whole number of hours"),
    ],
)
async def test_roll_with_a_bad_grace_period_rerenders_and_rolls_nothing(client, db, grace, message):
    person = await log_in_as(client, db, Role.OWNER)
    old = await create_key(db, person.account.id)
    body = f"grace_period_hours={grace}&csrf_token={_csrf(person)}"
    response = await client.post(f"{PAGE}/{old.id}/roll", content=body, headers=FORM_HEADERS)
    assert response.status_code == 400, response.text
    assert message in text_of(response.text)
    assert await count_keys(db) == 1
    assert (await key_row(db, old.id)).rolled_to_id is None


async def test_rolling_a_revoked_or_rolled_key_is_refused_on_the_form(client, db):
    person = await log_in_as(client, db, Role.OWNER)
    key = await create_key(db, person.account.id)
    await set_key(db, key.id, revoked_at=utcnow())
    response = await post_form(
        client, f"{PAGE}/{key.id}/roll", {"csrf_token": _csrf(person), "grace_period_hours": "0"}
    )
    assert response.status_code == 409
    assert "A revoked API key cannot be rolled." in text_of(response.text)
    assert await count_keys(db) == 1
