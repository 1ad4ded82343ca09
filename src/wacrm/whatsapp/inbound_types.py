"""What each inbound message type keeps: Meta's message object → ``(type, content)``.

A type we don't know, or a known type whose object is missing what makes it useful, is
stored as ``unsupported`` with the raw message kept, so nothing a customer sent is lost.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

UNSUPPORTED = "unsupported"
MAX_TYPE_NAME = 64

Content = dict[str, Any]


class _Unusable(ValueError):
    pass


def text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def message_content(raw: dict[str, Any]) -> tuple[str, Content]:
    """The stored ``type`` and ``content`` JSON of one inbound message."""
    message_type = text_or_none(raw.get("type")) or ""
    extract = _EXTRACTORS.get(message_type)
    body = raw.get(message_type)
    content: Content | None = None
    # Every type's object is a JSON object, except ``contacts``: a list of cards.
    shape = list if message_type == "contacts" else dict
    if extract is not None and isinstance(body, shape):
        try:
            content = extract(body)
        except _Unusable:
            content = None
    if content is None:
        message_type, content = UNSUPPORTED, _unsupported(raw, message_type)
    _add_context(raw, content)
    return message_type, content


def _add_context(raw: dict[str, Any], content: Content) -> None:
    referral = raw.get("referral")
    if isinstance(referral, dict):
        content["referral"] = referral  # Click-to-WhatsApp ad or post the customer came from
    context = raw.get("context")
    if isinstance(context, dict):
        for flag in ("forwarded", "frequently_forwarded"):
            if context.get(flag) is True:
                content[flag] = True
        if isinstance(context.get("referred_product"), dict):
            content["referred_product"] = context["referred_product"]


def _unsupported(raw: dict[str, Any], message_type: str) -> Content:
    detail = raw.get("unsupported")
    errors = raw.get("errors")
    return {
        "original_type": message_type[:MAX_TYPE_NAME] or None,
        "unsupported_type": text_or_none(detail.get("type")) if isinstance(detail, dict) else None,
        "errors": errors if isinstance(errors, list) else [],
        "raw": raw,
    }


def _required(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise _Unusable(key)
    return value


def _flag(body: dict[str, Any], key: str) -> bool:
    return body.get(key) is True


def _number(value: Any) -> float | int:
    if isinstance(value, bool):
        raise _Unusable("number")
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise _Unusable("number") from None
        if math.isfinite(number):
            return number
    raise _Unusable("number")


def _texts(body: dict[str, Any], *keys: str) -> Content:
    return {key: text_or_none(body.get(key)) for key in keys}


def _media(*extra_texts: str, flag: str | None = None) -> Callable[[Any], Content]:
    def extract(body: Any) -> Content:
        content: Content = {"media_id": _required(body, "id")}
        content.update(_texts(body, "mime_type", "sha256", *extra_texts))
        if flag is not None:
            content[flag] = _flag(body, flag)
        return content

    return extract


def _text(body: Any) -> Content:
    text = body.get("body")
    if not isinstance(text, str):
        raise _Unusable("body")
    return {"body": text}


def _location(body: Any) -> Content:
    return {
        "latitude": _number(body.get("latitude")),
        "longitude": _number(body.get("longitude")),
        **_texts(body, "name", "address", "url"),
    }


def _contacts(body: Any) -> Content:
    if not body:
        raise _Unusable("contacts")
    return {"contacts": [card for card in body if isinstance(card, dict)]}


def _interactive(body: Any) -> Content:
    kind = _required(body, "type")
    reply = body.get(kind)
    if not isinstance(reply, dict):
        raise _Unusable(kind)
    if kind == "button_reply":
        return {"kind": kind, "id": _required(reply, "id"), **_texts(reply, "title")}
    if kind == "list_reply":
        return {"kind": kind, "id": _required(reply, "id"), **_texts(reply, "title", "description")}
    if kind == "nfm_reply":  # a WhatsApp Flow the customer completed
        return {"kind": kind, **_texts(reply, "name", "body", "response_json")}
    raise _Unusable(kind)


def _button(body: Any) -> Content:
    return _texts(body, "payload", "text")


def _reaction(body: Any) -> Content:
    emoji = text_or_none(body.get("emoji")) or ""
    # Removal: Meta sends ``emoji: ""`` or (current docs) no emoji at all.
    return {"message_id": _required(body, "message_id"), "emoji": emoji, "removed": not emoji}


def _order(body: Any) -> Content:
    items = body.get("product_items")
    return {
        "catalog_id": text_or_none(body.get("catalog_id")),
        "text": text_or_none(body.get("text")),
        "product_items": [
            {
                "product_retailer_id": text_or_none(item.get("product_retailer_id")),
                "quantity": item.get("quantity"),
                "item_price": item.get("item_price"),
                "currency": text_or_none(item.get("currency")),
            }
            for item in (items if isinstance(items, list) else [])
            if isinstance(item, dict)
        ],
    }


def _system(body: Any) -> Content:
    # The new number is ``wa_id`` in current docs, ``new_wa_id`` in older payloads.
    wa_id = text_or_none(body.get("wa_id")) or text_or_none(body.get("new_wa_id"))
    return {**_texts(body, "type", "body"), "wa_id": wa_id}


_EXTRACTORS: dict[str, Callable[[Any], Content]] = {
    "text": _text,
    "image": _media("caption"),
    "video": _media("caption"),
    "audio": _media(flag="voice"),
    "document": _media("caption", "filename"),
    "sticker": _media(flag="animated"),
    "location": _location,
    "contacts": _contacts,
    "interactive": _interactive,
    "button": _button,
    "reaction": _reaction,
    "order": _order,
    "system": _system,
}
