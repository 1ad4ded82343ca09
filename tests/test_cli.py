"""The real ``wacrm`` console script, run as a subprocess against a scratch database.

The scratch database is a SQLite file in a temporary directory, or, when
WACRM_TEST_DATABASE_URL is set, a PostgreSQL database of its own (``wacrm_cli_<random>``,
created and dropped here) so the shared test schema is never touched.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from tests.conftest import TEST_DATABASE_URL, migrate
from wacrm.api_keys.scopes import ALL_SCOPES
from wacrm.api_keys.secret import hash_key
from wacrm.app import create_app
from wacrm.kit.clock import utcnow
from wacrm.models import Account, ApiKey
from wacrm.settings import Settings

WACRM = Path(sys.executable).with_name("wacrm")
TIMEOUT = 60
HEX64 = re.compile(r"[0-9a-fA-F]{64}")
KEY_FORMAT = re.compile(r"wacrm_live_[0-9A-Za-z]{38}")
ROSTER_FIELDS = {
    "id",
    "name",
    "prefix",
    "scopes",
    "status",
    "created_at",
    "created_by",
    "expires_at",
    "last_used_at",
    "revoked_at",
    "revoked_by",
    "rolled_to_id",
}


# ---- scratch databases (also used by test_multiprocess and test_migrations) -----------


def _psql(url: Any, sql: str) -> None:
    env = {**os.environ}
    if url.password:
        env["PGPASSWORD"] = url.password
    subprocess.run(
        [
            "psql",
            "-h",
            url.host or "127.0.0.1",
            "-p",
            str(url.port or 5432),
            "-U",
            url.username or "postgres",
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
            "-c",
            sql,
        ],
        check=True,
        env=env,
        capture_output=True,
        timeout=30,
    )


@contextmanager
def scratch_database(directory: Path) -> Iterator[str]:
    """A fresh, empty database URL: PostgreSQL when the suite runs on it, else SQLite."""
    if not TEST_DATABASE_URL:
        yield f"sqlite+aiosqlite:///{directory / 'wacrm.db'}"
        return
    base = make_url(TEST_DATABASE_URL)
    name = f"wacrm_cli_{secrets.token_hex(6)}"
    _psql(base, f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        _psql(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cli_env(database_url: str, home: Path, **extra: str) -> dict[str, str]:
    """The environment minus inherited WACRM_ settings (bar the Argon2 cost), plus ours."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("WACRM_") or k.startswith("WACRM_ARGON2_")
    }
    env.update(WACRM_DATABASE_URL=database_url, WACRM_VAR_DIR=str(home / "var"), **extra)
    return env


@dataclass
class Cli:
    database_url: str
    home: Path
    facts: dict[str, Any] = field(default_factory=dict)

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(WACRM), *args],
            cwd=self.home,  # no stray .env
            env=cli_env(self.database_url, self.home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run_many(self, *commands: Sequence[str]) -> list[subprocess.CompletedProcess[str]]:
        """Independent commands at once: each pays the interpreter start-up in parallel."""
        processes = [(command, self.start(*command)) for command in commands]
        results = []
        for command, process in processes:
            try:
                stdout, stderr = process.communicate(timeout=TIMEOUT)
            finally:
                if process.poll() is None:
                    process.kill()
            results.append(
                subprocess.CompletedProcess(list(command), process.returncode, stdout, stderr)
            )
        return results

    def run(self, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        result = self.run_many(args)[0]
        assert result.returncode == code, (args, result.returncode, result.stdout, result.stderr)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)

    def settings(self) -> Settings:
        return Settings(
            env="test",
            var_dir=self.home / "var",
            database_url=self.database_url,
            redis_url=None,
            secret_key="cli-test-secret",
        )


def assert_clean_failure(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert result.returncode == 1, (result.args, result.returncode, result.stdout, result.stderr)
    assert result.stdout == "", "nothing half-printed on stdout"
    assert result.stderr.startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) <= 3, result.stderr
    for phrase in phrases:
        assert phrase.lower() in result.stderr.lower(), (phrase, result.stderr)


@pytest.fixture(scope="session")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """A migrated scratch database with one account and one contacts:read key, all via the CLI."""
    if "cli" in _SHARED:  # test_multiprocess imports this fixture: one database for both
        yield _SHARED["cli"]
        return
    home = tmp_path_factory.mktemp("cli")
    with scratch_database(home) as url:
        runner = _SHARED["cli"] = Cli(url, home)
        runner.run("db", "upgrade")
        runner.facts["account"] = runner.json(
            "accounts", "create", "Acme Ltd", "--owner-email", "Owner@Example.com"
        )
        runner.facts["account_id"] = runner.facts["account"]["account"]["id"]
        runner.facts["key"] = runner.json(
            *("keys", "create", "--account", runner.facts["account_id"], "--name", "n8n prod"),
            *("--scope", "contacts:read", "--expires-in-days", "30"),
        )
        try:
            yield runner
        finally:
            del _SHARED["cli"]


_SHARED: dict[str, Cli] = {}


@pytest.fixture
def in_process(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The same commands without an interpreter start-up each: for the many variations."""
    from typer.testing import CliRunner

    from wacrm.cli import app as cli_app
    from wacrm.settings import get_settings

    for name in [k for k in os.environ if k.startswith("WACRM_")]:
        monkeypatch.delenv(name)
    for name, value in cli_env(cli.database_url, cli.home).items():
        if name.startswith("WACRM_"):
            monkeypatch.setenv(name, value)
    monkeypatch.chdir(cli.home)
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str) -> subprocess.CompletedProcess[str]:
        # A thread of its own: the CLI runs its own event loop, even from an async test.
        with ThreadPoolExecutor(1) as thread:
            result = thread.submit(runner.invoke, cli_app, list(args)).result()
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)

    yield invoke
    get_settings.cache_clear()


@contextmanager
def app_client(runner: Cli) -> Iterator[tuple[Any, httpx.AsyncClient]]:
    application = create_app(runner.settings())
    transport = httpx.ASGITransport(app=application)
    yield application, httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def _me(runner: Cli, plaintext: str) -> httpx.Response:
    with app_client(runner) as (application, http):
        async with http:
            response = await http.get(
                "/api/v1/me", headers={"Authorization": f"Bearer {plaintext}"}
            )
        await application.state.database.dispose()
    return response


# ---- tests ------------------------------------------------------------------------------


async def test_accounts_create_prints_the_account_and_the_owner_password_once(cli):
    created = cli.facts["account"]
    assert set(created) == {"account", "owner"}
    assert set(created["account"]) == {"id", "name"}
    assert created["account"]["name"] == "Acme Ltd"
    assert set(created["owner"]) == {"email", "password"}
    assert created["owner"]["email"] == "owner@example.com"
    password = created["owner"]["password"]
    assert len(password) >= 16

    with app_client(cli) as (application, http):
        async with http:
            response = await http.post(
                "/api/auth/login", json={"email": "OWNER@example.com", "password": password}
            )
            assert response.status_code == 200, response.text
            assert response.json()["data"]["role"] == "owner"
            assert response.json()["data"]["account_id"] == created["account"]["id"]
        await application.state.database.dispose()


async def test_keys_create_prints_roster_fields_and_the_plaintext_once(cli):
    created = cli.facts["key"]
    assert set(created) == {"key", "plaintext"}
    key, plaintext = created["key"], created["plaintext"]
    assert KEY_FORMAT.fullmatch(plaintext)
    assert set(key) == ROSTER_FIELDS
    assert key["name"] == "n8n prod"
    assert key["scopes"] == ["contacts:read"]
    assert key["status"] == "active"
    assert key["prefix"] == plaintext[: len("wacrm_live_") + 8]
    assert key["revoked_at"] is None and key["created_by"] is None
    moment = datetime.fromisoformat(key["expires_at"])
    assert moment.utcoffset() == timedelta(0)
    assert abs(moment - (utcnow() + timedelta(days=30))) < timedelta(minutes=5)
    assert not HEX64.search(json.dumps(key))

    response = await _me(cli, plaintext)
    assert response.status_code == 200
    assert response.json()["data"]["key"]["scopes"] == ["contacts:read"]
    assert response.json()["data"]["account"]["name"] == "Acme Ltd"


def test_bad_input_exits_1_with_a_clear_message_and_no_traceback(cli, in_process):
    # The real script once (exit code and stderr as a shell sees them), then variations.
    create = ("keys", "create", "--account", cli.facts["account_id"], "--name", "k")
    unknown_scope = cli.run(*create, "--scope", "contacts:read", "--scope", "contacts:x", code=1)
    assert_clean_failure(unknown_scope, "unknown scope", "contacts:x")
    assert_clean_failure(
        in_process(*create, "--expires-in-days", "0"), "expires_in_days", "1 to 365"
    )
    missing_account = ("--account", "00000000-0000-4000-8000-000000000000", "--name", "k")
    assert_clean_failure(in_process("keys", "create", *missing_account), "no such account")


def test_more_bad_input_changes_nothing(cli, in_process):
    account_id = cli.facts["account_id"]
    before = json.loads(in_process("keys", "list", "--account", account_id, "--json").stdout)
    create = ("keys", "create", "--account", account_id, "--name")
    assert_clean_failure(in_process(*create, "k", "--expires-in-days", "-1"), "expires_in_days")
    assert_clean_failure(in_process(*create, "k", "--expires-in-days", "366"), "expires_in_days")
    assert_clean_failure(in_process(*create, "   "), "name", "empty")
    assert_clean_failure(in_process(*create, "x" * 81), "name", "80")
    assert_clean_failure(in_process(*create, "tab\there"), "name", "control")
    assert_clean_failure(in_process(*create, "k", "--scope", ""), "unknown scope")
    assert_clean_failure(in_process(*create, "k", "--scope", "CONTACTS:READ"), "unknown scope")
    missing = "00000000-0000-4000-8000-000000000000"
    assert_clean_failure(in_process("keys", "revoke", missing), "no such api key")
    duplicate = ("accounts", "create", "Again", "--owner-email", "OWNER@example.com")
    assert_clean_failure(in_process(*duplicate), "already exists")
    assert_clean_failure(in_process("accounts", "create", "X", "--owner-email", "nope"), "email")
    assert_clean_failure(in_process("accounts", "create", " ", "--owner-email", "a@b.io"), "name")

    for usage_error in (
        ("keys", "create", "--account", "not-a-uuid", "--name", "k"),
        ("keys", "create", "--account", account_id, "--name", "k", "--expires-in-days", "x"),
        ("keys", "revoke", "123"),
    ):
        result = in_process(*usage_error)
        assert result.returncode == 2, result  # the parser's usage error
        assert "Traceback" not in result.stderr

    after = json.loads(in_process("keys", "list", "--account", account_id, "--json").stdout)
    assert after == before


def test_accounts_list_shows_each_account_with_its_id_and_owner(cli, in_process):
    result = in_process("accounts", "list", "--json")
    assert result.returncode == 0, result.stderr
    accounts = json.loads(result.stdout)["accounts"]
    assert set(json.loads(result.stdout)) == {"accounts"}
    (acme,) = [a for a in accounts if a["id"] == cli.facts["account_id"]]
    assert set(acme) == {"id", "name", "owner_email", "created_at"}
    assert acme["name"] == "Acme Ltd" and acme["owner_email"] == "owner@example.com"
    moment = datetime.fromisoformat(acme["created_at"])
    assert moment.utcoffset() == timedelta(0)
    assert abs(moment - utcnow()) < timedelta(hours=1)
    password = cli.facts["account"]["owner"]["password"]
    assert password not in result.stdout and not HEX64.search(result.stdout)

    text = in_process("accounts", "list")
    assert text.returncode == 0, text.stderr
    (line,) = [line for line in text.stdout.splitlines() if cli.facts["account_id"] in line]
    assert line.startswith(cli.facts["account_id"])
    assert "owner@example.com" in line and line.endswith("Acme Ltd")
    assert password not in text.stdout


def test_keys_list_shows_the_roster_without_secrets(cli, in_process):
    result = in_process("keys", "list", "--account", cli.facts["account_id"], "--json")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)["keys"]
    assert cli.facts["key"]["key"]["id"] in [key["id"] for key in listed]
    for key in listed:
        assert set(key) == ROSTER_FIELDS
    plaintext = cli.facts["key"]["plaintext"]
    assert plaintext not in result.stdout
    assert plaintext[len("wacrm_live_") :] not in result.stdout
    assert not HEX64.search(result.stdout)
    text = in_process("keys", "list", "--account", cli.facts["account_id"])
    assert plaintext not in text.stdout and not HEX64.search(text.stdout)


async def test_revoking_twice_says_it_is_already_revoked(cli, in_process):
    created = json.loads(
        in_process(
            "keys", "create", "--account", cli.facts["account_id"], "--name", "r", "--json"
        ).stdout
    )
    key_id = created["key"]["id"]
    assert created["key"]["scopes"] == []
    assert (await _me(cli, created["plaintext"])).status_code == 200

    revoked = cli.run("keys", "revoke", key_id)
    assert "revoked" in revoked.stdout and key_id in revoked.stdout
    assert created["plaintext"] not in revoked.stdout
    assert (await _me(cli, created["plaintext"])).status_code == 401

    assert_clean_failure(in_process("keys", "revoke", key_id), "already revoked")
    listed = in_process("keys", "list", "--account", cli.facts["account_id"], "--json")
    roster = {key["id"]: key for key in json.loads(listed.stdout)["keys"]}
    assert roster[key_id]["status"] == "revoked", "revoked keys stay in the roster"
    assert roster[key_id]["revoked_at"] is not None


async def test_the_plaintext_is_stored_nowhere_in_the_database(cli):
    plaintext = cli.facts["key"]["plaintext"]
    password = cli.facts["account"]["owner"]["password"]
    with app_client(cli) as (application, http):
        async with http:
            headers = {"Authorization": f"Bearer {plaintext}"}
            assert (await http.get("/api/v1/me", headers=headers)).status_code == 200
            wrong = plaintext[:-1] + ("A" if plaintext[-1] != "A" else "B")
            bad = {"Authorization": f"Bearer {wrong}"}
            assert (await http.get("/api/v1/me", headers=bad)).status_code == 401
            response = await http.post(
                "/api/auth/login", json={"email": "owner@example.com", "password": password}
            )
            assert response.status_code == 200
        async with application.state.database.sessions() as session:
            key_id = uuid.UUID(cli.facts["key"]["key"]["id"])
            used = await session.scalar(select(ApiKey.last_used_at).where(ApiKey.id == key_id))
            assert used is not None, "the key was used, and that was written"
        await application.state.database.dispose()

    stored = _database_bytes(cli.database_url)
    everything = b"".join(stored.values())
    assert hash_key(plaintext).encode() in everything, "sanity: we are reading the real data"
    for secret in (plaintext, plaintext[len("wacrm_live_") :], password):
        for name, data in stored.items():
            assert secret.encode() not in data, f"a secret is stored in {name}"


def _database_bytes(database_url: str) -> dict[str, bytes]:
    """Every byte the database keeps: the SQLite file and its journals, or a pg_dump."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        database = Path(url.database or "")
        stored = {
            path.name: path.read_bytes()
            for path in database.parent.glob(database.name + "*")
            if path.is_file()
        }
        assert database.name in stored
        return stored
    dump = subprocess.run(
        [
            "pg_dump",
            *("-h", url.host or "127.0.0.1", "-p", str(url.port or 5432)),
            *("-U", url.username or "postgres", "--data-only", url.database or ""),
        ],
        capture_output=True,
        check=True,
        timeout=60,
        env={**os.environ, **({"PGPASSWORD": url.password} if url.password else {})},
    ).stdout
    return {"pg_dump": dump}


async def test_demo_creates_its_account_and_key_once(tmp_path):
    with scratch_database(tmp_path) as url:
        with ThreadPoolExecutor(1) as thread:  # Alembic runs its own event loop
            thread.submit(migrate, url).result()
        runner = Cli(url, tmp_path)
        first = runner.json("demo")
        assert {"account", "owner", "key", "plaintext"} <= set(first)
        assert KEY_FORMAT.fullmatch(first["plaintext"])
        assert first["key"]["scopes"] == [scope.value for scope in ALL_SCOPES]
        assert first["owner"]["password"]
        second = await asyncio.to_thread(_in_process_demo, runner)
        assert second.exit_code == 0, second.output
        assert json.loads(second.stdout) == {}, "the second run creates nothing"

        assert (await _me(runner, first["plaintext"])).status_code == 200
        with app_client(runner) as (application, _http):
            async with application.state.database.sessions() as session:
                assert await session.scalar(select(func.count()).select_from(Account)) == 1
                assert await session.scalar(select(func.count()).select_from(ApiKey)) == 1
            await application.state.database.dispose()


async def test_lost_demo_credentials_are_found_again_step_by_step(tmp_path):
    """The README's "Lost them?" passage: the account id, a new key, the phone_number_id."""
    with scratch_database(tmp_path) as url:
        with ThreadPoolExecutor(1) as thread:  # Alembic runs its own event loop
            thread.submit(migrate, url).result()
        runner = Cli(url, tmp_path)
        empty = runner.run("accounts", "list")
        assert "No accounts yet" in empty.stdout
        banner = runner.run("demo").stdout
        shown = re.search(r"Account: Demo Co \(id ([0-9a-f-]{36})\)", banner)
        assert shown, banner
        again = runner.run("demo").stdout
        assert "wacrm accounts list" in again

        (listed,) = runner.json("accounts", "list")["accounts"]
        account_id = listed["id"]
        assert account_id == shown.group(1)
        assert listed["name"] == "Demo Co" and listed["owner_email"] == "demo@example.com"
        key, channels = runner.run_many(
            ("keys", "create", "--account", account_id, "--name", "again", "--json"),
            ("channels", "list", "--account", account_id, "--json"),
        )
        assert key.returncode == 0 and channels.returncode == 0, (key.stderr, channels.stderr)
        (channel,) = json.loads(channels.stdout)["channels"]
        assert f"phone_number_id {channel['phone_number_id']}" in banner
        assert (await _me(runner, json.loads(key.stdout)["plaintext"])).status_code == 200


def _in_process_demo(runner: Cli) -> Any:
    from typer.testing import CliRunner

    from wacrm.cli import app as cli_app
    from wacrm.settings import get_settings

    get_settings.cache_clear()
    try:
        env = {k: None for k in os.environ if k.startswith("WACRM_")}
        env.update(cli_env(runner.database_url, runner.home))
        return CliRunner(env=env).invoke(cli_app, ["demo", "--json"])
    finally:
        get_settings.cache_clear()
