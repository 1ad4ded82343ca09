"""``wacrm channels``: connect WhatsApp numbers from the command line."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.accounts import repository as accounts_repository
from wacrm.channels import repository, service
from wacrm.kit.cli import JsonFlag, in_transaction, print_json
from wacrm.kit.errors import AppError
from wacrm.models import Channel, ChannelKind
from wacrm.settings import get_settings

channels_app = typer.Typer(help="WhatsApp numbers (channels).", no_args_is_help=True)
AccountOption = Annotated[uuid.UUID, typer.Option("--account", help="Account id")]


def channel_json(channel: Channel) -> dict[str, Any]:
    """Public fields only: tokens and secrets are never printed back."""
    return {
        "id": str(channel.id),
        "phone_number_id": channel.phone_number_id,
        "display_phone": channel.display_phone,
        "kind": channel.kind,
        "waba_id": channel.waba_id,
        "is_default": channel.is_default,
        "verify_token": channel.verify_token,
    }


async def _require_account(session: AsyncSession, account: uuid.UUID) -> None:
    if await accounts_repository.get_account(session, account) is None:
        raise AppError("No such account.")


@channels_app.command("add")
def add(
    account: AccountOption,
    phone_number_id: Annotated[str, typer.Option(help="Meta's phone number id")],
    display_phone: Annotated[str, typer.Option(help="The number, E.164")],
    access_token: Annotated[str, typer.Option(help="Meta access token (stored encrypted)")],
    app_secret: Annotated[str, typer.Option(help="Meta app secret (stored encrypted)")],
    waba_id: Annotated[str, typer.Option(help="WhatsApp Business Account id")] = "",
    default: Annotated[bool, typer.Option("--default", help="Make it the default")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Connect a Meta WhatsApp number."""
    settings = get_settings()

    async def work(session: AsyncSession) -> Channel:
        await _require_account(session, account)
        return await service.add_channel(
            session,
            settings,
            account_id=account,
            kind=ChannelKind.META,
            phone_number_id=phone_number_id,
            display_phone=display_phone,
            access_token=access_token,
            app_secret=app_secret,
            waba_id=waba_id,
            make_default=default,
        )

    _report(in_transaction(work), as_json)


@channels_app.command("add-sandbox")
def add_sandbox(account: AccountOption, as_json: JsonFlag = False) -> None:
    """Connect a simulated number served by the built-in sandbox."""
    settings = get_settings()

    async def work(session: AsyncSession) -> Channel:
        await _require_account(session, account)
        return await service.add_sandbox_channel(session, settings, account_id=account)

    _report(in_transaction(work), as_json)


@channels_app.command("list")
def list_(account: AccountOption, as_json: JsonFlag = False) -> None:
    """The account's numbers."""
    channels = in_transaction(lambda s: repository.list_channels(s, account))
    if as_json:
        print_json({"channels": [channel_json(c) for c in channels]})
        return
    for channel in channels:
        mark = "*" if channel.is_default else " "
        typer.echo(
            f"{mark} {channel.id}  {channel.kind:<8} {channel.display_phone}  "
            f"phone_number_id={channel.phone_number_id}"
        )


def _report(channel: Channel, as_json: bool) -> None:
    if as_json:
        print_json({"channel": channel_json(channel)})
    else:
        typer.echo(
            f"channel {channel.id} ({channel.kind}) {channel.display_phone} "
            f"phone_number_id={channel.phone_number_id}"
        )
