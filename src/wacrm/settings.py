"""All configuration, from environment variables prefixed ``WACRM_`` (and an optional ``.env``)."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_VAR_DIR = Path("var")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WACRM_", env_file=".env", extra="ignore")

    env: Literal["development", "production", "test"] = Field(
        "development", description="production makes the secret key mandatory and cookies secure"
    )
    var_dir: Path = Field(DEFAULT_VAR_DIR, description="where the embedded default keeps files")
    database_url: str = Field("", description="SQLAlchemy async URL; default SQLite in var_dir")
    database_pool_size: int = Field(
        20,
        ge=1,
        le=500,
        description="PostgreSQL connections each process keeps, and as many more in bursts: N "
        "processes can open 2 x N x this, which must fit the server's max_connections",
    )
    redis_url: str | None = Field(None, description="shared rate limits across processes")
    secret_key: str = Field("", description="deployment secret; generated in var_dir if unset")
    public_base_url: str = Field(
        "http://127.0.0.1:8000",
        description="where people reach us; https:// makes the session cookie Secure",
    )

    rate_limit_per_minute: int = Field(120, ge=1, description="requests per minute per API key")
    auth_failures_per_minute: int = Field(30, ge=1, description="failed API auths per client IP")
    login_attempts_per_minute: int = Field(10, ge=1, description="login attempts per IP and email")
    max_body_bytes: int = Field(1024 * 1024, ge=1024, description="request body limit")
    session_ttl_hours: int = Field(24 * 7, ge=1, description="dashboard session lifetime")
    invitation_ttl_days: int = Field(
        7, ge=1, le=90, description="how long a team invitation link can be used"
    )
    argon2_time_cost: int = Field(3, ge=1, description="Argon2id passes")
    argon2_memory_kib: int = Field(65536, ge=8, description="Argon2id memory")
    last_used_write_interval_seconds: int = Field(60, ge=1, description="last_used_at granularity")

    # WhatsApp Cloud API (Meta) and the built-in sandbox that stands in for it.
    graph_base_url: str = Field("https://graph.facebook.com", description="Meta Graph API base")
    graph_api_version: str = Field("v21.0", description="Graph API version in request paths")
    meta_app_secret: str | None = Field(None, description="Meta app secret (webhook signatures)")
    meta_verify_token: str | None = Field(None, description="webhook handshake verify token")
    whatsapp_messages_per_second: float = Field(80, gt=0, description="send throttle per number")
    whatsapp_timeout_seconds: float = Field(15, gt=0, description="Cloud API request timeout")
    whatsapp_retry_base_seconds: float = Field(
        2, gt=0, description="first retry delay after 130429 or 5xx; doubles each time"
    )
    sends_stalled_after_seconds: float = Field(
        600,
        gt=0,
        description="a send (or broadcast recipient) still in flight after this long belongs to "
        "a process that died: it becomes `unknown` and is never sent again",
    )
    sandbox_enabled: bool = Field(
        True, description="mount the WhatsApp sandbox in-process at /sandbox (not in production)"
    )
    sandbox_base_url: str = Field("", description="Graph base URL of the sandbox; default ours")
    sandbox_access_token: str = Field("", description="token the sandbox accepts; derived")
    sandbox_app_secret: str = Field("", description="secret the sandbox signs with; derived")
    sandbox_webhook_url: str = Field("", description="where the sandbox posts webhooks")
    sandbox_status_delay_seconds: float = Field(0.2, ge=0, description="between status callbacks")
    sandbox_duplicate_statuses: bool = Field(False, description="post every status twice")
    sandbox_reorder_statuses: bool = Field(False, description="post statuses in reverse order")
    sandbox_messages_per_second: float = Field(
        1000, gt=0, description="sandbox throughput per number before 130429"
    )
    sandbox_templates_file: Path | None = Field(None, description="JSON list of templates")
    # Operations: logs and metrics.
    log_format: Literal["json", "text"] | None = Field(
        None, description="log line format; default json in production, text otherwise"
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="lowest level written to the log"
    )
    metrics_enabled: bool = Field(True, description="serve Prometheus metrics at /metrics")
    metrics_token: str | None = Field(
        None, description="when set, /metrics requires `Authorization: Bearer <token>`"
    )
    worker_in_process: bool = Field(True, description="run the worker inside `wacrm serve`")
    worker_poll_seconds: float = Field(0.5, gt=0, description="idle worker poll interval")

    # Outbound webhooks.
    webhooks_allow_private_targets: bool = Field(
        False,
        description="allow http:// and loopback/private webhook targets (development and "
        "tests only; refused when env is production)",
    )
    webhooks_retry_schedule_seconds: list[float] = Field(
        default_factory=lambda: [0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0],
        min_length=1,
        max_length=50,
        description="delay before each delivery attempt, from the previous one (the first, 0, "
        "is the event itself); its length is the number of attempts; jittered by 10%",
    )
    webhooks_timeout_seconds: float = Field(
        10, gt=0, le=120, description="deadline of one delivery attempt (and of the DNS lookup)"
    )
    webhooks_lease_seconds: float = Field(
        60,
        gt=0,
        description="how long a claimed delivery is reserved for its worker before another "
        "may retry it; at least twice the timeout plus a second",
    )
    webhooks_concurrency: int = Field(
        64, ge=1, le=1000, description="deliveries in flight per worker process"
    )
    webhooks_disable_after_failures: int = Field(
        15, ge=1, description="auto-disable: failed attempts in a row, with no success between"
    )
    webhooks_disable_after_seconds: float = Field(
        86400, ge=0, description="auto-disable: and failing for at least this long"
    )

    @model_validator(mode="after")
    def _fill_embedded_defaults(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.var_dir / 'wacrm.db'}"
        if not self.secret_key:
            if self.env == "production":
                raise ValueError("WACRM_SECRET_KEY is required when WACRM_ENV=production")
            self.secret_key = _persisted_secret(self.var_dir / "secret_key")
        if self.log_format is None:
            self.log_format = "json" if self.env == "production" else "text"
        if self.env == "production":
            self.sandbox_enabled = False
            if self.webhooks_allow_private_targets:
                raise ValueError(
                    "WACRM_WEBHOOKS_ALLOW_PRIVATE_TARGETS must not be set when WACRM_ENV=production"
                )
        schedule = self.webhooks_retry_schedule_seconds
        if schedule[0] != 0 or any(delay < 0 for delay in schedule):
            raise ValueError(
                "WACRM_WEBHOOKS_RETRY_SCHEDULE_SECONDS must start with 0 (the first attempt is "
                "made at once) and hold no negative delays"
            )
        if self.webhooks_lease_seconds < 2 * self.webhooks_timeout_seconds + 1:
            raise ValueError(
                "WACRM_WEBHOOKS_LEASE_SECONDS must be at least twice "
                "WACRM_WEBHOOKS_TIMEOUT_SECONDS plus one second"
            )
        base = self.public_base_url.rstrip("/")
        self.sandbox_base_url = self.sandbox_base_url or f"{base}/sandbox"
        self.sandbox_webhook_url = self.sandbox_webhook_url or f"{base}/webhooks/whatsapp"
        self.sandbox_access_token = self.sandbox_access_token or _derived(self, b"sandbox-token")
        self.sandbox_app_secret = self.sandbox_app_secret or _derived(self, b"sandbox-secret")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def secure_cookies(self) -> bool:
        """Cookies only travel over TLS once people reach us over https (or in production)."""
        return self.env == "production" or self.public_base_url.lower().startswith("https://")


def _derived(settings: Settings, purpose: bytes) -> str:
    digest = hmac.new(settings.secret_key.encode(), purpose, hashlib.sha256).hexdigest()
    return f"sbx_{digest[:40]}"


def _persisted_secret(path: Path) -> str:
    """The embedded default's secret: made once, kept in var/, reused on every start.

    The secret is written whole to a private draft, then linked into place (atomic, and
    only the first start wins): a process starting at the same moment never reads a
    half-written, empty secret.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        draft = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        with os.fdopen(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
            out.write(secrets.token_urlsafe(48))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    secret = path.read_text().strip()
    if not secret:
        raise ValueError(f"{path} is empty: delete it for a new secret, or set WACRM_SECRET_KEY")
    return secret


@lru_cache
def get_settings() -> Settings:
    return Settings()
