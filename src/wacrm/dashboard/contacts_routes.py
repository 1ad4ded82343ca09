"""Contacts: search by name, phone or email and filter by tag; one contact with its tags
(added and removed by agents and up) and a link to its conversation.

Search, tag names and their folding live in ``wacrm.contacts.service``.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.accounts.auth import Member
from wacrm.contacts import service as contacts
from wacrm.contacts.service import ContactView
from wacrm.conversations import service as conversations
from wacrm.dashboard.auth import FormPost, PageMember, WriterForm
from wacrm.dashboard.forms import FormErrors, refuse_problems
from wacrm.dashboard.rendering import flash, redirect, render
from wacrm.kit.db import DbSession
from wacrm.kit.errors import BadRequest
from wacrm.kit.pagination import paginator

PAGE = "/contacts"
CONTACTS_PER_PAGE = 25
LABELS = {"search": "Search", "tag": "Tag", "cursor": "Page"}
# The service names the list's fields as the API does: "add.0", "remove.0".
TAG_FIELDS = {"add.0": "tag", "remove.0": "tag"}

router = APIRouter(prefix=PAGE)


@router.get("")
async def contacts_page(
    request: Request,
    member: PageMember,
    session: DbSession,
    search: str = "",
    tag: str = "",
    cursor: str = "",
) -> Response:
    filters = {"search": search or None, "tag": tag or None}
    pages = paginator(request, member.account_id, "dashboard-contacts", filters)
    found: list[ContactView] = []
    next_cursor, errors, status_code = None, None, 200
    try:
        found, next_cursor = await contacts.list_contacts(
            session,
            member.account_id,
            pages,
            pages.page(cursor or None, CONTACTS_PER_PAGE),
            search=filters["search"],
            tag=filters["tag"],
        )
    except BadRequest as error:
        errors, status_code = FormErrors.of(error), error.status
    query = {name: value for name, value in (("search", search), ("tag", tag)) if value}
    return render(
        request,
        "contacts/index.html",
        member=member,
        status_code=status_code,
        title="Contacts",
        contacts=found,
        values={"search": search, "tag": tag},
        errors=errors,
        labels=LABELS,
        next_page=f"{PAGE}?{urlencode({**query, 'cursor': next_cursor})}" if next_cursor else None,
        first_page=f"{PAGE}?{urlencode(query)}" if cursor else None,
    )


async def _detail(
    request: Request,
    session: AsyncSession,
    member: Member,
    contact_id: uuid.UUID,
    *,
    tag: str = "",
    errors: FormErrors | None = None,
    status_code: int = 200,
) -> Response:
    view = await contacts.get_contact(session, member.account_id, contact_id)
    conversation = await conversations.conversation_of_contact(
        session, member.account_id, contact_id
    )
    contact = view.contact
    return render(
        request,
        "contacts/detail.html",
        member=member,
        status_code=status_code,
        title=contact.name or contact.profile_name or contact.phone,
        contact=contact,
        tags=view.tags,
        conversation=conversation,
        can_edit=member.role.can_write,
        values={"tag": tag},
        errors=errors,
        labels=LABELS,
    )


@router.get("/{contact_id}")
async def contact_page(
    request: Request, contact_id: uuid.UUID, member: PageMember, session: DbSession
) -> Response:
    return await _detail(request, session, member, contact_id)


async def _change_tag(
    request: Request, session: AsyncSession, post: FormPost, contact_id: uuid.UUID, adding: bool
) -> Response:
    member, name = post.member, post.form.value("tag")
    try:
        refuse_problems(post.form)
        change = {"add": [name]} if adding else {"remove": [name]}
        await contacts.change_tags(session, member.account_id, contact_id, **change)
    except BadRequest as error:
        await session.rollback()
        errors = FormErrors.of(error, TAG_FIELDS)
        return await _detail(
            request,
            session,
            member,
            contact_id,
            tag=name if adding else "",
            errors=errors,
            status_code=error.status,
        )
    response = redirect(f"{PAGE}/{contact_id}")
    done = "Tagged" if adding else "Removed the tag"
    flash(request, response, f"{done} “{name.strip()}”.")
    return response


@router.post("/{contact_id}/tags")
async def add_tag(
    request: Request, contact_id: uuid.UUID, post: WriterForm, session: DbSession
) -> Response:
    return await _change_tag(request, session, post, contact_id, adding=True)


@router.post("/{contact_id}/tags/remove")
async def remove_tag(
    request: Request, contact_id: uuid.UUID, post: WriterForm, session: DbSession
) -> Response:
    return await _change_tag(request, session, post, contact_id, adding=False)
