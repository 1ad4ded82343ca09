"""Two real ``wacrm serve`` processes on one database: a revocation on one is seen by the other.

This is case 3 of CASES.md end to end: warm any cache on both processes, revoke on A
(session API) or from the CLI, and the very next request on B is a 401.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import socket
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from tests import test_cli
from tests.conftest import TEST_REDIS_URL
from tests.test_cli import WACRM, Cli, cli_env
from wacrm.api_keys import service as keys_service
from wacrm.audit.service import CLI_ACTOR
from wacrm.kit.db import Database
from wacrm.settings import Settings, _persisted_secret

pytestmark = pytest.mark.slow
cli = test_cli.cli  # the CLI's session fixture: a migrated scratch database with an account
in_process = test_cli.in_process

START_TIMEOUT = 30.0  # two interpreters booting on a busy CI machine
REQUEST_TIMEOUT = 10.0
RACE_ROUNDS = 60  # a revocation that loses a race to a cache shows up within these


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_healthy(server: Server, deadline: float) -> None:
    while True:
        if server.process.poll() is not None:
            pytest.fail(f"server {server.name} exited early:\n{server.log_text()[-3000:]}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"server {server.name} not healthy in time:\n{server.log_text()[-3000:]}")
        time.sleep(0.1)


@pytest.fixture
def servers(cli: Cli, tmp_path: Path) -> Iterator[list[Server]]:
    """Two API processes on the CLI's scratch database (and the test Redis when there is one).

    They are started, not awaited: the test does its CLI work while they boot.
    """
    extra = {"WACRM_REDIS_URL": TEST_REDIS_URL} if TEST_REDIS_URL else {}
    # Every race round ends in one deliberate 401: keep the per-IP failure limit out of it.
    extra["WACRM_AUTH_FAILURES_PER_MINUTE"] = "10000"
    env = cli_env(cli.database_url, cli.home, **extra)
    started: list[Server] = []
    try:
        for name in ("A", "B"):
            port = _free_port()
            log = tmp_path / f"serve-{name}.log"
            with log.open("wb") as output:
                process = subprocess.Popen(
                    [str(WACRM), "serve", "--host", "127.0.0.1", "--port", str(port)],
                    cwd=cli.home,
                    env=env,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            started.append(Server(name, port, process, log))
        yield started
    finally:
        stop_servers(started)


def stop_servers(servers: list[Server]) -> None:
    """SIGTERM to all at once, then wait for each (SIGKILL one that does not stop)."""
    for server in servers:
        if server.process.poll() is None:
            server.process.terminate()
    for server in servers:
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=10)


def _me(http: httpx.Client, server: Server, plaintext: str) -> int:
    headers = {"Authorization": f"Bearer {plaintext}"}
    return http.get(f"{server.url}/api/v1/me", headers=headers).status_code


async def _create_keys(database_url: str, account_id: str, count: int) -> list[tuple[str, str]]:
    database = Database(database_url)
    try:
        async with database.sessions() as session:
            created = [
                await keys_service.create_key(
                    session,
                    account_id=uuid.UUID(account_id),
                    actor=CLI_ACTOR,
                    name=f"race {n}",
                    scopes=[],
                )
                for n in range(count)
            ]
            await session.commit()
    finally:
        await database.dispose()
    return [(str(c.key.id), c.plaintext) for c in created]


def test_a_revocation_is_seen_at_once_by_every_process(cli, in_process, servers):
    # While the servers boot: two keys from the CLI's commands (in this process, to spare
    # two interpreter start-ups; the real script revokes one of them below), and a batch
    # more for the race rounds.
    account_id = cli.facts["account_id"]
    create = ("keys", "create", "--account", account_id, "--scope", "contacts:read", "--json")
    first = in_process(*create, "--name", "mp one")
    second = in_process(*create, "--name", "mp two")
    assert first.returncode == 0 and second.returncode == 0, (first.stderr, second.stderr)
    one, two = json.loads(first.stdout), json.loads(second.stdout)
    batch = asyncio.run(_create_keys(cli.database_url, account_id, RACE_ROUNDS))
    password = cli.facts["account"]["owner"]["password"]

    deadline = time.monotonic() + START_TIMEOUT
    for server in servers:
        _wait_until_healthy(server, deadline)
    a, b = servers

    with httpx.Client(timeout=REQUEST_TIMEOUT) as http:
        # Use both keys on both processes, twice: anything cacheable is now cached.
        for _ in range(2):
            for server in servers:
                assert _me(http, server, one["plaintext"]) == 200
                assert _me(http, server, two["plaintext"]) == 200

        # Revoke key one through the session API on process A...
        login = http.post(
            f"{a.url}/api/auth/login", json={"email": "owner@example.com", "password": password}
        )
        assert login.status_code == 200, login.text
        csrf = {"X-CSRF-Token": login.json()["data"]["csrf_token"]}
        revoked = http.delete(f"{a.url}/api/account/api-keys/{one['key']['id']}", headers=csrf)
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["data"]["status"] == "revoked"

        # ...and the very next request on process B fails, then on A too.
        assert _me(http, b, one["plaintext"]) == 401
        assert _me(http, a, one["plaintext"]) == 401
        assert _me(http, b, two["plaintext"]) == 200

        # Key two is revoked by the real `wacrm keys revoke`: same result on both servers.
        cli.run("keys", "revoke", two["key"]["id"])
        assert _me(http, b, two["plaintext"]) == 401
        assert _me(http, a, two["plaintext"]) == 401

        # Not once by luck: many rounds of warm on B, revoke on A, next request on B.
        stale = []
        for key_id, plaintext in batch:
            assert _me(http, b, plaintext) == _me(http, b, plaintext) == 200
            response = http.delete(f"{a.url}/api/account/api-keys/{key_id}", headers=csrf)
            assert response.status_code == 200, response.text
            if _me(http, b, plaintext) != 401:
                stale.append(key_id)
        assert not stale, f"{len(stale)} of {len(batch)} revoked keys still worked on B"

        # Sessions are server-side too: the cookie from A works on B, and B's roster agrees.
        roster = http.get(f"{b.url}/api/account/api-keys")
        assert roster.status_code == 200, roster.text
        status = {key["id"]: key["status"] for key in roster.json()["data"]}
        assert status[one["key"]["id"]] == status[two["key"]["id"]] == "revoked"
        assert http.post(f"{b.url}/api/auth/logout", headers=csrf).status_code == 204
        assert http.get(f"{a.url}/api/auth/session").status_code == 401

    for server in servers:
        assert server.process.poll() is None, f"server {server.name} died"
        log = server.log_text()
        for secret in (one["plaintext"], two["plaintext"], password, batch[0][1]):
            assert secret not in log, f"a secret reached the log of server {server.name}"
        assert "Traceback" not in log


# ---- the embedded default's secret, made by whichever process starts first ---------------


def _first_start(var_dir: str, barrier: Any, results: Any) -> None:
    barrier.wait(timeout=20)
    try:
        results.put(_persisted_secret(Path(var_dir) / "secret_key"))
    except Exception as exc:  # reported to the test, not lost in a child
        results.put(f"error: {exc!r}")


def test_concurrent_first_starts_agree_on_one_secret(tmp_path):
    context = multiprocessing.get_context("fork")
    starts = 8
    barrier, results = context.Barrier(starts), context.Queue()
    children = [
        context.Process(target=_first_start, args=(str(tmp_path), barrier, results))
        for _ in range(starts)
    ]
    for child in children:
        child.start()
    try:
        secrets_seen = [results.get(timeout=20) for _ in children]
    finally:
        for child in children:
            child.join(timeout=10)
            if child.is_alive():
                child.kill()
    assert len(set(secrets_seen)) == 1, secrets_seen
    assert len(secrets_seen[0]) >= 32 and not secrets_seen[0].startswith("error")
    path = tmp_path / "secret_key"
    assert path.read_text().strip() == secrets_seen[0]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"], "no drafts left behind"
    assert _persisted_secret(path) == secrets_seen[0], "the next start reuses it"


def test_an_empty_secret_file_is_refused_never_used(tmp_path):
    # What a start that died between creating and writing the file used to leave behind.
    (tmp_path / "secret_key").touch()
    with pytest.raises(ValidationError, match="WACRM_SECRET_KEY"):
        Settings(var_dir=tmp_path, database_url="sqlite+aiosqlite:///x.db", secret_key="")
