"""Real databases for every test: SQLite by default, PostgreSQL when WACRM_TEST_DATABASE_URL is set.

The schema is built once per run by the real Alembic migrations; every test starts from
empty tables, so tests never depend on each other.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from wacrm.app import create_app
from wacrm.kit.db import Database
from wacrm.models import Base
from wacrm.settings import Settings

# Cheaper Argon2id for speed (same algorithm and code path); set before settings load.
os.environ.setdefault("WACRM_ARGON2_TIME_COST", "1")
os.environ.setdefault("WACRM_ARGON2_MEMORY_KIB", "1024")
os.environ.setdefault("WACRM_SECRET_KEY", "test-secret-key-not-for-production")

TEST_DATABASE_URL = os.environ.get("WACRM_TEST_DATABASE_URL")
TEST_REDIS_URL = os.environ.get("WACRM_TEST_REDIS_URL")


def migrate(url: str) -> None:
    from alembic import command
    from alembic.config import Config

    from wacrm.cli import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url)
    command.upgrade(config, "head")


async def _reset_postgres_schema(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    if TEST_DATABASE_URL:
        asyncio.run(_reset_postgres_schema(TEST_DATABASE_URL))
        url = TEST_DATABASE_URL
    else:
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    migrate(url)
    return url


async def _empty_tables(database: Database) -> None:
    tables = [table.name for table in reversed(Base.metadata.sorted_tables)]
    # DELETE beats TRUNCATE by 10x on tables this small (TRUNCATE makes new files).
    async with database.engine.begin() as connection:
        for table in tables:
            await connection.execute(text(f"DELETE FROM {table}"))


def _flush_test_redis() -> None:
    if TEST_REDIS_URL:
        import redis

        redis.Redis.from_url(TEST_REDIS_URL).flushdb()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        env="test",
        var_dir=tmp_path,
        database_url=database_url,
        redis_url=TEST_REDIS_URL,
        secret_key="test-secret-key-not-for-production",
        worker_in_process=False,  # tests run worker jobs themselves, deterministically
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[object]:
    _flush_test_redis()
    application = create_app(settings)
    await _empty_tables(application.state.database)
    yield application
    await application.state.database.dispose()


@pytest.fixture
async def client(app: object) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def db(app: object) -> AsyncIterator[AsyncSession]:
    """A session on the app's database for arranging and checking rows (commit to share)."""
    database: Database = app.state.database  # type: ignore[attr-defined]
    async with database.sessions() as session:
        yield session


@pytest.fixture
def anyio_backend() -> Iterator[str]:
    yield "asyncio"
