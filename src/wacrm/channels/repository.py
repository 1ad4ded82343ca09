"""All SQL about channels."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.models import Channel


async def list_channels(session: AsyncSession, account_id: uuid.UUID) -> list[Channel]:
    statement = select(Channel).where(Channel.account_id == account_id).order_by(Channel.created_at)
    return list((await session.execute(statement)).scalars())


async def get_channel(
    session: AsyncSession, account_id: uuid.UUID, channel_id: uuid.UUID
) -> Channel | None:
    statement = select(Channel).where(Channel.account_id == account_id, Channel.id == channel_id)
    channel: Channel | None = (await session.execute(statement)).scalar_one_or_none()
    return channel


async def default_channel(session: AsyncSession, account_id: uuid.UUID) -> Channel | None:
    statement = (
        select(Channel)
        .where(Channel.account_id == account_id)
        .order_by(Channel.is_default.desc(), Channel.created_at)
        .limit(1)
    )
    channel: Channel | None = (await session.execute(statement)).scalar_one_or_none()
    return channel


async def by_phone_number_id(session: AsyncSession, phone_number_id: str) -> Channel | None:
    """Inbound webhooks name the number, not the account: this lookup is global on purpose."""
    statement = select(Channel).where(Channel.phone_number_id == phone_number_id)
    channel: Channel | None = (await session.execute(statement)).scalar_one_or_none()
    return channel


async def all_app_secrets_encrypted(session: AsyncSession) -> list[str]:
    statement = select(Channel.app_secret_encrypted).distinct()
    return list((await session.execute(statement)).scalars())


async def count_for_account(session: AsyncSession, account_id: uuid.UUID) -> int:
    statement = select(func.count()).select_from(Channel).where(Channel.account_id == account_id)
    return int(await session.scalar(statement) or 0)


async def clear_default(session: AsyncSession, account_id: uuid.UUID) -> None:
    await session.execute(
        update(Channel)
        .where(Channel.account_id == account_id, Channel.is_default.is_(True))
        .values(is_default=False)
        .execution_options(synchronize_session=False)
    )
