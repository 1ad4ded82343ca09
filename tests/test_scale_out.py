"""Scale-out as an operator runs it: `wacrm serve --workers N --no-worker` next to
`wacrm worker --concurrency C`, on PostgreSQL; and what `wacrm serve` refuses."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from prometheus_client.samples import Sample
from typer.testing import CliRunner

from tests.conftest import TEST_DATABASE_URL, migrate
from tests.telemetry.support import parse, series
from tests.test_cli import WACRM, cli_env, scratch_database
from tests.test_multiprocess import Server, _free_port, _wait_until_healthy, stop_servers
from tests.webhooks.receivers import Receiver
from wacrm.accounts import service as accounts_service
from wacrm.api_keys import service as keys_service
from wacrm.api_keys.scopes import ALL_SCOPES
from wacrm.audit.service import CLI_ACTOR
from wacrm.channels.service import add_sandbox_channel
from wacrm.cli import app as cli_app
from wacrm.kit.db import Database
from wacrm.settings import Settings, get_settings

SECRET = "scale-out-test-secret-key-0123456789"
START_TIMEOUT = 120.0  # a deadline, not a timing: four interpreters booting on a busy 2-core box


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """The real `wacrm` app in this process with a clean WACRM_ environment; the server
    itself must never start here."""
    for name in [k for k in os.environ if k.startswith("WACRM_")]:
        monkeypatch.delenv(name)
    for name in ("WACRM_PUBLIC_BASE_URL", "WACRM_WORKER_IN_PROCESS", "PROMETHEUS_MULTIPROC_DIR"):
        monkeypatch.delenv(name, raising=False)  # restored after `serve` sets them
    monkeypatch.setenv("WACRM_VAR_DIR", str(tmp_path / "var"))

    def started(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the server must not start")

    monkeypatch.setattr(uvicorn, "run", started)
    get_settings.cache_clear()
    yield lambda *args: CliRunner().invoke(cli_app, list(args))
    get_settings.cache_clear()


def test_serve_refuses_several_processes_on_sqlite(run_cli, monkeypatch, tmp_path):
    monkeypatch.setenv("WACRM_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    result = run_cli("serve", "--workers", "2", "--no-worker")
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: --workers > 1 needs PostgreSQL")
    assert "SQLite allows one writer" in result.stderr and "Traceback" not in result.stderr
    for bad in ("0", "-1", "65", "two"):
        refused = run_cli("serve", "--workers", bad)
        assert refused.exit_code == 2 and "--workers" in refused.stderr, bad


def test_serve_and_worker_name_bad_settings_without_a_traceback(run_cli, monkeypatch):
    monkeypatch.setenv("WACRM_ENV", "production")
    for command in (("serve",), ("worker",)):
        result = run_cli(*command)
        assert result.exit_code == 1, result.output
        assert "WACRM_SECRET_KEY is required when WACRM_ENV=production" in result.stderr
        assert "Traceback" not in result.stderr
    monkeypatch.setenv("WACRM_SECRET_KEY", SECRET)
    monkeypatch.setenv("WACRM_LOG_FORMAT", "yaml")
    result = run_cli("worker")
    assert result.exit_code == 1 and "invalid settings" in result.stderr


# ---- the real thing: 2 API processes + 1 worker process with 2 loops, on PostgreSQL ------


async def _demo(database_url: str) -> tuple[str, str, str, str]:
    """An account, a key with every scope and a sandbox number (as `wacrm demo` makes)."""
    settings = Settings(env="test", database_url=database_url, secret_key=SECRET)
    database = Database(database_url)
    try:
        async with database.sessions() as session:
            created = await accounts_service.create_account(session, "Scale Co", "o@example.com")
            key = await keys_service.create_key(
                session,
                account_id=created.account.id,
                actor=CLI_ACTOR,
                name="scale",
                scopes=ALL_SCOPES,
            )
            channel = await add_sandbox_channel(session, settings, account_id=created.account.id)
            await session.commit()
    finally:
        await database.dispose()
    return (
        str(created.account.id),
        key.plaintext,
        channel.phone_number_id,
        settings.sandbox_access_token,  # what a simulated customer must show the sandbox
    )


def _start(args: list[str], home: Path, env: dict[str, str], name: str, port: int) -> Server:
    log = home / f"{name}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(WACRM), *args], cwd=home, env=env, stdout=output, stderr=subprocess.STDOUT
        )
    return Server(name, port, process, log)


def _json_lines(server: Server) -> list[dict[str, Any]]:
    lines = []
    for line in server.log_text().splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            pytest.fail(f"a log line of {server.name} is not JSON: {line!r}")
    return lines


@pytest.mark.slow
@pytest.mark.skipif(
    not TEST_DATABASE_URL,
    reason="several API processes need PostgreSQL (wacrm serve refuses --workers > 1 on SQLite)",
)
async def test_two_api_processes_and_a_worker_share_the_work_and_one_metrics_view(tmp_path):
    with scratch_database(tmp_path) as url:
        await asyncio.to_thread(migrate, url)  # alembic runs its own event loop
        api_port, metrics_port = _free_port(), _free_port()
        base = f"http://127.0.0.1:{api_port}"
        env = cli_env(
            url,
            tmp_path,
            WACRM_SECRET_KEY=SECRET,
            WACRM_LOG_FORMAT="json",
            WACRM_PUBLIC_BASE_URL=base,
            WACRM_WORKER_POLL_SECONDS="0.1",
            WACRM_WEBHOOKS_ALLOW_PRIVATE_TARGETS="true",  # the receiver is on loopback
        )
        api = ["serve", "--port", str(api_port), "--workers", "2", "--no-worker"]
        worker = ["worker", "--concurrency", "2", "--metrics-port", str(metrics_port)]
        servers = [
            _start(api, tmp_path, env, "api", api_port),
            _start(worker, tmp_path, env, "worker", metrics_port),
        ]
        try:
            account_id, plaintext, phone_number_id, sandbox_token = await _demo(url)
            deadline = time.monotonic() + START_TIMEOUT
            _wait_until_healthy(servers[0], deadline)
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                http.headers["Authorization"] = f"Bearer {plaintext}"
                await _check_only_the_worker_delivers(
                    http,
                    phone_number_id,
                    sandbox_token,
                    f"http://127.0.0.1:{metrics_port}",
                    deadline,
                )
                await _check_metrics_sum_both_api_processes(servers[0], http, account_id)
            for server in servers:
                assert server.process.poll() is None, server.log_text()[-3000:]
        finally:
            stop_servers(servers)
        for server in servers:
            assert plaintext not in server.log_text()
            assert "Traceback" not in server.log_text(), server.log_text()[-3000:]


async def _check_only_the_worker_delivers(
    http: httpx.AsyncClient,
    phone_number_id: str,
    sandbox_token: str,
    worker_metrics: str,
    deadline: float,
) -> None:
    """An inbound message makes a `message.received` webhook; only the worker delivers it."""
    async with Receiver() as receiver:
        webhook = {"url": receiver.url, "events": ["message.received"]}
        created = await http.post("/api/v1/webhooks", json=webhook)
        assert created.status_code == 201, created.text
        body = {"phone_number_id": phone_number_id, "from": "+14155550123", "text": "hi"}
        customer = {"Authorization": f"Bearer {sandbox_token}"}
        inbound = await http.post("/sandbox/inbound", json=body, headers=customer)
        assert inbound.status_code == 200, inbound.text

        def delivered(view: list[Sample]) -> float:
            return series(view, "wacrm_worker_job_items_total").get(
                (("job", "deliver_webhooks"),), 0.0
            )

        while True:
            worker_view = parse((await http.get(f"{worker_metrics}/metrics")).text)
            if delivered(worker_view) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
    [request] = receiver.received
    assert json.loads(request.body)["event"] == "message.received"
    assert delivered(worker_view) == 1
    attempts = series(worker_view, "wacrm_webhook_delivery_attempts_total")
    assert attempts[(("outcome", "succeeded"),)] == 1
    api_view = parse((await http.get("/metrics")).text)
    assert delivered(api_view) == 0, "an API process ran a worker job"
    assert series(api_view, "wacrm_queue_depth")[(("queue", "webhook_deliveries_due"),)] == 0


async def _check_metrics_sum_both_api_processes(
    api: Server, http: httpx.AsyncClient, account_id: str
) -> None:
    def access_lines() -> list[dict[str, Any]]:
        return [
            line
            for line in _json_lines(api)
            if line.get("logger") == "wacrm.access" and line.get("route") == "/api/v1/me"
        ]

    async def get_me() -> int:
        # A connection of its own, so the kernel may hand it to either API process.
        async with httpx.AsyncClient(base_url=str(http.base_url), headers=http.headers) as own:
            return (await own.get("/api/v1/me")).status_code

    sent = 0
    for _ in range(25):  # until both processes have answered some (bounded)
        assert await asyncio.gather(*(get_me() for _ in range(16))) == [200] * 16
        sent += 16
        if len({line["pid"] for line in access_lines()}) == 2:
            break
    assert len({line["pid"] for line in access_lines()}) == 2, "one process got every request"

    me = (("method", "GET"), ("route", "/api/v1/me"), ("status", "200"))
    for _ in range(6):  # scrapes land on either process: each sees the sum of both
        scraped = series(parse((await http.get("/metrics")).text), "wacrm_http_requests_total")
        assert scraped[me] == sent

    access = access_lines()
    assert len(access) == sent
    assert all(line["account_id"] == account_id and line["status"] == 200 for line in access)
    assert len({line["request_id"] for line in access}) == sent
