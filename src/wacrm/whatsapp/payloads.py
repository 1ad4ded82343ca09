"""Request bodies for the Cloud API ``/messages`` endpoint, shaped as Meta documents them.

Builders check what Meta would reject anyway (empty or over-long text, a caption where
Meta allows none, a non-http(s) link) so a bad message fails here with a 400 of ours
instead of costing a round trip and coming back as Meta error 100.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from wacrm.kit.errors import field_error

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_FILENAME = 240
MAX_LINK = 2048
MAX_TEMPLATE_PARAM = 1024


class MediaKind(StrEnum):
    IMAGE = "image"
    VIDEO = "video"
    DOCUMENT = "document"
    AUDIO = "audio"


CAPTIONED = frozenset({MediaKind.IMAGE, MediaKind.VIDEO, MediaKind.DOCUMENT})


def _recipient(to: str) -> str:
    # Meta accepts "+14155550123" or "14155550123"; we always send its wa_id form.
    digits = to.strip().removeprefix("+")
    if not (digits.isascii() and digits.isdigit() and 7 <= len(digits) <= 15):
        raise field_error("to", "must be a phone number in international format, e.g. +14155550123")
    return digits


def _envelope(to: str, kind: str, body: dict[str, Any], reply_to: str | None) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": _recipient(to),
        "type": kind,
        kind: body,
    }
    if reply_to is not None:
        if not reply_to.strip():
            raise field_error("reply_to", "must be the wamid of the message replied to")
        payload["context"] = {"message_id": reply_to.strip()}
    return payload


def text_message(to: str, body: str, *, reply_to: str | None = None) -> dict[str, Any]:
    """A free-form text (1..4096 characters), link previews off."""
    if not body.strip():
        raise field_error("text", "must not be empty")
    if len(body) > MAX_TEXT:
        raise field_error("text", f"must be at most {MAX_TEXT} characters")
    return _envelope(to, "text", {"preview_url": False, "body": body}, reply_to)


def template_message(
    to: str,
    name: str,
    language: str,
    *,
    params: Sequence[str] | None = None,
    components: Sequence[dict[str, Any]] | None = None,
    reply_to: str | None = None,
) -> dict[str, Any]:
    """An approved template: positional body ``params``, or Meta's ``components`` as given."""
    if not name.strip():
        raise field_error("template.name", "is required")
    if not language.strip():
        raise field_error("template.language", "is required, e.g. en_US")
    if params is not None and components is not None:
        raise field_error("template", "give either params or components, not both")
    template: dict[str, Any] = {"name": name.strip(), "language": {"code": language.strip()}}
    if params:
        template["components"] = [{"type": "body", "parameters": _text_parameters(params)}]
    elif components is not None:
        if not all(isinstance(component, dict) for component in components):
            raise field_error("template.components", "must be a list of component objects")
        template["components"] = list(components)
    return _envelope(to, "template", template, reply_to)


def _text_parameters(params: Sequence[str]) -> list[dict[str, str]]:
    if isinstance(params, str):
        raise field_error("template.params", "must be a list of strings")
    for value in params:
        if not isinstance(value, str) or not value.strip():
            raise field_error("template.params", "every parameter must be a non-empty string")
        if len(value) > MAX_TEMPLATE_PARAM:
            raise field_error("template.params", f"at most {MAX_TEMPLATE_PARAM} characters each")
    return [{"type": "text", "text": value} for value in params]


def media_message(
    to: str,
    kind: MediaKind | str,
    link: str,
    *,
    caption: str | None = None,
    filename: str | None = None,
    reply_to: str | None = None,
) -> dict[str, Any]:
    """Image, video, document or audio by public http(s) link (Meta fetches it)."""
    try:
        kind = MediaKind(kind)
    except ValueError:
        raise field_error("type", "must be one of image, video, document, audio") from None
    media: dict[str, Any] = {"link": _link(link)}
    if caption is not None:
        if kind not in CAPTIONED:
            raise field_error("caption", f"{kind} messages cannot carry a caption")
        if len(caption) > MAX_CAPTION:
            raise field_error("caption", f"must be at most {MAX_CAPTION} characters")
        if caption.strip():
            media["caption"] = caption
    if filename is not None:
        if kind is not MediaKind.DOCUMENT:
            raise field_error("filename", "only documents have a filename")
        if not filename.strip() or len(filename) > MAX_FILENAME or not filename.isprintable():
            raise field_error("filename", f"must be printable, 1..{MAX_FILENAME} characters")
        media["filename"] = filename.strip()
    return _envelope(to, kind.value, media, reply_to)


def _link(link: str) -> str:
    link = link.strip()
    parts = urlsplit(link)
    if parts.scheme not in {"http", "https"} or not parts.hostname or len(link) > MAX_LINK:
        raise field_error("link", "must be a public http(s) URL")
    return link
