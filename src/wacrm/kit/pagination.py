"""Keyset pagination on ``(created_at desc, id desc)`` with opaque, signed cursors.

A list may order by another moment instead of ``created_at`` (the inbox: latest activity),
given as a column or expression and, for the cursor, the same moment read off a row.

A cursor is bound to the account, the endpoint and the filters it was made for: any
other use, or any tampering, is a 400 — never a silent restart at page one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import Query, Request
from sqlalchemy import ColumnElement, Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute

from wacrm.kit.clock import as_utc
from wacrm.kit.errors import BadRequest, field_error

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
T = TypeVar("T")

# The two query parameters of every list endpoint.
Cursor = Annotated[
    str | None, Query(max_length=1024, description="`next_cursor` of the previous page")
]
Limit = Annotated[
    int | None, Query(description=f"Page size, 1-{MAX_LIMIT} (default {DEFAULT_LIMIT})")
]
Row = TypeVar("Row", bound=Any)


@dataclass(frozen=True)
class Position:
    created_at: datetime
    id: uuid.UUID


@dataclass(frozen=True)
class Page:
    limit: int
    after: Position | None


class Paginator:
    def __init__(
        self, secret: str, account_id: uuid.UUID, endpoint: str, filters: dict[str, Any]
    ) -> None:
        self._key = hashlib.sha256(b"wacrm-cursor:" + secret.encode()).digest()
        self._binding = json.dumps(
            [str(account_id), endpoint, filters], sort_keys=True, default=str
        ).encode()

    def page(self, cursor: str | None, limit: int | None) -> Page:
        if limit is None:
            limit = DEFAULT_LIMIT
        if not 1 <= limit <= MAX_LIMIT:
            raise field_error("limit", f"must be between 1 and {MAX_LIMIT}")
        return Page(limit=limit, after=None if cursor is None else self._decode(cursor))

    def apply(
        self,
        statement: Select[Any],
        created_at: InstrumentedAttribute[datetime] | ColumnElement[datetime],
        id_column: InstrumentedAttribute[uuid.UUID],
        page: Page,
    ) -> Select[Any]:
        if page.after is not None:
            statement = statement.where(
                or_(
                    created_at < page.after.created_at,
                    and_(created_at == page.after.created_at, id_column < page.after.id),
                )
            )
        return statement.order_by(created_at.desc(), id_column.desc()).limit(page.limit + 1)

    def split(
        self, rows: Sequence[Row], page: Page, moment: Callable[[Row], datetime] | None = None
    ) -> tuple[list[Row], str | None]:
        """The rows of this page, and the cursor of the next one (None at the end).

        ``moment`` reads off a row what ``apply`` ordered by (default: its ``created_at``).
        """
        items = list(rows[: page.limit])
        if len(rows) <= page.limit:
            return items, None
        last = items[-1]
        at = last.created_at if moment is None else moment(last)
        return items, self._encode(Position(as_utc(at), last.id))

    def _signature(self, payload: bytes) -> bytes:
        return hmac.new(self._key, self._binding + b"|" + payload, hashlib.sha256).digest()[:16]

    def _encode(self, position: Position) -> str:
        payload = json.dumps([position.created_at.isoformat(), str(position.id)]).encode()
        token = payload + self._signature(payload)
        return base64.urlsafe_b64encode(token).decode().rstrip("=")

    def _decode(self, cursor: str) -> Position:
        invalid = BadRequest(
            "Invalid cursor: use the next_cursor of the previous page, with the same filters.",
            details=[{"field": "cursor", "message": "malformed, foreign or stale cursor"}],
        )
        try:
            token = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            raise invalid from None
        payload, signature = token[:-16], token[-16:]
        if len(token) <= 16 or not hmac.compare_digest(signature, self._signature(payload)):
            raise invalid
        try:
            moment, row_id = json.loads(payload)
            return Position(as_utc(datetime.fromisoformat(moment)), uuid.UUID(row_id))
        except (ValueError, TypeError, AttributeError):  # e.g. a number where the id belongs
            raise invalid from None


def paginator(
    request: Request, account_id: uuid.UUID, endpoint: str, filters: dict[str, Any]
) -> Paginator:
    """A paginator whose cursors only work for this account, endpoint and filters."""
    secret: str = request.app.state.settings.secret_key
    return Paginator(secret, account_id, endpoint, filters)
