"""Page dependencies: who is looking (member and role), and form posts checked for CSRF.

A handler's signature says what it needs:

- ``PageMember`` / ``PageManager`` for pages (GET): no session → the error handler sends
  the browser to ``/login?next=…``; the wrong role → the 403 page.
- ``MemberForm`` / ``WriterForm`` / ``ManagerForm`` for form posts: the same (any member;
  agent and up; owner and admin), plus the body parsed strictly and its ``csrf_token``
  field matched against the session's token (403 otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from wacrm.accounts.auth import Member, ensure_manager, ensure_writer, session_member
from wacrm.dashboard.forms import CSRF_FIELD, PostedForm, parse_form
from wacrm.kit.db import DbSession
from wacrm.kit.errors import Forbidden, SessionRequired

CSRF_MESSAGE = (
    "This form has expired or did not come from this dashboard. "
    "Go back, reload the page and try again."
)

PageMember = Annotated[Member, Depends(session_member)]


async def page_manager(member: PageMember) -> Member:
    return ensure_manager(member)


PageManager = Annotated[Member, Depends(page_manager)]


async def optional_member(request: Request, session: DbSession) -> Member | None:
    try:
        return await session_member(request, session)
    except SessionRequired:
        return None


MaybeMember = Annotated[Member | None, Depends(optional_member)]


async def read_form(request: Request) -> PostedForm:
    """The posted form, parsed strictly (no CSRF check: for pages without a session)."""
    return parse_form(await request.body(), request.headers.get("content-type", ""))


@dataclass(frozen=True)
class FormPost:
    """A form posted by a logged-in member, its CSRF token already checked."""

    member: Member
    form: PostedForm


async def member_form(
    member: PageMember, form: Annotated[PostedForm, Depends(read_form)]
) -> FormPost:
    if not member.csrf_matches(form.value(CSRF_FIELD)):
        raise Forbidden(CSRF_MESSAGE)
    return FormPost(member, form)


async def manager_form(post: Annotated[FormPost, Depends(member_form)]) -> FormPost:
    ensure_manager(post.member)
    return post


async def writer_form(post: Annotated[FormPost, Depends(member_form)]) -> FormPost:
    ensure_writer(post.member)
    return post


MemberForm = Annotated[FormPost, Depends(member_form)]
WriterForm = Annotated[FormPost, Depends(writer_form)]
ManagerForm = Annotated[FormPost, Depends(manager_form)]
