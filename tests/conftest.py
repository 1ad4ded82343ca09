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

# Under pytest-xdist each worker gets its own PostgreSQL database and Redis db number,
# because every test starts by emptying them.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_WORKER_NO = int(_WORKER[2:]) if _WORKER.startswith("gw") else 0


def _per_worker_database(url: str | None) -> str | None:
    if not url or not _WORKER:
        return url
    base, _, name = url.rpartition("/")
    return f"{base}/{name}_{_WORKER}"


def _per_worker_redis(url: str | None) -> str | None:
    if not url or not _WORKER:
        return url
    base, _, number = url.rpartition("/")
    return f"{base}/{max(int(number or 0) - _WORKER_NO, 0)}"


TEST_DATABASE_URL = _per_worker_database(os.environ.get("WACRM_TEST_DATABASE_URL"))
TEST_REDIS_URL = _per_worker_redis(os.environ.get("WACRM_TEST_REDIS_URL"))


def migrate(url: str) -> None:
    from alembic import command
    from alembic.config import Config

    from wacrm.kit.migrations import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url)
    command.upgrade(config, "head")


async def _reset_postgres_schema(url: str) -> None:
    if _WORKER:
        await _create_database_if_missing(url)
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA public CASCADE"))
        await connection.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


async def _create_database_if_missing(url: str) -> None:
    base, _, name = url.rpartition("/")
    admin = create_async_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        exists = await connection.scalar(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
        )
        if not exists:
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()


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
