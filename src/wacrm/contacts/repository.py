"""All SQL about contacts. Every query starts from the account (tenant isolation)."""

from __future__ import annotations

import uuid

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.kit.upsert import insert_or_ignore
from wacrm.models import Contact


async def get_by_phone(session: AsyncSession, account_id: uuid.UUID, phone: str) -> Contact | None:
    """The contact with this exact normalised E.164 number (never a partial match)."""
    statement = select(Contact).where(Contact.account_id == account_id, Contact.phone == phone)
    contact: Contact | None = (await session.execute(statement)).scalar_one_or_none()
    return contact


async def find_or_create_by_phone(
    session: AsyncSession,
    account_id: uuid.UUID,
    phone: str,
    *,
    profile_name: str | None = None,
    name: str | None = None,
) -> tuple[Contact, bool]:
    """The account's contact for ``phone`` (already normalised), created if missing.

    Race-safe: concurrent callers for one number get the same row, and exactly one of
    them gets ``created=True``. Existing contacts are returned unchanged.
    """
    contact = await get_by_phone(session, account_id, phone)
    if contact is not None:
        return contact, False
    inserted = await insert_or_ignore(
        session,
        Contact,
        {"account_id": account_id, "phone": phone, "profile_name": profile_name, "name": name},
        conflict_columns=("account_id", "phone"),
        returning=(Contact.id,),
    )
    contact = await get_by_phone(session, account_id, phone)
    if contact is None:  # pragma: no cover - deleted between the insert and this read
        raise LookupError(f"contact {phone} vanished while being created")
    return contact, inserted is not None


async def set_profile_name(
    session: AsyncSession, account_id: uuid.UUID, contact_id: uuid.UUID, profile_name: str
) -> bool:
    """Record the name WhatsApp reports for the contact; False when it was already that."""
    statement = (
        update(Contact)
        .where(
            Contact.account_id == account_id,
            Contact.id == contact_id,
            or_(Contact.profile_name.is_(None), Contact.profile_name != profile_name),
        )
        .values(profile_name=profile_name)
        .returning(Contact.id)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(statement)).first() is not None
