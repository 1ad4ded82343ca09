"""Messages on the wire."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from wacrm.kit.errors import field_error
from wacrm.kit.text import text_problem
from wacrm.messages.content import OutboundContent
from wacrm.models import Message, MessageStatusUpdate

MessageType = Literal["text", "template", "image", "video", "document", "audio"]


class TemplateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=512, description="Approved template name, e.g. hello_world")
    language: str = Field(max_length=16, description="Template language code, e.g. en_US")
    params: list[str] | None = Field(
        None, max_length=100, description="Body parameters {{1}}, {{2}}… in order"
    )


class MessageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str = Field(max_length=40, description="Recipient, E.164 (+14155550123)")
    type: MessageType = Field(description="text, template, image, video, document or audio")
    text: str | None = Field(None, max_length=8192, description="Body of a text message")
    media_url: str | None = Field(None, max_length=2048, description="Public https URL of media")
    caption: str | None = Field(None, max_length=2048, description="Caption (image/video/doc)")
    filename: str | None = Field(None, max_length=512, description="Shown name of a document")
    template: TemplateIn | None = Field(None, description="For type=template")
    reply_to_message_id: uuid.UUID | None = Field(
        None, description="Quote one of this conversation's messages (our message id)"
    )
    channel_id: uuid.UUID | None = Field(
        None, description="Send from this number; default: the conversation's, else the default"
    )

    def content(self) -> OutboundContent:
        """What to send, checked field by field (a 400 names the field)."""
        for name in ("text", "caption", "filename", "media_url"):
            value = getattr(self, name)
            if value is not None and (problem := text_problem(value, allow_newlines=True)):
                raise field_error(name, problem)
        if self.type == "text":
            if self.text is None:
                raise field_error("text", "is required for type text")
            return OutboundContent(type="text", text=self.text)
        if self.type == "template":
            if self.template is None:
                raise field_error("template", "is required for type template")
            params = tuple(self.template.params or ())
            for value in (self.template.name, self.template.language, *params):
                if problem := text_problem(value, allow_newlines=True):
                    raise field_error("template", problem)
            return OutboundContent(
                type="template",
                template_name=self.template.name,
                template_language=self.template.language,
                template_params=params,
            )
        if self.media_url is None:
            raise field_error("media_url", f"is required for type {self.type}")
        return OutboundContent(
            type=self.type, media_url=self.media_url, caption=self.caption, filename=self.filename
        )


class MessageSent(BaseModel):
    message_id: uuid.UUID = Field(description="Our id of the message")
    whatsapp_message_id: str | None = Field(description="Meta's wamid, once accepted")
    conversation_id: uuid.UUID = Field(description="The contact's conversation")
    contact_id: uuid.UUID = Field(description="The recipient contact")
    contact_created: bool = Field(description="True if this send created the contact")
    channel_id: uuid.UUID = Field(description="The number it was sent from")
    status: str = Field(description="sent, retrying (Meta said later) or unknown (timeout)")


class StatusUpdateOut(BaseModel):
    status: str = Field(description="Status Meta reported")
    occurred_at: datetime = Field(description="When Meta says it happened")
    received_at: datetime = Field(description="When we received it")


class MessageOut(BaseModel):
    id: uuid.UUID = Field(description="Message id")
    conversation_id: uuid.UUID = Field(description="Conversation id")
    contact_id: uuid.UUID = Field(description="Contact id")
    channel_id: uuid.UUID | None = Field(description="Number it went through")
    direction: str = Field(description="inbound or outbound")
    type: str = Field(description="Message type")
    status: str = Field(
        description="pending, retrying, unknown, sent, delivered, read, failed, received"
    )
    whatsapp_message_id: str | None = Field(description="Meta's wamid")
    reply_to_whatsapp_message_id: str | None = Field(description="The wamid it quotes")
    content: dict[str, Any] = Field(description="What the message says, by type")
    error: dict[str, Any] | None = Field(description="Meta's error, for failed messages")
    attempts: int = Field(description="Send attempts so far")
    created_at: datetime = Field(description="When it was stored")
    sent_at: datetime | None = Field(description="Sent (outbound) or written (inbound)")
    delivered_at: datetime | None = Field(description="Delivered to the phone")
    read_at: datetime | None = Field(description="Read by the customer")
    failed_at: datetime | None = Field(description="Failed")
    status_history: list[StatusUpdateOut] = Field(description="Every status Meta reported")

    @classmethod
    def of(cls, message: Message, history: list[MessageStatusUpdate]) -> MessageOut:
        return cls(
            id=message.id,
            conversation_id=message.conversation_id,
            contact_id=message.contact_id,
            channel_id=message.channel_id,
            direction=message.direction,
            type=message.type,
            status=message.status,
            whatsapp_message_id=message.wamid,
            reply_to_whatsapp_message_id=message.reply_to_wamid,
            content=message.content,
            error=message.error,
            attempts=message.attempts,
            created_at=message.created_at,
            sent_at=message.sent_at,
            delivered_at=message.delivered_at,
            read_at=message.read_at,
            failed_at=message.failed_at,
            status_history=[
                StatusUpdateOut(
                    status=h.status, occurred_at=h.occurred_at, received_at=h.created_at
                )
                for h in history
            ],
        )
