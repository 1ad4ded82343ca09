"""CSRF for forms shown before there is a session (logging in, accepting an invitation).

Without a session to hold the token, it is tied to the browser by a SameSite=Strict
cookie scoped to the form's path, and the form must post the same value back.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from wacrm.dashboard.rendering import render
from wacrm.settings import Settings

_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class BrowserToken:
    cookie: str
    path: str

    def _current(self, request: Request) -> str:
        """This browser's token (kept across reloads), or a new one."""
        token = request.cookies.get(self.cookie, "")
        return token if _TOKEN_SHAPE.fullmatch(token) else secrets.token_urlsafe(32)

    def _keep(self, request: Request, response: Response, token: str) -> None:
        settings: Settings = request.app.state.settings
        response.set_cookie(
            self.cookie,
            token,
            max_age=3600,
            httponly=True,
            secure=settings.secure_cookies,
            samesite="strict",
            path=self.path,
        )

    def matches(self, request: Request, sent: str) -> bool:
        expected = request.cookies.get(self.cookie, "")
        return bool(expected) and hmac.compare_digest(sent.encode(), expected.encode())

    def forget(self, response: Response) -> None:
        response.delete_cookie(self.cookie, path=self.path)

    def page(self, request: Request, template: str, status_code: int, **context: Any) -> Response:
        """A page without a session whose form posts this browser's token (``browser_csrf``)."""
        token = self._current(request)
        response = render(
            request, template, member=None, status_code=status_code, browser_csrf=token, **context
        )
        self._keep(request, response, token)
        return response
