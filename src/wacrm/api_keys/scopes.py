"""The seven scopes, in one place. Matching is exact: no wildcards, no hierarchy."""

from __future__ import annotations

from enum import StrEnum


class Scope(StrEnum):
    MESSAGES_SEND = "messages:send"
    MESSAGES_READ = "messages:read"
    CONTACTS_READ = "contacts:read"
    CONTACTS_WRITE = "contacts:write"
    CONVERSATIONS_READ = "conversations:read"
    BROADCASTS_SEND = "broadcasts:send"
    WEBHOOKS_MANAGE = "webhooks:manage"


SCOPE_DESCRIPTIONS: dict[Scope, str] = {
    Scope.MESSAGES_SEND: "Send WhatsApp messages (text, template and media)",
    Scope.MESSAGES_READ: "Read messages and their delivery status",
    Scope.CONTACTS_READ: "List and read contacts and tags",
    Scope.CONTACTS_WRITE: "Create and update contacts",
    Scope.CONVERSATIONS_READ: "List and read conversations",
    Scope.BROADCASTS_SEND: "Launch broadcast campaigns and follow their progress",
    Scope.WEBHOOKS_MANAGE: "Register and manage outbound event webhooks",
}

ALL_SCOPES: tuple[Scope, ...] = tuple(Scope)
