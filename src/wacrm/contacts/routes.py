"""``/api/v1/contacts`` and ``/api/v1/tags``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Path, Query, Request, Response

from wacrm.api_keys.auth import ApiPrincipal, public_router, require_scope
from wacrm.api_keys.scopes import Scope
from wacrm.contacts import service
from wacrm.contacts.schemas import (
    ContactCreate,
    ContactOut,
    ContactTagsChange,
    ContactUpdate,
    TagOut,
)
from wacrm.kit.db import DbSession
from wacrm.kit.envelope import Data, ListOf, PageMeta
from wacrm.kit.openapi import error_responses
from wacrm.kit.pagination import Cursor, Limit, paginator

router = public_router(tags=["contacts"])

ContactsRead = Annotated[ApiPrincipal, Depends(require_scope(Scope.CONTACTS_READ))]
ContactsWrite = Annotated[ApiPrincipal, Depends(require_scope(Scope.CONTACTS_WRITE))]
ContactId = Annotated[uuid.UUID, Path(description="Contact id")]


@router.get("/contacts", response_model=ListOf[ContactOut], responses=error_responses(401, 403))
async def list_contacts(
    request: Request,
    principal: ContactsRead,
    session: DbSession,
    search: Annotated[
        str | None,
        Query(
            max_length=200,
            description="Case-insensitive text in the name, WhatsApp profile name or email, "
            "or digits of the phone number (`+1 415`, `4155`). `%` and `_` are literal.",
        ),
    ] = None,
    tag: Annotated[
        str | None,
        Query(max_length=200, description="Only contacts with this tag (case/accent-insensitive)"),
    ] = None,
    cursor: Cursor = None,
    limit: Limit = None,
) -> ListOf[ContactOut]:
    """The account's contacts, newest first. Cursors are bound to the same `search` and `tag`."""
    pages = paginator(request, principal.account_id, "contacts", {"search": search, "tag": tag})
    page = pages.page(cursor, limit)
    views, next_cursor = await service.list_contacts(
        session, principal.account_id, pages, page, search=search, tag=tag
    )
    return ListOf(data=[ContactOut.of(v) for v in views], meta=PageMeta(next_cursor=next_cursor))


@router.post(
    "/contacts",
    status_code=201,
    response_model=Data[ContactOut],
    responses={
        200: {"model": Data[ContactOut], "description": "The number's existing contact, unchanged"},
        **error_responses(401, 403, 409, 422),
    },
)
async def create_contact(
    body: ContactCreate, principal: ContactsWrite, session: DbSession, response: Response
) -> Data[ContactOut]:
    """Find or create the contact for a phone number.

    `201` with the new contact (and a `contact.created` event), or `200` with the existing
    contact for that number **unchanged**: the other fields are validated, then ignored
    (use PATCH to change them). Format variants of one number are one contact.
    """
    view, created = await service.find_or_create_contact(
        session,
        principal.account_id,
        phone=body.phone,
        name=body.name,
        email=body.email,
        company=body.company,
        tags=body.tags,
    )
    if not created:
        response.status_code = 200
    return Data(data=ContactOut.of(view))


@router.get(
    "/contacts/{contact_id}",
    response_model=Data[ContactOut],
    responses=error_responses(401, 403, 404),
)
async def get_contact(
    contact_id: ContactId, principal: ContactsRead, session: DbSession
) -> Data[ContactOut]:
    """One contact with its tags."""
    view = await service.get_contact(session, principal.account_id, contact_id)
    return Data(data=ContactOut.of(view))


@router.patch(
    "/contacts/{contact_id}",
    response_model=Data[ContactOut],
    responses=error_responses(401, 403, 404),
)
async def update_contact(
    contact_id: ContactId, body: ContactUpdate, principal: ContactsWrite, session: DbSession
) -> Data[ContactOut]:
    """Change only the fields sent: `name`, `email`, `company` (null clears one), `tags`
    (replaces the whole set). The phone number can't be changed; unknown fields are a 400.
    """
    changes = body.model_dump(exclude_unset=True)
    view = await service.update_contact(session, principal.account_id, contact_id, changes)
    return Data(data=ContactOut.of(view))


@router.post(
    "/contacts/{contact_id}/tags",
    response_model=Data[ContactOut],
    responses=error_responses(401, 403, 404, 409, 422),
)
async def change_contact_tags(
    contact_id: ContactId, body: ContactTagsChange, principal: ContactsWrite, session: DbSession
) -> Data[ContactOut]:
    """Add and remove tags by name without touching the contact's other tags.

    Names match case- and accent-insensitively; a tag added for the first time is created.
    Removing a tag the contact doesn't have is not an error.
    """
    view = await service.change_tags(
        session, principal.account_id, contact_id, add=body.add, remove=body.remove
    )
    return Data(data=ContactOut.of(view))


@router.get("/tags", response_model=ListOf[TagOut], responses=error_responses(401, 403))
async def list_tags(
    request: Request,
    principal: ContactsRead,
    session: DbSession,
    cursor: Cursor = None,
    limit: Limit = None,
) -> ListOf[TagOut]:
    """The account's tags with how many contacts carry each, newest first, paginated."""
    pages = paginator(request, principal.account_id, "tags", {})
    page = pages.page(cursor, limit)
    tags, next_cursor = await service.list_tags(session, principal.account_id, pages, page)
    return ListOf(data=[TagOut.of(t) for t in tags], meta=PageMeta(next_cursor=next_cursor))
