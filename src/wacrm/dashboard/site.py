"""The dashboard's map: which paths are pages, where people land, and the navigation."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from wacrm.kit.text import text_problem
from wacrm.models import Role

LOGIN_PATH = "/login"
LOGOUT_PATH = "/logout"
# Where "/" and a fresh login land.
HOME_PATH = "/inbox"
STATIC_PATH = "/static"
# The icon every page links to; /favicon.ico, which browsers ask for anyway, points here.
FAVICON_PATH = f"{STATIC_PATH}/favicon.svg"
# Invitation links: pages for people who have no session yet.
INVITATIONS_PATH = "/invitations"

# Paths answered with HTML (error pages, security headers, login redirects). Everything
# else (/api, /webhooks, /sandbox, /healthz, …) keeps the JSON envelope.
PAGE_PREFIXES = (
    LOGIN_PATH,
    LOGOUT_PATH,
    "/inbox",
    "/contacts",
    "/settings",
    STATIC_PATH,
    INVITATIONS_PATH,
)


def is_dashboard_path(path: str) -> bool:
    return path == "/" or any(
        path == prefix or path.startswith(prefix + "/") for prefix in PAGE_PREFIXES
    )


@dataclass(frozen=True)
class NavLink:
    label: str
    href: str
    section: str  # "main" or "settings"
    managers_only: bool = False

    def visible_to(self, role: Role) -> bool:
        return role.can_manage or not self.managers_only


# Pages join the navigation as they are built (Inbox, Contacts, Team, Audit log, …).
NAV: list[NavLink] = [
    NavLink("Inbox", "/inbox", "main"),
    NavLink("Contacts", "/contacts", "main"),
    NavLink("API keys", "/settings/api-keys", "settings"),
    NavLink("Team", "/settings/team", "settings"),
    NavLink("WhatsApp numbers", "/settings/numbers", "settings"),
    NavLink("Webhooks", "/settings/webhooks", "settings", managers_only=True),
    NavLink("Audit log", "/settings/audit-log", "settings", managers_only=True),
]


def safe_next(value: str | None) -> str | None:
    """A same-site dashboard path to return to after login, or None.

    Only a plain relative path is accepted: ``//host``, ``/\\host``, schemes, control
    characters and anything outside the dashboard would make an open redirect.
    """
    if not value or len(value) > 2000 or text_problem(value) or "\\" in value:
        return None
    if not value.startswith("/") or value.startswith("//") or any(c.isspace() for c in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not is_dashboard_path(parts.path):
        return None
    if parts.path in (LOGIN_PATH, LOGOUT_PATH) or parts.path.startswith(STATIC_PATH + "/"):
        return None
    return value
