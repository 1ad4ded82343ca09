"""The ``wacrm`` command: run, migrate, bootstrap and operate the service."""

from __future__ import annotations

import os
import uuid
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.accounts import repository as accounts_repository
from wacrm.accounts import service as accounts_service
from wacrm.accounts.schemas import AccountOut
from wacrm.api_keys import service as keys_service
from wacrm.api_keys.schemas import ApiKeyOut
from wacrm.api_keys.scopes import ALL_SCOPES
from wacrm.audit.service import CLI_ACTOR
from wacrm.channels import service as channels_service
from wacrm.channels.cli import channel_json, channels_app
from wacrm.kit.cli import JsonFlag, fail, in_transaction, print_json, settings_or_exit
from wacrm.kit.clock import utcnow
from wacrm.kit.errors import AppError
from wacrm.models import ApiKey, Role
from wacrm.settings import get_settings
from wacrm.whatsapp.sandbox.cli import sandbox_app

app = typer.Typer(help="wacrm: a self-hosted WhatsApp CRM backend.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
accounts_app = typer.Typer(help="Accounts and their members.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")
app.add_typer(channels_app, name="channels")
app.add_typer(sandbox_app, name="sandbox")


def _key_json(key: ApiKey) -> dict[str, Any]:
    return ApiKeyOut.of(key, utcnow()).model_dump(mode="json")


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations (the same ones on SQLite and PostgreSQL)."""
    from alembic import command

    from wacrm.kit.migrations import alembic_config

    settings = get_settings()
    if settings.is_sqlite:
        settings.var_dir.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(settings.database_url), revision)
    typer.echo(f"database schema is up to date ({revision})")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="API processes (more than 1 needs PostgreSQL)")
    ] = 1,
    no_worker: Annotated[
        bool,
        typer.Option(
            "--no-worker", help="API only: no in-process worker (run `wacrm worker` instead)"
        ),
    ] = False,
) -> None:
    """Run the HTTP server (and, in the embedded default, the worker and the sandbox)."""
    import uvicorn

    from wacrm.telemetry.logs import logging_config
    from wacrm.telemetry.metrics import multiprocess_directory

    # The sandbox and its webhooks live at our own address unless told otherwise.
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
    os.environ.setdefault("WACRM_PUBLIC_BASE_URL", f"http://{shown_host}:{port}")
    if no_worker:
        os.environ["WACRM_WORKER_IN_PROCESS"] = "false"
    settings = settings_or_exit()
    if workers > 1 and settings.is_sqlite:
        fail(
            "--workers > 1 needs PostgreSQL (set WACRM_DATABASE_URL): SQLite allows one "
            "writer at a time, so several API processes would queue on its lock and fail "
            "with 'database is locked' under load. Use --workers 1 with SQLite."
        )
    with multiprocess_directory(workers):
        uvicorn.run(
            "wacrm.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            proxy_headers=True,
            access_log=False,  # ours carries the route template and the request id
            log_config=logging_config(settings),
            # uvicorn restarts a process that does not answer its health check in time; a
            # busy machine importing N processes at once can need far more than the default 5 s.
            timeout_worker_healthcheck=60,
        )


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Concurrent job loops", min=1, max=64)] = 1,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve this worker's Prometheus metrics on this port", min=1, max=65535),
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Interface for --metrics-port")] = "127.0.0.1",
) -> None:
    """Run a worker process: C concurrent job loops draining due work (scale-out: run the
    API with `wacrm serve --no-worker`)."""
    import asyncio

    from wacrm.telemetry.logs import configure_logging
    from wacrm.telemetry.metrics import serve_metrics
    from wacrm.worker.jobs import run_worker_process

    configure_logging(settings_or_exit())
    if metrics_port is not None:
        serve_metrics(metrics_host, metrics_port)
    asyncio.run(run_worker_process(concurrency))


@accounts_app.command("create")
def accounts_create(
    name: str,
    owner_email: Annotated[str, typer.Option(help="The owner's login email")],
    as_json: JsonFlag = False,
) -> None:
    """Create an account and its owner; the owner's password is printed once."""
    created = in_transaction(lambda s: accounts_service.create_account(s, name, owner_email))
    payload = {
        "account": {"id": str(created.account.id), "name": created.account.name},
        "owner": {"email": created.owner.email, "password": created.password},
    }
    if as_json:
        print_json(payload)
    else:
        typer.echo(f"account {created.account.id} ({created.account.name})")
        typer.echo(f"owner   {created.owner.email}  password: {created.password}  (shown once)")


@accounts_app.command("list")
def accounts_list(as_json: JsonFlag = False) -> None:
    """Every account with its id, owner and creation time (the id other commands take)."""
    rows = in_transaction(accounts_repository.list_accounts)
    accounts = [AccountOut.of_row(row).model_dump(mode="json") for row in rows]
    if as_json:
        print_json({"accounts": accounts})
        return
    if not accounts:
        typer.echo("No accounts yet: `wacrm accounts create` or `wacrm demo` makes one.")
    for account in accounts:
        created = account["created_at"][:16].replace("T", " ")
        owner = account["owner_email"] or "(no owner)"
        typer.echo(f"{account['id']}  {created}  {owner}  {account['name']}")


@accounts_app.command("add-member")
def accounts_add_member(
    account: Annotated[uuid.UUID, typer.Option(help="Account id")],
    email: Annotated[str, typer.Option(help="The member's login email")],
    role: Annotated[Role, typer.Option(help="admin, agent or viewer")] = Role.AGENT,
    as_json: JsonFlag = False,
) -> None:
    """Add a new user to an account with a role; their password is printed once."""

    async def work(session: AsyncSession) -> tuple[str, str]:
        if await accounts_repository.get_account(session, account) is None:
            raise AppError("No such account.")
        user, password = await accounts_service.create_user(session, email)
        await accounts_service.add_member(session, account, user.id, role)
        return user.email, password

    email, password = in_transaction(work)
    if as_json:
        print_json({"member": {"email": email, "role": role.value, "password": password}})
    else:
        typer.echo(f"{role.value} {email}  password: {password}  (shown once)")


@keys_app.command("create")
def keys_create(
    account: Annotated[uuid.UUID, typer.Option(help="Account id")],
    name: Annotated[str, typer.Option(help="1-80 characters")],
    scope: Annotated[list[str] | None, typer.Option(help="Repeat for each scope")] = None,
    expires_in_days: Annotated[int | None, typer.Option(help="1-365; omit: never")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an API key; the plaintext is printed this once."""

    async def work(session: AsyncSession) -> keys_service.CreatedKey:
        if await accounts_repository.get_account(session, account) is None:
            raise AppError("No such account.")
        return await keys_service.create_key(
            session,
            account_id=account,
            actor=CLI_ACTOR,
            name=name,
            scopes=scope or [],
            expires_in_days=expires_in_days,
        )

    created = in_transaction(work)
    if as_json:
        print_json({"key": _key_json(created.key), "plaintext": created.plaintext})
    else:
        typer.echo(f"key {created.key.id} ({created.key.prefix}…)")
        typer.echo(f"secret: {created.plaintext}  (shown once: store it now)")


@keys_app.command("list")
def keys_list(
    account: Annotated[uuid.UUID, typer.Option(help="Account id")], as_json: JsonFlag = False
) -> None:
    """The account's key roster (no secrets)."""
    rows = in_transaction(lambda s: keys_service.roster(s, account))
    now = utcnow()
    keys = [ApiKeyOut.of_row(row, now).model_dump(mode="json") for row in rows]
    if as_json:
        print_json({"keys": keys})
        return
    for key in keys:
        scopes = ",".join(key["scopes"]) or "(no scopes)"
        typer.echo(f"{key['id']}  {key['status']:<8} {key['prefix']}  {key['name']}  {scopes}")


@keys_app.command("revoke")
def keys_revoke(key_id: uuid.UUID, as_json: JsonFlag = False) -> None:
    """Revoke a key at once (every process sees it on the next request)."""

    async def work(session: AsyncSession) -> ApiKey:
        key = await session.get(ApiKey, key_id)
        if key is None:
            raise AppError("No such API key.")
        return await keys_service.revoke_key(
            session, account_id=key.account_id, key_id=key_id, actor=CLI_ACTOR
        )

    key = in_transaction(work)
    if as_json:
        print_json({"key": _key_json(key)})
    else:
        typer.echo(f"revoked {key.id} ({key.prefix})")


@app.command()
def demo(as_json: JsonFlag = False) -> None:
    """Create the demo account and a demo key with every scope, once (embedded default)."""

    settings = get_settings()

    async def work(session: AsyncSession) -> dict[str, Any] | None:
        if await accounts_repository.count_accounts(session) > 0:
            return None
        created = await accounts_service.create_account(session, "Demo Co", "demo@example.com")
        key = await keys_service.create_key(
            session,
            account_id=created.account.id,
            actor=CLI_ACTOR,
            name="demo key",
            scopes=ALL_SCOPES,
        )
        channel = await channels_service.add_sandbox_channel(
            session, settings, account_id=created.account.id
        )
        return {
            "channel": channel_json(channel),
            "account": {"id": str(created.account.id), "name": created.account.name},
            "owner": {"email": created.owner.email, "password": created.password},
            "key": _key_json(key.key),
            "plaintext": key.plaintext,
        }

    payload = in_transaction(work)
    if as_json:
        print_json(payload or {})
        return
    if payload is None:
        typer.echo("Accounts already exist; the demo credentials were printed on first start.")
        typer.echo("Account ids: wacrm accounts list")
        typer.echo("New key: wacrm keys create --account <id> --name <name> --scope <scope>")
        typer.echo("Numbers (phone_number_id): wacrm channels list --account <id>")
        return
    typer.echo(
        "\n".join(
            [
                "",
                "  Demo account created. These are shown once: save them now.",
                f"  Account: {payload['account']['name']} (id {payload['account']['id']})",
                f"  Dashboard login: {payload['owner']['email']} / {payload['owner']['password']}",
                f"  API key (all scopes): {payload['plaintext']}",
                f"  Try: curl -H 'Authorization: Bearer {payload['plaintext']}' "
                f"{settings.public_base_url}/api/v1/me",
                f"  Sandbox WhatsApp number: {payload['channel']['display_phone']} "
                f"(phone_number_id {payload['channel']['phone_number_id']})",
                "  A customer writes in: .venv/bin/wacrm sandbox inbound --phone-number-id "
                f"{payload['channel']['phone_number_id']} --from +14155550123 --text 'Hi' "
                f"--target {settings.public_base_url}",
                "",
            ]
        )
    )
