"""The request being handled, for log lines and metrics: its id and, once known, its account.

A contextvar holds one mutable ``RequestContext`` per request. Code deeper down (the API-key
authenticator, the session resolver) fills in the account on that same object, so the
access-log line written by the outer middleware sees it too.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar, Token
from dataclasses import dataclass

REQUEST_ID_HEADER = "X-Request-ID"
# Ids from a proxy or a client are kept when they are short and plainly printable: anything
# else could forge log lines or fill them, so it is replaced by one of ours.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


@dataclass
class RequestContext:
    request_id: str
    account_id: str | None = None


_current: ContextVar[RequestContext | None] = ContextVar("wacrm_request", default=None)


def current_request() -> RequestContext | None:
    return _current.get()


def start_request(incoming_id: str | None) -> tuple[RequestContext, Token[RequestContext | None]]:
    """Begin a request's context: a sane incoming id is honoured, anything else replaced."""
    if incoming_id is None or not _SANE_REQUEST_ID.fullmatch(incoming_id):
        incoming_id = uuid.uuid4().hex
    context = RequestContext(request_id=incoming_id)
    return context, _current.set(context)


def end_request(token: Token[RequestContext | None]) -> None:
    _current.reset(token)


def bind_account(account_id: uuid.UUID) -> None:
    """Record the account the current request acts for (no-op outside a request)."""
    context = _current.get()
    if context is not None:
        context.account_id = str(account_id)
