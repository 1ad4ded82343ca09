"""Security headers on every dashboard response: no inline script or style, no framing."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wacrm.dashboard.site import STATIC_PATH, is_dashboard_path
from wacrm.kit.http import add_missing_headers

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    ]
)

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


def page_headers(path: str) -> dict[str, str]:
    """The headers a dashboard response at ``path`` carries."""
    headers = dict(SECURITY_HEADERS)
    if not path.startswith(STATIC_PATH + "/"):
        # Pages can hold a just-created secret: keep them out of every cache.
        headers["Cache-Control"] = "no-store"
    return headers


class DashboardSecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to responses on dashboard paths (redirects included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_dashboard_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        extra = page_headers(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                add_missing_headers(message, extra)
            await send(message)

        await self.app(scope, receive, send_with_headers)
