"""Adding numbers, choosing the default, and reading their secrets back for the client.

The access token and app secret go in and are never read back out, except decrypted for
the Cloud API client and the webhook signature check.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.channels import repository
from wacrm.kit.crypto import decrypt, encrypt
from wacrm.kit.errors import Conflict, NotFound, field_error
from wacrm.kit.phone import phone_or_400
from wacrm.models import Channel, ChannelKind
from wacrm.settings import Settings


@dataclass(frozen=True, repr=False)
class ChannelCredentials:
    """What the Cloud API client needs to send from a number (secrets decrypted)."""

    channel_id: uuid.UUID
    account_id: uuid.UUID
    kind: ChannelKind
    phone_number_id: str
    base_url: str
    access_token: str
    waba_id: str = ""

    def __repr__(self) -> str:
        return f"ChannelCredentials(phone_number_id={self.phone_number_id!r})"


def _require(value: str, field: str) -> str:
    value = value.strip()
    if not value or len(value) > 512 or not value.isprintable():
        raise field_error(field, "is required (printable, up to 512 characters)")
    return value


def _waba_id(value: str, kind: ChannelKind) -> str:
    value = value.strip()
    numeric = value.isascii() and value.isdigit() and len(value) <= 64
    if kind is ChannelKind.META and value and not numeric:
        raise field_error("waba_id", "must be Meta's numeric WhatsApp Business Account id")
    return value


async def add_channel(
    session: AsyncSession,
    settings: Settings,
    *,
    account_id: uuid.UUID,
    kind: ChannelKind,
    phone_number_id: str,
    display_phone: str,
    access_token: str,
    app_secret: str,
    waba_id: str = "",
    verify_token: str | None = None,
    make_default: bool = False,
) -> Channel:
    phone_number_id = _require(phone_number_id, "phone_number_id")
    if not (phone_number_id.isascii() and phone_number_id.isdigit()) or len(phone_number_id) > 64:
        raise field_error("phone_number_id", "must be Meta's numeric id of the number")
    waba_id = _waba_id(waba_id, kind)
    display = phone_or_400(display_phone, "display_phone")
    access_token = _require(access_token, "access_token")
    app_secret = _require(app_secret, "app_secret")
    first = await repository.count_for_account(session, account_id) == 0
    if make_default or first:
        await repository.clear_default(session, account_id)
    channel = Channel(
        account_id=account_id,
        kind=kind.value,
        phone_number_id=phone_number_id,
        waba_id=waba_id,
        display_phone=display,
        access_token_encrypted=encrypt(settings.secret_key, access_token),
        app_secret_encrypted=encrypt(settings.secret_key, app_secret),
        verify_token=verify_token or secrets.token_urlsafe(24),
        is_default=make_default or first,
    )
    session.add(channel)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise Conflict(
            f"The number {phone_number_id} is already connected.",
            details=[{"field": "phone_number_id", "message": "is already connected"}],
        ) from None
    return channel


async def add_sandbox_channel(
    session: AsyncSession, settings: Settings, *, account_id: uuid.UUID
) -> Channel:
    """A simulated number: the sandbox accepts its token and signs with its secret."""
    if not settings.sandbox_enabled:
        raise Conflict("The WhatsApp sandbox is off in this deployment.")
    suffix = secrets.randbelow(10**4)
    return await add_channel(
        session,
        settings,
        account_id=account_id,
        kind=ChannelKind.SANDBOX,
        phone_number_id=str(10**14 + secrets.randbelow(9 * 10**14)),
        display_phone=f"+1415555{suffix:04d}",
        access_token=settings.sandbox_access_token,
        app_secret=settings.sandbox_app_secret,
        waba_id="sandbox",
    )


def credentials(settings: Settings, channel: Channel) -> ChannelCredentials:
    kind = ChannelKind(channel.kind)
    base = settings.sandbox_base_url if kind is ChannelKind.SANDBOX else settings.graph_base_url
    return ChannelCredentials(
        channel_id=channel.id,
        account_id=channel.account_id,
        kind=kind,
        phone_number_id=channel.phone_number_id,
        base_url=base,
        access_token=decrypt(settings.secret_key, channel.access_token_encrypted),
        waba_id=channel.waba_id,
    )


async def list_channels(session: AsyncSession, account_id: uuid.UUID) -> list[Channel]:
    """The account's numbers, oldest first."""
    return await repository.list_channels(session, account_id)


async def get_channel(
    session: AsyncSession, account_id: uuid.UUID, channel_id: uuid.UUID
) -> Channel:
    channel = await repository.get_channel(session, account_id, channel_id)
    if channel is None:
        raise NotFound("WhatsApp number")
    return channel


async def set_default_channel(
    session: AsyncSession, account_id: uuid.UUID, channel_id: uuid.UUID
) -> Channel:
    """Make this number the one sends use when they name none."""
    channel = await get_channel(session, account_id, channel_id)
    if channel.is_default:
        return channel
    try:
        async with session.begin_nested():
            await repository.clear_default(session, account_id)
            channel.is_default = True
            await session.flush()
    except IntegrityError:
        # Another default was chosen at the same moment (one default per account).
        raise Conflict("The default number changed meanwhile; reload and try again.") from None
    return channel


async def app_secrets(session: AsyncSession, settings: Settings) -> list[bytes]:
    """Every secret an inbound webhook may be signed with: Meta's, the sandbox's, each number's."""
    found = {
        decrypt(settings.secret_key, e) for e in await repository.all_app_secrets_encrypted(session)
    }
    if settings.meta_app_secret:
        found.add(settings.meta_app_secret)
    if settings.sandbox_enabled:
        found.add(settings.sandbox_app_secret)
    return [secret.encode() for secret in sorted(found)]


async def resolve_channel(
    session: AsyncSession, account_id: uuid.UUID, channel_id: uuid.UUID | None
) -> Channel | None:
    """The named channel (404 if not the account's), else the default, else None."""
    if channel_id is not None:
        channel = await repository.get_channel(session, account_id, channel_id)
        if channel is None:
            raise NotFound("Channel")
        return channel
    return await repository.default_channel(session, account_id)


def webhook_secrets_of(settings: Settings, channel: Channel) -> list[bytes]:
    """The secrets whose signature may speak for this number: its own app secret, and for
    Meta numbers the deployment's Meta app secret. Another number's secret never does."""
    secrets_ = [decrypt(settings.secret_key, channel.app_secret_encrypted).encode()]
    if ChannelKind(channel.kind) is ChannelKind.META and settings.meta_app_secret:
        secrets_.append(settings.meta_app_secret.encode())
    return secrets_
