"""Log lines: every secret kind redacted (message, arguments, extras, tracebacks), and the
request id on every line written while a request is handled."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers import create_account, create_key
from wacrm.api_keys.secret import generate_secret
from wacrm.settings import Settings
from wacrm.telemetry.logs import RedactSecrets, RequestContextFilter, TextFormatter, json_formatter

GENERATED_ID = re.compile(r"[0-9a-f]{32}")


class Captured:
    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def records(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]


def _capture(log_format: str) -> tuple[logging.Handler, Captured]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RequestContextFilter())
    handler.addFilter(RedactSecrets())
    return handler, Captured(stream)


@pytest.fixture
def captured(request: pytest.FixtureRequest) -> Iterator[Captured]:
    """Our handler on the root logger, as `logging_config` installs it, at INFO."""
    handler, result = _capture(getattr(request, "param", "json"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield result
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


API_KEY = generate_secret().plaintext
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BEARER = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJvcHMifQ.c2lnbmF0dXJl"
META_TOKEN = "EAAGm0PX4ZCpsBAKZBZCsometokenvalue1234567890ZZ"
APP_SECRET = "5f2b1c9d8e7a6b5c4d3e2f1a0b9c8d7e"
PASSWORD = "correct horse battery staple"
SESSION_COOKIE = "Zx81-session-cookie-value_Q9"
CSRF = "csrf-token-value-3kQ9zX1"
SANDBOX_TOKEN = "sbx_0123456789abcdef0123456789abcdef01234567"
SECRETS = [API_KEY, WHSEC, BEARER, META_TOKEN, APP_SECRET, PASSWORD, SESSION_COOKIE, CSRF]


def _log_every_kind(log: logging.Logger) -> None:
    log.info("created key %s for the demo account", API_KEY)
    log.info("webhook registered", extra={"signing": f"secret is {WHSEC}"})
    log.warning("upstream said no to Authorization: Bearer %s", BEARER)
    log.info(
        "calling graph", extra={"url": f"https://graph/v21.0/1/messages?access_token={META_TOKEN}"}
    )
    log.info("channel %s", {"phone_number_id": "1", "app_secret": APP_SECRET, "verify": "x"})
    log.info("meta token EAA-shaped: %s", META_TOKEN)
    log.info("login", extra={"password": PASSWORD, "email": "ana@example.com"})
    log.info("form posted: password=%s&email=ana@example.com", PASSWORD.replace(" ", "+"))
    log.info('body {"password": "%s"}', PASSWORD)
    log.info("request headers: Cookie: wacrm_session=%s; theme=dark", SESSION_COOKIE)
    log.info("headers", extra={"headers": {"X-CSRF-Token": CSRF, "Accept": "*/*"}})
    log.info("X-CSRF-Token: %s", CSRF)
    log.info({"event": "sandbox", "token": SANDBOX_TOKEN, "note": f"uses {SANDBOX_TOKEN}"})
    try:
        raise ValueError(f"could not use key {API_KEY} with secret {WHSEC}")
    except ValueError:
        log.exception("failed with password=%s", PASSWORD.replace(" ", "_"))


@pytest.mark.parametrize("captured", ["json", "text"], indirect=True)
def test_every_kind_of_secret_is_redacted(captured):
    _log_every_kind(logging.getLogger("wacrm.test.redaction"))
    text = captured.text
    for secret in [*SECRETS, SANDBOX_TOKEN, PASSWORD.replace(" ", "+"), PASSWORD.replace(" ", "_")]:
        assert secret not in text, secret
    for fragment in ("horse", API_KEY[11:30], WHSEC[6:20], BEARER[:20], APP_SECRET[:12]):
        assert fragment not in text, fragment
    assert text.count("[REDACTED]") >= 15
    # What is not secret survives, so the lines are still useful.
    for kept in ("created key wacrm_live_", "ana@example.com", "ValueError", "Accept"):
        assert kept in text, kept


def test_json_lines_are_json_with_level_logger_time_and_pid(captured):
    _log_every_kind(logging.getLogger("wacrm.test.redaction"))
    records = captured.records()
    assert len(records) == 14
    first = records[0]
    assert {"time", "level", "logger", "pid", "message"} <= set(first)
    assert first["level"] == "INFO" and first["logger"] == "wacrm.test.redaction"
    assert records[6]["password"] == "[REDACTED]" and records[6]["email"] == "ana@example.com"
    assert records[10]["headers"] == {"X-CSRF-Token": "[REDACTED]", "Accept": "*/*"}
    assert "Traceback" in str(records[-1]["exc_info"])


def _app_with_test_routes(app):
    log = logging.getLogger("wacrm.test.handler")

    @app.get("/test/log")
    async def logs_inside() -> dict[str, bool]:
        log.info("inside the handler")
        return {"ok": True}

    @app.get("/test/boom")
    async def boom() -> None:
        raise RuntimeError(f"bug while holding {API_KEY}")

    return app


@pytest.fixture
async def raw_client(app) -> Iterator[httpx.AsyncClient]:
    # A 500 is answered and then re-raised by Starlette: keep it as the client sees it.
    transport = httpx.ASGITransport(app=_app_with_test_routes(app), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def _lines_of(captured: Captured, request_id: str) -> list[dict[str, object]]:
    return [r for r in captured.records() if r.get("request_id") == request_id]


async def test_a_request_gets_an_id_echoed_and_on_every_line_it_logs(raw_client, captured):
    response = await raw_client.get("/test/log")
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    assert GENERATED_ID.fullmatch(request_id)
    lines = _lines_of(captured, request_id)
    assert lines[0]["message"] == "inside the handler"
    [access] = [line for line in lines if line["logger"] == "wacrm.access"]
    assert access["method"] == "GET" and access["route"] == "/test/log"
    assert access["status"] == 200 and isinstance(access["duration_ms"], float)
    assert "account_id" not in access

    again = await raw_client.get("/test/log")
    assert again.headers["x-request-id"] != request_id


async def test_a_sane_incoming_id_is_kept(raw_client, captured):
    for sent in ("abc-123", "req_01HZY3.trace:span/9+x=", "x" * 128):
        response = await raw_client.get("/test/log", headers={"X-Request-ID": sent})
        assert response.headers["x-request-id"] == sent
        assert len(_lines_of(captured, sent)) == 2


@pytest.mark.parametrize(
    "sent",
    [
        "",
        "x" * 129,
        "has spaces in it",
        "quote\"and'brace{",
        b"\xff\xfe-not-ascii",
        "tab\tinside",
        "line\\nforged level=ERROR",
    ],
)
async def test_a_bad_incoming_id_is_replaced(raw_client, captured, sent):
    response = await raw_client.get("/test/log", headers={"X-Request-ID": sent})
    assert response.status_code == 200
    replaced = response.headers["x-request-id"]
    assert GENERATED_ID.fullmatch(replaced)
    assert len(_lines_of(captured, replaced)) == 2
    shown = sent.decode("latin-1") if isinstance(sent, bytes) else sent
    assert not shown or shown not in captured.text


async def test_errors_and_early_answers_carry_the_id_too(raw_client, captured):
    crashed = await raw_client.get("/test/boom", headers={"X-Request-ID": "crash-1"})
    assert crashed.status_code == 500
    assert crashed.json()["error"]["code"] == "internal"
    assert crashed.headers["x-request-id"] == "crash-1"
    lines = _lines_of(captured, "crash-1")
    logged = {line["message"]: line for line in lines}
    assert "unhandled error" in logged and "Traceback" in str(logged["unhandled error"]["exc_info"])
    assert any(line.get("status") == 500 for line in lines)
    assert API_KEY not in captured.text

    too_big = await raw_client.post("/webhooks/whatsapp", content=b"x" * (2 * 1024 * 1024))
    assert too_big.status_code == 413
    assert GENERATED_ID.fullmatch(too_big.headers["x-request-id"])
    unknown = await raw_client.get("/no/such/route")
    assert unknown.status_code == 404 and GENERATED_ID.fullmatch(unknown.headers["x-request-id"])


async def test_the_access_line_names_the_account_once_known(raw_client, captured, db):
    account = await create_account(db)
    key = await create_key(db, account.id, scopes=[])
    response = await raw_client.get("/api/v1/me", headers=key.headers)
    assert response.status_code == 200
    [access] = [
        line
        for line in _lines_of(captured, response.headers["x-request-id"])
        if line["logger"] == "wacrm.access"
    ]
    assert access["account_id"] == str(account.id)
    assert access["route"] == "/api/v1/me"
    assert key.plaintext not in captured.text


def test_json_is_the_default_in_production_and_text_elsewhere(tmp_path):
    common = {"var_dir": tmp_path, "secret_key": "s" * 40}
    assert Settings(env="production", **common).log_format == "json"
    assert Settings(env="development", **common).log_format == "text"
    assert Settings(env="development", log_format="json", **common).log_format == "json"
