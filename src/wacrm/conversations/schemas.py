"""Conversations and their messages on the wire. Responses are built field by field."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from wacrm.contacts.schemas import ContactOut
from wacrm.conversations.service import ConversationView
from wacrm.models import ConversationStatus, Message


class ConversationOut(BaseModel):
    id: uuid.UUID = Field(description="Conversation id")
    status: ConversationStatus = Field(description="open, pending or closed")
    unread_count: int = Field(description="Customer messages not yet read by the team")
    last_message_at: datetime | None = Field(description="Time of the latest message (UTC)")
    last_inbound_at: datetime | None = Field(description="When the customer last wrote (UTC)")
    service_window_open: bool = Field(
        description="True while the customer's last message is under 24 h old: free-form "
        "messages are allowed; otherwise only templates"
    )
    channel_id: uuid.UUID | None = Field(description="The WhatsApp number the conversation uses")
    contact: ContactOut = Field(description="The contact, with its tags")
    created_at: datetime = Field(description="When the conversation started (UTC)")

    @classmethod
    def of(cls, view: ConversationView) -> ConversationOut:
        conversation = view.conversation
        return cls(
            id=conversation.id,
            status=ConversationStatus(conversation.status),
            unread_count=conversation.unread_count,
            last_message_at=conversation.last_message_at,
            last_inbound_at=conversation.last_inbound_at,
            service_window_open=view.service_window_open,
            channel_id=conversation.channel_id,
            contact=ContactOut.of(view.contact),
            created_at=conversation.created_at,
        )


class ConversationMessageOut(BaseModel):
    id: uuid.UUID = Field(description="Message id")
    direction: str = Field(description="inbound (from the customer) or outbound")
    type: str = Field(description="text, template, image, video, document, audio, … unsupported")
    status: str = Field(
        description="pending, retrying, unknown, sent, delivered, read, failed; received (inbound)"
    )
    whatsapp_message_id: str | None = Field(description="Meta's message id (wamid)")
    content: dict[str, Any] = Field(description="What the message says, by type")
    reply_to_whatsapp_message_id: str | None = Field(description="The wamid this message quotes")
    error: dict[str, Any] | None = Field(description="Meta's error, for failed messages")
    created_at: datetime = Field(description="When it was stored (UTC)")
    sent_at: datetime | None = Field(description="Sent (outbound) or written by the customer")
    delivered_at: datetime | None = Field(description="Delivered to the customer's phone")
    read_at: datetime | None = Field(description="Read by the customer")
    failed_at: datetime | None = Field(description="When it failed")

    @classmethod
    def of(cls, message: Message) -> ConversationMessageOut:
        return cls(
            id=message.id,
            direction=message.direction,
            type=message.type,
            status=message.status,
            whatsapp_message_id=message.wamid,
            content=message.content,
            reply_to_whatsapp_message_id=message.reply_to_wamid,
            error=message.error,
            created_at=message.created_at,
            sent_at=message.sent_at,
            delivered_at=message.delivered_at,
            read_at=message.read_at,
            failed_at=message.failed_at,
        )
