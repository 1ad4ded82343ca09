"""Meta's webhook JSON → typed values. Pure: no database, no I/O.

Nothing in the body is trusted to have the documented shape. Only a body that is not a
WhatsApp webhook at all is rejected (``MalformedPayload``); inside one, an item that cannot
be used is skipped with a note in ``problems`` and the rest of the batch still counts.
Every string is made storable here, once: NUL removed (PostgreSQL refuses it in text and
JSON) and lone surrogates replaced.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from wacrm.kit.clock import utcnow
from wacrm.whatsapp.inbound_types import message_content, text_or_none

WHATSAPP_OBJECT = "whatsapp_business_account"
MAX_WAMID = 255  # Message.wamid / reply_to_wamid
MAX_STATUS = 16  # MessageStatusUpdate.status
MAX_PHONE_NUMBER_ID = 64  # Channel.phone_number_id
MAX_PROFILE_NAME = 200  # Contact.profile_name
MAX_DEPTH = 64  # Meta's payloads nest about 8 deep

_SURROGATE = re.compile("[\ud800-\udfff]")


class MalformedPayload(ValueError):
    """The body is not a WhatsApp webhook: nothing in it can be processed, ever."""


@dataclass(frozen=True)
class InboundMessage:
    wamid: str
    sender_wa_id: str
    profile_name: str | None
    type: str
    content: dict[str, Any]
    reply_to_wamid: str | None
    sent_at: datetime


@dataclass(frozen=True)
class StatusReport:
    wamid: str
    status: str
    occurred_at: datetime
    error: dict[str, Any] | None
    raw: dict[str, Any]


@dataclass(frozen=True)
class MessagesChange:
    """One ``field: "messages"`` change: what happened on one business number."""

    phone_number_id: str
    messages: list[InboundMessage]
    statuses: list[StatusReport]


@dataclass
class ParsedPayload:
    changes: list[MessagesChange] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def parse_payload(body: bytes) -> ParsedPayload:
    """Every ``messages`` change of every entry; other subscribed fields are ignored."""
    document = _decode(body)
    if not isinstance(document, dict):
        raise MalformedPayload("the body is not a JSON object")
    if document.get("object") != WHATSAPP_OBJECT:
        raise MalformedPayload(f'"object" is not "{WHATSAPP_OBJECT}"')
    entries = document.get("entry")
    if not isinstance(entries, list):
        raise MalformedPayload('"entry" is missing or not a list')

    parsed = ParsedPayload()
    for i, entry in enumerate(entries):
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            parsed.problems.append(f"entry[{i}] has no changes list")
            continue
        for j, change in enumerate(changes):
            where = f"entry[{i}].changes[{j}]"
            if not isinstance(change, dict):
                parsed.problems.append(f"{where} is not an object")
            elif change.get("field") == "messages":
                messages_change = _messages_change(change.get("value"), where, parsed.problems)
                if messages_change is not None:
                    parsed.changes.append(messages_change)
    return parsed


def _decode(body: bytes) -> Any:
    try:
        document = json.loads(
            body.decode("utf-8"), parse_float=_finite_float, parse_constant=lambda _: None
        )
        return _storable(document, 0)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedPayload(f"the body is not valid JSON: {exc}"[:300]) from None


def _finite_float(text: str) -> float | None:
    # 1e999 parses to inf, which no database stores as JSON.
    value = float(text)
    return value if math.isfinite(value) else None


def _storable(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ValueError("nested too deeply")
    if isinstance(value, str):
        return _storable_text(value)
    if isinstance(value, list):
        return [_storable(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {_storable_text(k): _storable(v, depth + 1) for k, v in value.items()}
    return value


def _storable_text(text: str) -> str:
    if "\x00" in text:
        text = text.replace("\x00", "")
    return _SURROGATE.sub("\ufffd", text)


def _messages_change(value: Any, where: str, problems: list[str]) -> MessagesChange | None:
    if not isinstance(value, dict):
        problems.append(f"{where} has no value")
        return None
    metadata = value.get("metadata")
    phone_number_id = (
        text_or_none(metadata.get("phone_number_id")) if isinstance(metadata, dict) else None
    )
    if not phone_number_id or len(phone_number_id) > MAX_PHONE_NUMBER_ID:
        problems.append(f"{where} has no usable metadata.phone_number_id")
        return None
    profiles = _profiles(value.get("contacts"))
    messages: list[InboundMessage] = []
    for k, raw in enumerate(_list(value.get("messages"))):
        message = _message(raw, profiles)
        if message is None:
            problems.append(f"{where}.messages[{k}] has no usable id or sender")
        else:
            messages.append(message)
    statuses: list[StatusReport] = []
    for k, raw in enumerate(_list(value.get("statuses"))):
        status = _status(raw)
        if status is None:
            problems.append(f"{where}.statuses[{k}] has no usable id or status")
        else:
            statuses.append(status)
    return MessagesChange(phone_number_id, messages, statuses)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _profiles(contacts: Any) -> dict[str, str | None]:
    """``wa_id`` → WhatsApp profile name, from the change's ``contacts`` list."""
    profiles: dict[str, str | None] = {}
    for contact in _list(contacts):
        if not isinstance(contact, dict):
            continue
        wa_id = text_or_none(contact.get("wa_id"))
        if wa_id:
            profile = contact.get("profile")
            name = text_or_none(profile.get("name")) if isinstance(profile, dict) else None
            name = name.strip()[:MAX_PROFILE_NAME] if name else None
            profiles[wa_id] = name or None
    return profiles


def _message(raw: Any, profiles: dict[str, str | None]) -> InboundMessage | None:
    if not isinstance(raw, dict):
        return None
    wamid = _wamid(raw.get("id"))
    sender = text_or_none(raw.get("from"))
    if sender is None and len(profiles) == 1:
        sender = next(iter(profiles))
    if wamid is None or not sender:
        return None
    message_type, content = message_content(raw)
    context = raw.get("context")
    return InboundMessage(
        wamid=wamid,
        sender_wa_id=sender,
        profile_name=profiles.get(sender),
        type=message_type,
        content=content,
        reply_to_wamid=_wamid(context.get("id")) if isinstance(context, dict) else None,
        sent_at=meta_time(raw.get("timestamp")),
    )


def _status(raw: Any) -> StatusReport | None:
    if not isinstance(raw, dict):
        return None
    wamid = _wamid(raw.get("id"))
    status = text_or_none(raw.get("status"))
    if wamid is None or not status or len(status) > MAX_STATUS:
        return None
    return StatusReport(
        wamid=wamid,
        status=status,
        occurred_at=meta_time(raw.get("timestamp")),
        error=meta_error(raw.get("errors")),
        raw=raw,
    )


def _wamid(value: Any) -> str | None:
    wamid = text_or_none(value)
    return wamid if wamid and len(wamid) <= MAX_WAMID else None


EARLIEST_META_TIME = datetime(2020, 1, 1, tzinfo=UTC)


def meta_time(value: Any) -> datetime:
    """Meta's unix-seconds string; absent, absurd (before the Cloud API existed) or future
    values become now: a "delivered at 1970" would stick, as the earliest report wins."""
    now = utcnow()
    if isinstance(value, bool) or not isinstance(value, str | int):
        return now
    try:
        moment = datetime.fromtimestamp(int(value), UTC)
    except (ValueError, OverflowError, OSError):
        return now
    return moment if EARLIEST_META_TIME <= moment <= now else now


def meta_error(errors: Any) -> dict[str, Any] | None:
    """Meta's ``errors[0]`` as ``{code, title, message, details}``."""
    first = errors[0] if isinstance(errors, list) and errors else None
    if not isinstance(first, dict):
        return None
    code = first.get("code")
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    error_data = first.get("error_data")
    return {
        "code": code if isinstance(code, int) and not isinstance(code, bool) else None,
        "title": text_or_none(first.get("title")),
        "message": text_or_none(first.get("message")),
        "details": text_or_none(error_data.get("details"))
        if isinstance(error_data, dict)
        else None,
    }
