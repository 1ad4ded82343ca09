"""Signing secrets and the two signature schemes every delivery carries.

A secret is ``whsec_`` + base64 of 24 random bytes. Standard Webhooks verifiers
(``standardwebhooks.Webhook(secret)``) base64-decode the part after the prefix and use those
bytes as the HMAC key; the ``X-Wacrm-Signature`` scheme keys its HMAC with the whole string,
``whsec_...``, as UTF-8. One secret serves both.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"
_SECRET_BYTES = 24  # 192 bits; base64 without padding


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode("ascii")


def event_body(
    event_id: uuid.UUID,
    event_type: str,
    occurred_at: datetime,
    account_id: uuid.UUID,
    data: dict[str, Any],
) -> bytes:
    """The JSON body of a delivery: the same ``id`` on every attempt, so receivers can dedupe."""
    moment = occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    payload = {
        "id": str(event_id),
        "event": event_type,
        "occurred_at": moment,
        "account_id": str(account_id),
        "data": data,
    }
    # ASCII-only JSON: the bytes are valid UTF-8 whatever the data holds.
    return json.dumps(payload, separators=(",", ":")).encode("ascii")


def signature_headers(
    secret: str, *, message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """Headers signing exactly ``body`` at ``timestamp``, in both schemes."""
    standard = Webhook(secret).sign(
        msg_id=message_id, timestamp=datetime.fromtimestamp(timestamp, UTC), data=body.decode()
    )
    digest = hmac.new(
        secret.encode("utf-8"), str(timestamp).encode("ascii") + b"." + body, hashlib.sha256
    ).hexdigest()
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": str(standard),
        "X-Wacrm-Signature": f"t={timestamp},v1={digest}",
    }
