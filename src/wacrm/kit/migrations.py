"""The Alembic migrations: they ship inside the package, so an installed wacrm (not only a
source checkout) can run ``wacrm db upgrade``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url)
    return config


@lru_cache(maxsize=1)
def schema_head() -> str | None:
    """The newest revision: the one a ready database is at."""
    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
