"""Every SQLAlchemy model, imported here so Alembic and the app see one metadata."""

from wacrm.kit.db import Base
from wacrm.models.accounts import Account, Invitation, LoginSession, Membership, Role, User
from wacrm.models.api_keys import ApiKey
from wacrm.models.audit import AuditEvent
from wacrm.models.broadcasts import Broadcast, BroadcastRecipient, BroadcastStatus, RecipientStatus
from wacrm.models.channels import Channel, ChannelKind
from wacrm.models.contacts import Contact, ContactTag, Tag
from wacrm.models.conversations import (
    Conversation,
    ConversationStatus,
    Direction,
    Message,
    MessageStatus,
    MessageStatusUpdate,
)
from wacrm.models.events import Event
from wacrm.models.idempotency import IdempotencyRecord
from wacrm.models.inbox import EarlyStatus, InboundPayload, InboxState
from wacrm.models.webhooks import WebhookEndpoint as WebhookEndpoint  # registers its tables

__all__ = [
    "Account",
    "ApiKey",
    "AuditEvent",
    "Base",
    "Broadcast",
    "BroadcastRecipient",
    "BroadcastStatus",
    "Channel",
    "ChannelKind",
    "Contact",
    "ContactTag",
    "Conversation",
    "ConversationStatus",
    "Direction",
    "EarlyStatus",
    "Event",
    "IdempotencyRecord",
    "InboundPayload",
    "InboxState",
    "Invitation",
    "LoginSession",
    "Membership",
    "Message",
    "MessageStatus",
    "MessageStatusUpdate",
    "RecipientStatus",
    "Role",
    "Tag",
    "User",
]
