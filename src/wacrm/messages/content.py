"""What an outbound message says, stored as ``Message.content`` and rebuilt into Meta's body."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wacrm.whatsapp import payloads

MEDIA_TYPES = frozenset({"image", "video", "document", "audio"})
FREE_FORM_TYPES = frozenset({"text"}) | MEDIA_TYPES


@dataclass(frozen=True)
class OutboundContent:
    type: str
    text: str | None = None
    media_url: str | None = None
    caption: str | None = None
    filename: str | None = None
    template_name: str | None = None
    template_language: str | None = None
    template_params: tuple[str, ...] | None = None

    @property
    def is_free_form(self) -> bool:
        """Free-form messages need the 24 h customer-service window; templates don't."""
        return self.type in FREE_FORM_TYPES

    def as_json(self) -> dict[str, Any]:
        """Shaped like inbound content of the same type: text ``{body}``, media ``{link…}``."""
        if self.type == "text":
            return {"body": self.text}
        if self.type == "template":
            return {
                "name": self.template_name,
                "language": self.template_language,
                "params": list(self.template_params or ()),
            }
        media: dict[str, Any] = {"link": self.media_url}
        if self.caption is not None:
            media["caption"] = self.caption
        if self.filename is not None:
            media["filename"] = self.filename
        return media

    @classmethod
    def from_json(cls, message_type: str, content: dict[str, Any]) -> OutboundContent:
        if message_type == "text":
            return cls(type="text", text=content.get("body"))
        if message_type == "template":
            return cls(
                type="template",
                template_name=content.get("name"),
                template_language=content.get("language"),
                template_params=tuple(content.get("params") or ()),
            )
        return cls(
            type=message_type,
            media_url=content.get("link"),
            caption=content.get("caption"),
            filename=content.get("filename"),
        )

    def payload(self, to: str, reply_to_wamid: str | None) -> dict[str, Any]:
        """Meta's request body; raises a 400 for content Meta would refuse."""
        if self.type == "text":
            return payloads.text_message(to, self.text or "", reply_to=reply_to_wamid)
        if self.type == "template":
            return payloads.template_message(
                to,
                self.template_name or "",
                self.template_language or "",
                params=list(self.template_params) if self.template_params else None,
                reply_to=reply_to_wamid,
            )
        return payloads.media_message(
            to,
            self.type,
            self.media_url or "",
            caption=self.caption,
            filename=self.filename,
            reply_to=reply_to_wamid,
        )
