"""Error pages for dashboard paths: HTML for people, where the API answers in its envelope."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import Response

from wacrm.dashboard.rendering import redirect, render
from wacrm.dashboard.security import page_headers
from wacrm.dashboard.site import LOGIN_PATH, safe_next

_TITLES = {
    400: "That request was not valid",
    403: "Not allowed",
    404: "Page not found",
    405: "Not allowed here",
    409: "That cannot be done now",
    413: "That was too much to send",
    429: "Too many attempts",
    500: "Something went wrong",
}
_NOT_FOUND = "There is no such page, or it is not in your account."


def error_page(
    request: Request, status: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    """The page for an error on a dashboard path; no session at all means "log in first"."""
    if status == 401:
        return login_redirect(request)
    if status == 404:
        message = _NOT_FOUND
    response = render(
        request,
        "error.html",
        member=None,
        status_code=status,
        title=_TITLES.get(status, "That did not work"),
        message=message,
    )
    response.headers.update(headers or {})
    # A 500 is rendered outside every middleware: set the page headers here too.
    response.headers.update(page_headers(request.url.path))
    return response


def login_redirect(request: Request) -> Response:
    """To the login page, coming back here afterwards when "here" is a page to read."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    back = safe_next(target) if request.method in ("GET", "HEAD") else None
    return redirect(LOGIN_PATH + (f"?{urlencode({'next': back})}" if back else ""))
