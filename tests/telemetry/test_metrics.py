"""/metrics over HTTP: route templates as labels (bounded), auth failures by reason, queue
depths read at scrape time, and the token that can guard it."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from sqlalchemy import select, update

from tests.broadcasts.support import broadcast_body, phones
from tests.helpers import create_account, create_key
from tests.telemetry.support import parse, sample, scrape, series
from wacrm.api_keys import service as keys_service
from wacrm.api_keys.secret import generate_secret
from wacrm.app import create_app
from wacrm.audit.service import CLI_ACTOR
from wacrm.channels.service import add_sandbox_channel
from wacrm.events.service import EventType, record_event
from wacrm.kit.clock import utcnow
from wacrm.kit.db import Database
from wacrm.models import ApiKey, InboundPayload
from wacrm.models.webhooks import WebhookDelivery, WebhookEndpoint
from wacrm.worker.runner import WorkerContext, run_once

REQUESTS = "wacrm_http_requests_total"


def _requests(samples, **labels):
    wanted = set(labels.items())
    return sum(v for k, v in series(samples, REQUESTS).items() if wanted <= set(k))


async def test_a_route_is_labelled_by_its_template_never_its_path(client, db):
    account = await create_account(db)
    key = await create_key(db, account.id)
    contact_id = str(uuid.uuid4())
    template = "/api/v1/contacts/{contact_id}"
    before = sample(REQUESTS, method="GET", route=template, status="404")

    response = await client.get(f"/api/v1/contacts/{contact_id}", headers=key.headers)
    assert response.status_code == 404
    # A mounted app's routes carry the mount's prefix.
    sandbox = await client.get("/sandbox/v21.0/1234/messages")
    assert sandbox.status_code == 405

    text = (await client.get("/metrics")).text
    samples = parse(text)
    assert _requests(samples, method="GET", route=template, status="404") == before + 1
    assert _requests(samples, route="/sandbox/{version}/{phone_number_id}/messages") >= 1
    assert contact_id not in text and "/1234/" not in text
    durations = series(samples, "wacrm_http_request_duration_seconds_count")
    assert any(("route", template) in labels for labels in durations)


async def test_a_thousand_unknown_paths_and_odd_methods_share_one_series_each(client):
    before = set(series(await scrape(client), REQUESTS))
    for n in range(1000):
        response = await client.get(f"/no/such/path/{n}-{uuid.uuid4().hex}")
        assert response.status_code == 404
    for method in ("BREW", "PROPFIND", "X-EVIL-METHOD"):
        response = await client.request(method, "/api/v1/contacts")
        assert response.status_code == 405
        assert response.json()["error"]["code"] == "method_not_allowed"

    samples = await scrape(client)
    new = set(series(samples, REQUESTS)) - before
    labels = [dict(items) for items in new]
    assert len(new) <= 3, labels  # unmatched 404, the other-methods 405, the scrape itself
    assert not any("/no/such" in item["route"] for item in labels)
    assert {item["method"] for item in labels} <= {"GET", "OTHER"}
    assert _requests(samples, method="GET", route="<unmatched>", status="404") >= 1000
    assert _requests(samples, method="OTHER", route="/api/v1/contacts", status="405") >= 3


async def test_auth_failures_are_counted_by_reason_and_never_name_the_key(client, db):
    account = await create_account(db)
    revoked = await create_key(db, account.id)
    expired = await create_key(db, account.id, expires_in_days=1)
    await keys_service.revoke_key(db, account_id=account.id, key_id=revoked.id, actor=CLI_ACTOR)
    await db.execute(
        update(ApiKey)
        .where(ApiKey.id == expired.id)
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    await db.commit()
    unknown = generate_secret().plaintext  # well formed, checksum right, never stored
    mistyped = unknown[:-1] + ("A" if unknown[-1] != "A" else "B")
    attempts = {
        "missing": {},
        "malformed": {"Authorization": f"Bearer {mistyped}"},
        "unknown": {"Authorization": f"Bearer {unknown}"},
        "revoked": revoked.headers,
        "expired": expired.headers,
    }
    name = "wacrm_auth_failures_total"
    before = {r: sample(name, credential="api_key", reason=r) for r in attempts}

    for headers in attempts.values():
        response = await client.get("/api/v1/me", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"

    response = await client.get("/metrics")
    after = series(parse(response.text), name)
    for reason in attempts:
        key = (("credential", "api_key"), ("reason", reason))
        assert after[key] == before[reason] + 1, reason
    for secret in (unknown, mistyped, revoked.plaintext, expired.plaintext):
        assert secret not in response.text and secret[11:19] not in response.text


async def test_queue_depths_are_read_from_the_database_at_scrape_time(client, db, settings):
    def depth(samples, queue):
        return series(samples, "wacrm_queue_depth")[(("queue", queue),)]

    samples = await scrape(client)
    assert series(samples, "wacrm_database_up") == {(): 1.0}
    assert depth(samples, "inbound_payloads_pending") == 0
    assert depth(samples, "webhook_deliveries_due") == 0

    account = await create_account(db)
    db.add_all([InboundPayload(body=b"{}"), InboundPayload(body=b"{}")])
    db.add(
        WebhookEndpoint(
            account_id=account.id,
            url="https://example.com/h",
            events=[EventType.CONTACT_CREATED.value],
            secret_encrypted="unused",
        )
    )
    await db.flush()
    for _ in range(3):
        await record_event(db, account.id, EventType.CONTACT_CREATED, {"contact_id": "c1"})
    await db.commit()
    # One of them is not due yet (e.g. waiting for a retry): it is not counted.
    later = await db.scalar(select(WebhookDelivery.id).limit(1))
    await db.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == later)
        .values(next_attempt_at=utcnow() + timedelta(hours=1))
    )
    await db.commit()
    key = await create_key(db, account.id, scopes=["broadcasts:send"])
    await add_sandbox_channel(db, settings, account_id=account.id)
    await db.commit()
    launched = await client.post(
        "/api/v1/broadcasts", json=broadcast_body(phones(4)), headers=key.headers
    )
    assert launched.status_code == 202, launched.text

    samples = await scrape(client)
    assert depth(samples, "inbound_payloads_pending") == 2
    assert depth(samples, "webhook_deliveries_due") == 2
    assert depth(samples, "broadcast_recipients_pending") == 4


async def test_a_metrics_token_guards_the_scrape(settings):
    token = "scrape-token-0123456789"
    app = create_app(settings.model_copy(update={"metrics_token": token}))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            name = "wacrm_auth_failures_total"
            before = {
                r: sample(name, credential="metrics_token", reason=r)
                for r in ("missing", "malformed", "wrong")
            }
            for headers in (
                {},
                {"Authorization": "Bearer wrong-token"},
                {"Authorization": f"Bearer {token}x"},
                {"Authorization": f"Basic {token}"},
                {"Authorization": "Bearer"},
                {"Authorization": ("Bearer " + "é" * 5000).encode("utf-8")},
            ):
                response = await http.get("/metrics", headers=headers)
                assert response.status_code == 401, headers
                assert response.json()["error"]["code"] == "unauthorized"
                assert response.headers["www-authenticate"] == "Bearer"
            ok = await http.get("/metrics", headers={"Authorization": f"bearer {token}"})
            assert ok.status_code == 200
            assert "wacrm_http_requests_total" in ok.text and token not in ok.text
            samples = parse(ok.text)
            failures = series(samples, name)
            got = {
                r: failures[(("credential", "metrics_token"), ("reason", r))] - before[r]
                for r in before
            }
            assert got == {"missing": 1, "malformed": 1, "wrong": 4}
    finally:
        await app.state.database.dispose()


async def test_metrics_can_be_turned_off(settings):
    app = create_app(settings.model_copy(update={"metrics_enabled": False}))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            response = await http.get("/metrics")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    finally:
        await app.state.database.dispose()


async def test_worker_jobs_count_what_they_took_and_their_errors(settings):
    async def took_two(context: WorkerContext) -> int:
        return 2

    async def broke(context: WorkerContext) -> int:
        raise RuntimeError("a bug in a job")

    items = ("wacrm_worker_job_items_total", {"job": "took_two"})
    errors = ("wacrm_worker_job_errors_total", {"job": "broke"})
    before = sample(items[0], **items[1]), sample(errors[0], **errors[1])
    database = Database(settings.database_url)
    try:
        context = WorkerContext(database=database, settings=settings, services={})
        assert await run_once(context, [took_two, broke, took_two]) == 4
    finally:
        await database.dispose()
    assert sample(items[0], **items[1]) == before[0] + 4
    assert sample(errors[0], **errors[1]) == before[1] + 1
