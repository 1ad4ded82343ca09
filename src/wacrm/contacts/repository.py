"""All SQL about contacts. Every query starts from the account (tenant isolation)."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.contacts.tags import TagName
from wacrm.kit.clock import utcnow
from wacrm.kit.pagination import Page, Paginator
from wacrm.kit.upsert import in_chunks, insert_many_or_ignore, insert_or_ignore
from wacrm.models import Contact, ContactTag, Tag


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
    email: str | None = None,
    company: str | None = None,
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
        {
            "account_id": account_id,
            "phone": phone,
            "profile_name": profile_name,
            "name": name,
            "email": email,
            "company": company,
        },
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


async def get(
    session: AsyncSession, account_id: uuid.UUID, contact_id: uuid.UUID
) -> Contact | None:
    statement = select(Contact).where(Contact.account_id == account_id, Contact.id == contact_id)
    contact: Contact | None = (await session.execute(statement)).scalar_one_or_none()
    return contact


async def get_many(
    session: AsyncSession, account_id: uuid.UUID, contact_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, Contact]:
    if not contact_ids:
        return {}
    statement = select(Contact).where(
        Contact.account_id == account_id, Contact.id.in_(set(contact_ids))
    )
    return {contact.id: contact for contact in (await session.execute(statement)).scalars()}


def _like_pattern(text: str) -> str:
    """``%text%`` with the LIKE wildcards of ``text`` taken literally (escape char ``\\``)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class ContactSearch:
    """What ``?search=`` looks for: text in the name fields or email, or phone digits."""

    text: str
    digits: str | None = None  # set when the input looks like (part of) a phone number
    phone: str | None = None  # set when the input is a whole valid number (E.164)


def _matches(search: ContactSearch) -> ColumnElement[bool]:
    pattern = _like_pattern(search.text)
    conditions: list[ColumnElement[bool]] = [
        Contact.name.ilike(pattern, escape="\\"),
        Contact.profile_name.ilike(pattern, escape="\\"),
        Contact.email.ilike(pattern, escape="\\"),
    ]
    if search.digits:
        conditions.append(Contact.phone.like(_like_pattern(search.digits), escape="\\"))
    if search.phone:
        conditions.append(Contact.phone == search.phone)
    return or_(*conditions)


async def list_page(
    session: AsyncSession,
    account_id: uuid.UUID,
    paginator: Paginator,
    page: Page,
    *,
    search: ContactSearch | None = None,
    tag_key: str | None = None,
) -> tuple[list[Contact], str | None]:
    statement = select(Contact).where(Contact.account_id == account_id)
    if search is not None:
        statement = statement.where(_matches(search))
    if tag_key is not None:
        tagged = (
            select(ContactTag.contact_id)
            .join(Tag, Tag.id == ContactTag.tag_id)
            .where(Tag.account_id == account_id, Tag.name_key == tag_key)
        )
        statement = statement.where(Contact.id.in_(tagged))
    statement = paginator.apply(statement, Contact.created_at, Contact.id, page)
    rows = (await session.execute(statement)).scalars().all()
    return paginator.split(rows, page)


async def update_fields(session: AsyncSession, contact: Contact, values: dict[str, Any]) -> None:
    """Set the given columns of a contact loaded through this account (``get``)."""
    for column, value in values.items():
        setattr(contact, column, value)
    contact.updated_at = utcnow()
    await session.flush()


async def tags_of(
    session: AsyncSession, account_id: uuid.UUID, contact_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, list[TagName]]:
    """Each contact's tags, ordered by their folded key."""
    found: dict[uuid.UUID, list[TagName]] = {contact_id: [] for contact_id in contact_ids}
    if not found:
        return found
    statement = (
        select(ContactTag.contact_id, Tag.name, Tag.name_key)
        .join(Tag, Tag.id == ContactTag.tag_id)
        .where(Tag.account_id == account_id, ContactTag.contact_id.in_(set(found)))
        .order_by(Tag.name_key, Tag.id)
    )
    for contact_id, name, key in (await session.execute(statement)).all():
        found[contact_id].append(TagName(name=name, key=key))
    return found


async def ensure_tags(session: AsyncSession, account_id: uuid.UUID, names: list[TagName]) -> None:
    """Create the tags that don't exist yet. Concurrent creators of one name get one tag."""
    # A fixed order: two transactions creating overlapping sets can't deadlock on PostgreSQL.
    for tag in sorted(names, key=lambda tag: tag.key):
        await insert_or_ignore(
            session,
            Tag,
            {"account_id": account_id, "name": tag.name, "name_key": tag.key},
            conflict_columns=("account_id", "name_key"),
            returning=(Tag.id,),
        )


async def attach_tags(
    session: AsyncSession, account_id: uuid.UUID, contact_id: uuid.UUID, keys: Collection[str]
) -> None:
    """Link the contact to the account's existing tags with these keys (kept if linked)."""
    if not keys:
        return
    pairs = (
        select(Contact.id, Tag.id)
        .join(Tag, Tag.account_id == Contact.account_id)
        .where(
            Contact.account_id == account_id,
            Contact.id == contact_id,
            Tag.account_id == account_id,
            Tag.name_key.in_(set(keys)),
        )
        .order_by(Tag.id)
    )
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(ContactTag)
        .from_select(["contact_id", "tag_id"], pairs)
        .on_conflict_do_nothing(index_elements=["contact_id", "tag_id"])
    )
    await session.execute(statement)


async def detach_tags(
    session: AsyncSession,
    account_id: uuid.UUID,
    contact_id: uuid.UUID,
    *,
    keys: Collection[str] | None = None,
    keep: Collection[str] | None = None,
) -> None:
    """Unlink the tags with these keys, or (``keep``) every tag but those."""
    tags = select(Tag.id).where(Tag.account_id == account_id)
    if keys is not None:
        tags = tags.where(Tag.name_key.in_(set(keys)))
    if keep is not None:
        tags = tags.where(Tag.name_key.not_in(set(keep)))
    statement = delete(ContactTag).where(
        ContactTag.contact_id.in_(
            select(Contact.id).where(Contact.account_id == account_id, Contact.id == contact_id)
        ),
        ContactTag.tag_id.in_(tags),
    )
    await session.execute(statement.execution_options(synchronize_session=False))


@dataclass(frozen=True)
class TagCount:
    id: uuid.UUID
    name: str
    contact_count: int
    created_at: datetime


async def list_tags(
    session: AsyncSession, account_id: uuid.UUID, paginator: Paginator, page: Page
) -> tuple[list[TagCount], str | None]:
    contacts = (
        select(func.count())
        .select_from(ContactTag)
        .where(ContactTag.tag_id == Tag.id)
        .correlate(Tag)
        .scalar_subquery()
    )
    statement = select(Tag.id, Tag.name, Tag.created_at, contacts.label("contact_count")).where(
        Tag.account_id == account_id
    )
    statement = paginator.apply(statement, Tag.created_at, Tag.id, page)
    rows = (await session.execute(statement)).all()
    items, next_cursor = paginator.split(rows, page)
    return [
        TagCount(
            id=row.id, name=row.name, contact_count=row.contact_count, created_at=row.created_at
        )
        for row in items
    ], next_cursor


# --- set-based find-or-create, for inbound webhook batches -----------------------------------


@dataclass(frozen=True)
class PhoneContact:
    """What a thread needs of a contact found or created by phone."""

    id: uuid.UUID
    phone: str
    name: str | None
    profile_name: str | None


# Built once (this runs for every inbound batch): building a statement costs more than running it.
_BY_PHONES = select(Contact.id, Contact.phone, Contact.name, Contact.profile_name).where(
    Contact.account_id == bindparam("account_id"),
    Contact.phone.in_(bindparam("phones", expanding=True)),
)


async def by_phones(
    session: AsyncSession, account_id: uuid.UUID, phones: Collection[str]
) -> dict[str, PhoneContact]:
    """The account's contacts with these exact E.164 numbers, by number."""
    if not phones:
        return {}
    found: dict[str, PhoneContact] = {}
    for chunk in in_chunks(phones):
        parameters = {"account_id": account_id, "phones": chunk}
        for row in (await session.execute(_BY_PHONES, parameters)).all():
            found[row.phone] = PhoneContact(row.id, row.phone, row.name, row.profile_name)
    return found


async def find_or_create_many_by_phone(
    session: AsyncSession, account_id: uuid.UUID, profile_names: dict[str, str | None]
) -> tuple[dict[str, PhoneContact], set[str]]:
    """``find_or_create_by_phone`` for many numbers (already normalised) at once: one lookup,
    then one INSERT of the missing ones with their WhatsApp profile names.

    Race-safe the same way: a number a concurrent transaction created first is read back,
    not created. Returns every number's contact, and the numbers this call created.
    """
    found = await by_phones(session, account_id, profile_names)
    missing = sorted(phone for phone in profile_names if phone not in found)
    inserted = await insert_many_or_ignore(
        session,
        Contact,
        [
            {"account_id": account_id, "phone": phone, "profile_name": profile_names[phone]}
            for phone in missing
        ],
        conflict_columns=("account_id", "phone"),
        returning=("id", "phone", "name", "profile_name"),
    )
    created = {row.phone for row in inserted}
    for row in inserted:
        found[row.phone] = PhoneContact(row.id, row.phone, row.name, row.profile_name)
    lost = [phone for phone in missing if phone not in created]
    if lost:
        found.update(await by_phones(session, account_id, lost))
    return found, created
