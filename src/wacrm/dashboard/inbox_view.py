"""What the inbox shows of a conversation and of a message: names, one line of text, ticks."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from wacrm.conversations.service import ConversationView
from wacrm.models import Direction, Message, MessageStatus

MEDIA_LABELS = {
    "image": "Photo",
    "video": "Video",
    "audio": "Audio",
    "document": "Document",
    "sticker": "Sticker",
}
# Outbound delivery, as WhatsApp shows it: one tick sent, two delivered, two blue read.
TICKS = {
    MessageStatus.PENDING.value: ("…", "Sending"),
    MessageStatus.RETRYING.value: ("…", "Waiting to send again"),
    MessageStatus.UNKNOWN.value: ("?", "Outcome unknown (not sent again by itself)"),
    MessageStatus.SENT.value: ("✓", "Sent"),
    MessageStatus.DELIVERED.value: ("✓✓", "Delivered"),
    MessageStatus.READ.value: ("✓✓", "Read"),
    MessageStatus.FAILED.value: ("!", "Failed"),
}


@dataclass(frozen=True)
class ConversationRow:
    id: uuid.UUID
    name: str
    phone: str
    status: str
    unread_count: int
    last_activity_at: datetime
    service_window_open: bool

    @classmethod
    def of(cls, view: ConversationView) -> ConversationRow:
        conversation, contact = view.conversation, view.contact.contact
        return cls(
            id=conversation.id,
            name=contact.name or contact.profile_name or contact.phone,
            phone=contact.phone,
            status=conversation.status,
            unread_count=conversation.unread_count,
            last_activity_at=conversation.last_message_at or conversation.created_at,
            service_window_open=view.service_window_open,
        )


@dataclass(frozen=True)
class MessageRow:
    id: uuid.UUID
    outbound: bool
    text: str
    at: datetime
    status: str
    tick: str
    tick_label: str
    error: str | None

    @classmethod
    def of(cls, message: Message) -> MessageRow:
        outbound = message.direction == Direction.OUTBOUND.value
        tick, label = TICKS.get(message.status, ("", message.status)) if outbound else ("", "")
        return cls(
            id=message.id,
            outbound=outbound,
            text=message_text(message.type, message.content or {}),
            at=message.sent_at or message.created_at,
            status=message.status,
            tick=tick,
            tick_label=label,
            error=_error_text(message.error) if message.status == "failed" else None,
        )


def _error_text(error: dict[str, Any] | None) -> str:
    """Meta's refusal in one line: its code, its title, and its explanation."""
    if not error:
        return "WhatsApp gave no reason."
    code = error.get("code")
    parts = [str(p) for p in (error.get("title"), error.get("details")) if p]
    text = " — ".join(parts) or str(error.get("message") or "WhatsApp gave no reason.")
    return f"{text} (code {code})" if code is not None else text


def message_text(message_type: str, content: dict[str, Any]) -> str:
    """One message in words, whatever its type (the thread shows text, not raw JSON)."""
    if message_type == "text":
        return str(content.get("body") or "")
    if message_type == "template":
        params = ", ".join(str(p) for p in content.get("params") or [])
        name = f"Template “{content.get('name')}” ({content.get('language')})"
        return f"{name}: {params}" if params else name
    if message_type in MEDIA_LABELS:
        detail = content.get("caption") or content.get("filename") or content.get("link") or ""
        return f"[{MEDIA_LABELS[message_type]}] {detail}".strip()
    return _other_text(message_type, content)


def _other_text(message_type: str, content: dict[str, Any]) -> str:
    if message_type == "location":
        place = content.get("name") or content.get("address") or ""
        where = f"{content.get('latitude')}, {content.get('longitude')}"
        return f"[Location] {place} ({where})" if place else f"[Location] ({where})"
    if message_type == "contacts":
        count = len(content.get("contacts") or [])
        return "[A contact card]" if count == 1 else f"[{count} contact cards]"
    if message_type == "interactive":
        return str(content.get("title") or content.get("body") or "[Reply]")
    if message_type == "button":
        return str(content.get("text") or content.get("payload") or "[Button]")
    if message_type == "reaction":
        return "Removed a reaction" if content.get("removed") else f"Reacted {content.get('emoji')}"
    if message_type == "order":
        return f"[Order of {len(content.get('product_items') or [])} items]"
    if message_type == "system":
        return str(content.get("body") or "[System message]")
    original = content.get("original_type") or message_type
    return f"[A {original} message, which wacrm cannot show]"
