"""Inbox: conversations by latest activity, one conversation's messages with their ticks, and
the reply — text while the customer's 24 h window is open, an approved template after.

Sending, the window rule and every check live in ``wacrm.messages.service``; these handlers
turn the form into its arguments and its refusals back into the page. Opening a
conversation marks it read for those who can answer it (agent and up): a viewer's look
does not hide it from the team.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.accounts.auth import Member
from wacrm.conversations import service as conversations
from wacrm.conversations.service import ConversationView
from wacrm.dashboard.auth import PageMember, WriterForm
from wacrm.dashboard.forms import FormErrors, PostedForm, refuse_problems, validated
from wacrm.dashboard.inbox_view import ConversationRow, MessageRow
from wacrm.dashboard.rendering import flash, redirect, render, render_fragment
from wacrm.kit.db import DbSession
from wacrm.kit.errors import AppError, BadRequest, field_error
from wacrm.kit.pagination import paginator
from wacrm.messages import service as messages
from wacrm.messages.schemas import MessageCreate
from wacrm.messages.service import MetaRejected
from wacrm.models import ConversationStatus
from wacrm.whatsapp.client import MetaError
from wacrm.whatsapp.templates import ApprovedTemplate

PAGE = "/inbox"
CONVERSATIONS_PER_PAGE = 25
MESSAGES_PER_PAGE = 50
REFRESH_SECONDS = 3
STATUS_CHOICES = [("all", "All"), ("open", "Open"), ("pending", "Pending"), ("closed", "Closed")]
LABELS = {
    "text": "Reply",
    "template": "Template",
    "params": "Template values",
    "status": "Show",
    "cursor": "Page",
}

router = APIRouter(prefix=PAGE)


def _status(raw: str) -> ConversationStatus | None:
    if raw in ("", "all"):
        return None
    try:
        return ConversationStatus(raw)
    except ValueError:
        raise field_error("status", "choose all, open, pending or closed") from None


async def _rows(
    request: Request, session: AsyncSession, member: Member, status_filter: str, cursor: str
) -> tuple[list[ConversationRow], str | None]:
    status = _status(status_filter)
    pages = paginator(request, member.account_id, "inbox", {"status": status})
    views, next_cursor = await conversations.list_conversations(
        session,
        member.account_id,
        pages,
        pages.page(cursor or None, CONVERSATIONS_PER_PAGE),
        status=status,
        by_activity=True,
    )
    return [ConversationRow.of(view) for view in views], next_cursor


@router.get("")
async def inbox_page(
    request: Request,
    member: PageMember,
    session: DbSession,
    status: str = "all",
    cursor: str = "",
) -> Response:
    rows: list[ConversationRow] = []
    next_cursor, errors, status_code = None, None, 200
    try:
        rows, next_cursor = await _rows(request, session, member, status, cursor)
    except BadRequest as error:
        errors, status_code = FormErrors.of(error), error.status
    query = {"status": status}
    return render(
        request,
        "inbox/index.html",
        member=member,
        status_code=status_code,
        title="Inbox",
        conversations=rows,
        status=status,
        status_choices=STATUS_CHOICES,
        errors=errors,
        labels=LABELS,
        next_page=f"{PAGE}?{urlencode({**query, 'cursor': next_cursor})}" if next_cursor else None,
        first_page=f"{PAGE}?{urlencode(query)}" if cursor else None,
        # Only the first page follows new activity: a later one would shift under the reader.
        refresh_url=None if cursor or errors else f"{PAGE}/rows?{urlencode(query)}",
        refresh_seconds=REFRESH_SECONDS,
    )


@router.get("/rows")
async def inbox_rows(
    request: Request, member: PageMember, session: DbSession, status: str = "all"
) -> Response:
    """The first page's rows, for the inbox's script to refresh the list in place."""
    rows, _ = await _rows(request, session, member, status, "")
    return render_fragment(request, "inbox/_rows.html", member=member, conversations=rows)


async def _thread(
    request: Request,
    session: AsyncSession,
    member: Member,
    conversation_id: uuid.UUID,
    cursor: str,
) -> tuple[ConversationView, list[MessageRow], str | None]:
    """The conversation (marked read for those who answer) and a page of its messages,
    oldest first as a thread reads; the cursor leads to earlier ones."""
    if member.role.can_write:
        await conversations.mark_read(session, member.account_id, conversation_id)
    view = await conversations.get_conversation(session, member.account_id, conversation_id)
    pages = paginator(request, member.account_id, "inbox-thread", {"id": conversation_id})
    found, earlier = await conversations.list_messages(
        session,
        member.account_id,
        conversation_id,
        pages,
        pages.page(cursor or None, MESSAGES_PER_PAGE),
    )
    return view, [MessageRow.of(message) for message in reversed(found)], earlier


async def _templates(
    request: Request, session: AsyncSession, member: Member, view: ConversationView
) -> tuple[list[ApprovedTemplate], str | None]:
    """The number's approved templates, or why they cannot be listed now."""
    try:
        found = await messages.approved_templates(
            session,
            request.app.state.settings,
            request.app.state.whatsapp,
            account_id=member.account_id,
            channel_id=view.conversation.channel_id,
        )
    except (MetaError, AppError) as error:
        return [], f"The templates could not be loaded: {error.message}"
    return found, None


async def _conversation(
    request: Request,
    session: AsyncSession,
    member: Member,
    conversation_id: uuid.UUID,
    *,
    cursor: str = "",
    chosen: str = "",
    values: dict[str, Any] | None = None,
    errors: FormErrors | None = None,
    status_code: int = 200,
) -> Response:
    view, thread, earlier = await _thread(request, session, member, conversation_id, cursor)
    templates: list[ApprovedTemplate] = []
    templates_error = None
    if member.role.can_write and not view.service_window_open:
        templates, templates_error = await _templates(request, session, member, view)
    here = f"{PAGE}/{conversation_id}"
    row = ConversationRow.of(view)
    return render(
        request,
        "inbox/conversation.html",
        member=member,
        status_code=status_code,
        title=row.name,
        conversation=row,
        thread=thread,
        earlier_page=f"{here}?{urlencode({'cursor': earlier})}" if earlier else None,
        latest_page=here if cursor else None,
        refresh_url=None if cursor else f"{here}/thread",
        refresh_seconds=REFRESH_SECONDS,
        can_reply=member.role.can_write,
        templates=templates,
        templates_error=templates_error,
        chosen=next((t for t in templates if t.choice == chosen), None),
        values=values or {"text": "", "params": []},
        errors=errors,
        labels=LABELS,
    )


@router.get("/{conversation_id}")
async def conversation_page(
    request: Request,
    conversation_id: uuid.UUID,
    member: PageMember,
    session: DbSession,
    cursor: str = "",
    template: str = "",
) -> Response:
    return await _conversation(
        request, session, member, conversation_id, cursor=cursor, chosen=template
    )


@router.get("/{conversation_id}/thread")
async def thread_fragment(
    request: Request, conversation_id: uuid.UUID, member: PageMember, session: DbSession
) -> Response:
    """The latest messages, for the conversation's script to refresh ticks in place."""
    _, thread, _ = await _thread(request, session, member, conversation_id, "")
    return render_fragment(request, "inbox/_thread.html", member=member, thread=thread)


def _checked(form: PostedForm, view: ConversationView, fields: dict[str, Any]) -> MessageCreate:
    """The send as the API would take it: the same schema, the same checks."""
    refuse_problems(form)
    body = validated(MessageCreate, {"to": view.contact.contact.phone, **fields})
    body.content()  # a 400 here, before anything is stored
    return body


async def _send(
    request: Request,
    session: AsyncSession,
    member: Member,
    view: ConversationView,
    body: MessageCreate,
) -> Response:
    response = redirect(f"{PAGE}/{view.conversation.id}#thread-end")
    try:
        await messages.send_message(
            session,
            request.app.state.settings,
            request.app.state.whatsapp,
            account_id=member.account_id,
            to=body.to,
            content=body.content(),
            channel_id=view.conversation.channel_id,
            reply_to_message_id=None,
        )
    except MetaRejected as refusal:
        # Stored as failed with Meta's error, which the thread shows beside it.
        flash(request, response, refusal.message, "error")
    return response


@router.post("/{conversation_id}/reply")
async def reply(
    request: Request, conversation_id: uuid.UUID, post: WriterForm, session: DbSession
) -> Response:
    member, text = post.member, post.form.value("text")
    view = await conversations.get_conversation(session, member.account_id, conversation_id)
    try:
        body = _checked(post.form, view, {"type": "text", "text": text})
        return await _send(request, session, member, view, body)
    except (BadRequest, messages.OutsideServiceWindow, messages.WhatsAppNotConfigured) as error:
        await session.rollback()
        return await _conversation(
            request,
            session,
            member,
            conversation_id,
            values={"text": text, "params": []},
            errors=FormErrors.of(error),
            status_code=error.status,
        )


@router.post("/{conversation_id}/template")
async def send_template(
    request: Request, conversation_id: uuid.UUID, post: WriterForm, session: DbSession
) -> Response:
    choice, params = post.form.value("template"), post.form.values("params")
    member = post.member
    view = await conversations.get_conversation(session, member.account_id, conversation_id)
    try:
        refuse_problems(post.form)
        templates, unavailable = await _templates(request, session, member, view)
        if unavailable:
            raise BadRequest(unavailable)
        template = _approved(templates, choice, params)
        fields = {"name": template.name, "language": template.language, "params": params}
        body = _checked(post.form, view, {"type": "template", "template": fields})
        return await _send(request, session, member, view, body)
    except (BadRequest, messages.WhatsAppNotConfigured) as error:
        await session.rollback()
        return await _conversation(
            request,
            session,
            member,
            conversation_id,
            chosen=choice,
            values={"text": "", "params": params},
            errors=FormErrors.of(error),
            status_code=error.status,
        )


def _approved(
    templates: list[ApprovedTemplate], choice: str, params: list[str]
) -> ApprovedTemplate:
    """The chosen template, if the number may send it with these values; else a 400 that
    stores nothing (Meta would refuse it, and a failed message would stay in the thread)."""
    template = next((t for t in templates if t.choice == choice), None)
    if template is None:
        raise field_error("template", "choose one of this number's approved templates")
    if len(params) != template.body_parameters or any(not p.strip() for p in params):
        raise field_error("params", f"fill in all {template.body_parameters} values")
    return template
