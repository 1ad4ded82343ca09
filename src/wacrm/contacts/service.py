"""Contacts: find-or-create by normalised phone, search, partial updates and tag changes.

Input arrives as the client sent it; everything is cleaned and validated here, before any
row is written, so a bad request changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.contacts import repository
from wacrm.contacts.repository import ContactSearch, TagCount
from wacrm.contacts.tags import TagName, tag_key_or_400, tag_names_or_400
from wacrm.events.service import EventType, record_event
from wacrm.kit.errors import NotFound, field_error
from wacrm.kit.pagination import Page, Paginator
from wacrm.kit.phone import InvalidPhone, normalise_phone, phone_or_400
from wacrm.kit.text import text_problem
from wacrm.models import Contact

MAX_NAME_LENGTH = 200
MAX_COMPANY_LENGTH = 200
MAX_EMAIL_LENGTH = 320
MAX_SEARCH_LENGTH = 200
_PHONE_CHARACTERS = frozenset("0123456789+-(). ")
EDITABLE = {"name": MAX_NAME_LENGTH, "email": MAX_EMAIL_LENGTH, "company": MAX_COMPANY_LENGTH}


@dataclass(frozen=True)
class ContactView:
    """A contact with the names of its tags, ordered case- and accent-insensitively."""

    contact: Contact
    tags: list[str]


def _text(field: str, value: str | None, max_length: int) -> str | None:
    """One line of text, trimmed; empty means none."""
    if value is None:
        return None
    problem = text_problem(value)
    if problem:
        raise field_error(field, problem)
    value = value.strip()
    if len(value) > max_length:
        raise field_error(field, f"must be at most {max_length} characters")
    return value or None


def clean_email(value: str | None) -> str | None:
    """A plausible address (one ``@``, a dotted domain, no spaces); domain lower-cased."""
    email = _text("email", value, MAX_EMAIL_LENGTH)
    if email is None:
        return None
    local, _, domain = email.rpartition("@")
    labels = domain.split(".")
    if (
        not local
        or "@" in local
        or len(local) > 64
        or any(char.isspace() for char in email)
        or len(labels) < 2
        or not all(labels)
    ):
        raise field_error("email", "must be an email address, e.g. ana@example.com")
    return f"{local}@{domain.lower()}"


def _phone(value: str) -> str:
    problem = text_problem(value)
    if problem:
        raise field_error("phone", problem)
    return phone_or_400(value)


def contact_search(raw: str | None) -> ContactSearch | None:
    """How ``?search=`` is matched; None when there is nothing to search for."""
    if raw is None:
        return None
    text = _text("search", raw, MAX_SEARCH_LENGTH)
    if text is None:
        return None
    digits = None
    if set(text) <= _PHONE_CHARACTERS and any(char.isdigit() for char in text):
        digits = "".join(char for char in text if char.isdigit())
    try:
        phone: str | None = normalise_phone(text)
    except InvalidPhone:
        phone = None
    return ContactSearch(text=text, digits=digits, phone=phone)


async def contact_views(
    session: AsyncSession, account_id: uuid.UUID, contacts: Sequence[Contact]
) -> list[ContactView]:
    """The contacts with their tags, loaded in one query."""
    tags = await repository.tags_of(session, account_id, [c.id for c in contacts])
    return [ContactView(c, [tag.name for tag in tags[c.id]]) for c in contacts]


async def _view(session: AsyncSession, account_id: uuid.UUID, contact: Contact) -> ContactView:
    return (await contact_views(session, account_id, [contact]))[0]


async def _get_or_404(
    session: AsyncSession, account_id: uuid.UUID, contact_id: uuid.UUID
) -> Contact:
    contact = await repository.get(session, account_id, contact_id)
    if contact is None:
        raise NotFound("Contact")
    return contact


async def list_contacts(
    session: AsyncSession,
    account_id: uuid.UUID,
    paginator: Paginator,
    page: Page,
    *,
    search: str | None = None,
    tag: str | None = None,
) -> tuple[list[ContactView], str | None]:
    """A page of the account's contacts, newest first, filtered by search text and tag."""
    terms = contact_search(search)
    tag_key = None if tag is None else tag_key_or_400(tag)
    contacts, next_cursor = await repository.list_page(
        session, account_id, paginator, page, search=terms, tag_key=tag_key
    )
    return await contact_views(session, account_id, contacts), next_cursor


async def get_contact(
    session: AsyncSession, account_id: uuid.UUID, contact_id: uuid.UUID
) -> ContactView:
    return await _view(session, account_id, await _get_or_404(session, account_id, contact_id))


async def find_or_create_contact(
    session: AsyncSession,
    account_id: uuid.UUID,
    *,
    phone: str,
    name: str | None = None,
    email: str | None = None,
    company: str | None = None,
    tags: Sequence[str] = (),
) -> tuple[ContactView, bool]:
    """The account's contact for ``phone``, created with the other fields if missing.

    An existing contact is returned unchanged (the other fields are validated, then
    ignored). Race-safe; only the creator records ``contact.created``.
    """
    number = _phone(phone)
    fields = {
        "name": _text("name", name, MAX_NAME_LENGTH),
        "email": clean_email(email),
        "company": _text("company", company, MAX_COMPANY_LENGTH),
    }
    tag_names = tag_names_or_400(tags)
    contact, created = await repository.find_or_create_by_phone(
        session, account_id, number, **fields
    )
    if not created:
        return await _view(session, account_id, contact), False
    if tag_names:
        await repository.ensure_tags(session, account_id, tag_names)
        await repository.attach_tags(session, account_id, contact.id, [t.key for t in tag_names])
    view = await _view(session, account_id, contact)
    await record_event(session, account_id, EventType.CONTACT_CREATED, _created_data(view))
    return view, True


def _created_data(view: ContactView) -> dict[str, Any]:
    contact = view.contact
    return {
        "contact_id": str(contact.id),
        "phone": contact.phone,
        "name": contact.name,
        "profile_name": contact.profile_name,
        "email": contact.email,
        "company": contact.company,
        "tags": view.tags,
        "source": "api",
    }


async def update_contact(
    session: AsyncSession, account_id: uuid.UUID, contact_id: uuid.UUID, changes: Mapping[str, Any]
) -> ContactView:
    """Change only the fields present in ``changes``; ``tags`` replaces the whole set."""
    if "phone" in changes:
        raise field_error("phone", "cannot be changed: create a contact for the new number")
    values = {field: _clean_field(field, changes[field]) for field in EDITABLE if field in changes}
    tag_names: list[TagName] | None = None
    if "tags" in changes:
        if changes["tags"] is None:
            raise field_error("tags", "must be a list of tag names; send [] to remove every tag")
        tag_names = tag_names_or_400(changes["tags"])
    contact = await _get_or_404(session, account_id, contact_id)
    values = {field: value for field, value in values.items() if getattr(contact, field) != value}
    tags_changed = tag_names is not None and await _replace_tags(
        session, account_id, contact.id, tag_names
    )
    if values or tags_changed:
        await repository.update_fields(session, contact, values)
    return await _view(session, account_id, contact)


def _clean_field(field: str, value: str | None) -> str | None:
    return clean_email(value) if field == "email" else _text(field, value, EDITABLE[field])


async def _current_keys(
    session: AsyncSession, account_id: uuid.UUID, contact_id: uuid.UUID
) -> set[str]:
    return {
        tag.key for tag in (await repository.tags_of(session, account_id, [contact_id]))[contact_id]
    }


async def _replace_tags(
    session: AsyncSession, account_id: uuid.UUID, contact_id: uuid.UUID, names: list[TagName]
) -> bool:
    wanted = {tag.key for tag in names}
    if wanted == await _current_keys(session, account_id, contact_id):
        return False
    await repository.ensure_tags(session, account_id, names)
    await repository.detach_tags(session, account_id, contact_id, keep=wanted)
    await repository.attach_tags(session, account_id, contact_id, wanted)
    return True


async def change_tags(
    session: AsyncSession,
    account_id: uuid.UUID,
    contact_id: uuid.UUID,
    *,
    add: Collection[str] = (),
    remove: Collection[str] = (),
) -> ContactView:
    """Add and remove tags by name (folded match), leaving the contact's other tags alone."""
    to_add = tag_names_or_400(add, "add")
    to_remove = {tag.key for tag in tag_names_or_400(remove, "remove")}
    both = [tag.name for tag in to_add if tag.key in to_remove]
    if both:
        raise field_error("remove", f"'{both[0]}' is in both add and remove")
    contact = await _get_or_404(session, account_id, contact_id)
    before = await _current_keys(session, account_id, contact.id)
    # Both statements are idempotent, so they run whatever ``before`` says: a concurrent
    # change between that read and these writes can't make a request lose its effect.
    if to_add:
        await repository.ensure_tags(session, account_id, to_add)
        await repository.attach_tags(session, account_id, contact.id, [t.key for t in to_add])
    if to_remove:
        await repository.detach_tags(session, account_id, contact.id, keys=to_remove)
    if (before | {t.key for t in to_add}) - to_remove != before:
        await repository.update_fields(session, contact, {})
    return await _view(session, account_id, contact)


async def list_tags(
    session: AsyncSession, account_id: uuid.UUID, paginator: Paginator, page: Page
) -> tuple[list[TagCount], str | None]:
    """A page of the account's tags, newest first, each with its number of contacts."""
    return await repository.list_tags(session, account_id, paginator, page)
