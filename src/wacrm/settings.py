"""All configuration, from environment variables prefixed ``WACRM_`` (and an optional ``.env``)."""

from __future__ import annotations

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
    redis_url: str | None = Field(None, description="shared rate limits across processes")
    secret_key: str = Field("", description="deployment secret; generated in var_dir if unset")
    public_base_url: str = Field("http://127.0.0.1:8000", description="where people reach us")

    rate_limit_per_minute: int = Field(120, ge=1, description="requests per minute per API key")
    auth_failures_per_minute: int = Field(30, ge=1, description="failed API auths per client IP")
    login_attempts_per_minute: int = Field(10, ge=1, description="login attempts per IP and email")
    max_body_bytes: int = Field(1024 * 1024, ge=1024, description="request body limit")
    session_ttl_hours: int = Field(24 * 7, ge=1, description="dashboard session lifetime")
    last_used_write_interval_seconds: int = Field(60, ge=1, description="last_used_at granularity")

    @model_validator(mode="after")
    def _fill_embedded_defaults(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.var_dir / 'wacrm.db'}"
        if not self.secret_key:
            if self.env == "production":
                raise ValueError("WACRM_SECRET_KEY is required when WACRM_ENV=production")
            self.secret_key = _persisted_secret(self.var_dir / "secret_key")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def secure_cookies(self) -> bool:
        return self.env == "production"


def _persisted_secret(path: Path) -> str:
    """The embedded default's secret: made once, kept in var/, reused on every start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("x") as fresh:  # exclusive: two first starts agree on one secret
            path.chmod(0o600)
            fresh.write(secrets.token_urlsafe(48))
    except FileExistsError:
        pass
    return path.read_text().strip()


@lru_cache
def get_settings() -> Settings:
    return Settings()
