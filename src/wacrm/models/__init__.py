"""Every SQLAlchemy model, imported here so Alembic and the app see one metadata."""

from wacrm.kit.db import Base
from wacrm.models.accounts import Account, LoginSession, Membership, Role, User
from wacrm.models.api_keys import ApiKey
from wacrm.models.audit import AuditEvent

__all__ = ["Account", "ApiKey", "AuditEvent", "Base", "LoginSession", "Membership", "Role", "User"]
