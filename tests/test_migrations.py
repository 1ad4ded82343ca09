"""The Alembic migrations: up from nothing, all the way down, and up again, on every backend.

Also: the migrated schema is exactly what the models declare (no drift between them).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import TEST_DATABASE_URL
from tests.test_cli import scratch_database
from wacrm.kit.migrations import MIGRATIONS_DIR
from wacrm.models import Base

BACKENDS = [
    "sqlite",
    pytest.param(
        "postgresql",
        marks=pytest.mark.skipif(not TEST_DATABASE_URL, reason="needs WACRM_TEST_DATABASE_URL"),
    ),
]


def _config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url)
    return config


def _schema(url: str) -> tuple[set[str], list[object], str | None]:
    """Tables, differences from the models, and the stamped revision."""

    def inspect_sync(connection: Connection) -> tuple[set[str], list[object], str | None]:
        context = MigrationContext.configure(connection)
        tables = set(inspect(connection).get_table_names())
        return tables, compare_metadata(context, Base.metadata), context.get_current_revision()

    async def run() -> tuple[set[str], list[object], str | None]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(inspect_sync)
        finally:
            await engine.dispose()

    return asyncio.run(run())


@pytest.fixture
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"
    else:
        with scratch_database(tmp_path) as url:
            yield url


@pytest.mark.parametrize("fresh_url", BACKENDS, indirect=True)
def test_upgrade_downgrade_upgrade(fresh_url):
    config = _config(fresh_url)
    head = ScriptDirectory.from_config(config).get_current_head()
    model_tables = set(Base.metadata.tables)

    command.upgrade(config, "head")
    tables, drift, revision = _schema(fresh_url)
    assert revision == head
    assert tables - {"alembic_version"} == model_tables
    assert drift == [], f"models and migrations disagree: {drift}"

    command.downgrade(config, "base")
    tables, _, revision = _schema(fresh_url)
    assert revision is None
    assert tables <= {"alembic_version"}, f"left behind by downgrade: {tables}"

    command.upgrade(config, "head")
    tables, drift, revision = _schema(fresh_url)
    assert revision == head
    assert tables - {"alembic_version"} == model_tables
    assert drift == []


def test_the_migration_history_is_linear():
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    assert len(script.get_heads()) == 1, "one head: migrations were merged"
    for revision in script.walk_revisions():
        assert revision.module.downgrade is not None
