"""Database engine, sessions and the column types every model shares."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from sqlalchemy import DateTime, MetaData, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect, ExceptionContext
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from wacrm.kit.clock import as_utc

T = TypeVar("T")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python on every backend (SQLite keeps no offset)."""

    impl = DateTime
    cache_ok = True

    def __init__(self, timezone: bool = True) -> None:
        super().__init__(timezone=timezone)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        # SQLite compares timestamps as text: store one fixed naive-UTC spelling.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


class Database:
    """One engine and session factory per process."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 20) -> None:
        self.url = url
        # No pre-ping: it costs a round trip per request. After a database restart the
        # first failing connection invalidates the whole pool, so only in-flight work errs.
        # hide_parameters: a failed statement's error (logged with its traceback) would
        # otherwise carry its values: password and key hashes, CSRF tokens, messages.
        options: dict[str, Any] = {"echo": echo, "hide_parameters": True}
        if url.startswith("sqlite"):
            options["connect_args"] = {"timeout": 30}
        else:
            options.update(pool_size=pool_size, max_overflow=pool_size, pool_timeout=10)
        self.engine: AsyncEngine = create_async_engine(url, **options)
        event.listen(self.engine.sync_engine, "handle_error", _connection_failures_are_disconnects)
        if url.startswith("sqlite"):
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # Single reads that need no transaction (the API-key lookup): one round trip.
        self.autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    async def dispose(self) -> None:
        await self.engine.dispose()


def _connection_failures_are_disconnects(context: ExceptionContext) -> None:
    # A failed connect (database restarting, not accepting connections, too many clients)
    # is not a disconnect to SQLAlchemy; calling it one marks the error
    # `connection_invalidated`, which is how `database_unavailable` tells an outage from a
    # query the database refused.
    if context.connection is None and not context.is_pre_ping:
        context.is_disconnect = True


def database_unavailable(error: BaseException) -> bool:
    """True when ``error`` means no usable database connection, not a bad query: a lost or
    refused connection, or a pool with none free in time."""
    if isinstance(error, sa_exc.DBAPIError):
        return error.connection_invalidated
    # asyncpg's socket errors on connect reach us unwrapped.
    return isinstance(error, (sa_exc.TimeoutError, ConnectionError))


def first_line(error: BaseException) -> str:
    """What an error says, without the SQL and parameters SQLAlchemy appends."""
    return str(error).splitlines()[0][:300] if str(error) else type(error).__name__


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


async def in_new_transaction(url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """``await work(session)`` on a fresh engine for ``url``, committed; the engine disposed.

    For work outside a request (the CLI, test set-up); requests use :data:`DbSession`.
    """
    database = Database(url)
    try:
        async with database.sessions() as session:
            result = await work(session)
            await session.commit()
            return result
    finally:
        await database.dispose()


def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def get_db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request owns the transaction: commit when the handler returns, roll back on error."""
    async with get_database(request).sessions() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


# scope="function": commit before the response is sent, so a failed commit is a failed request.
DbSession = Annotated[AsyncSession, Depends(get_db_session, scope="function")]
