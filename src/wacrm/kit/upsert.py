"""``INSERT … ON CONFLICT DO NOTHING RETURNING`` on SQLite and PostgreSQL, one row or many.

The building block of race-safe find-or-create: the database's unique constraint decides
who wins, never a check-then-insert. Whoever gets no row back lost the race (or replayed).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Collection, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Row, Table, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.elements import ColumnElement

from wacrm.kit.db import Base

T = TypeVar("T", str, uuid.UUID)


def _dialect_insert(session: AsyncSession, target: Any) -> Any:
    return _insert_for(session.get_bind().dialect.name, target)


def _insert_for(dialect: str, target: Any) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(target)
    if dialect == "sqlite":
        return sqlite.insert(target)
    raise NotImplementedError(f"insert_or_ignore does not support {dialect}")  # pragma: no cover


async def insert_or_ignore(
    session: AsyncSession,
    model: type[Base],
    values: Mapping[str, Any],
    *,
    conflict_columns: Sequence[str],
    returning: Sequence[ColumnElement[Any] | QueryableAttribute[Any]],
) -> Row[Any] | None:
    """Insert one row unless it would violate the unique index on ``conflict_columns``.

    Returns the ``returning`` columns of the new row, or None when a row with the same key
    already exists (committed, or being inserted by a concurrent transaction that then
    commits: PostgreSQL waits for it, SQLite has one writer at a time).
    Python-side column defaults (ids, timestamps) apply as for any insert.
    """
    statement = (
        _dialect_insert(session, model)
        .values(**values)
        .on_conflict_do_nothing(index_elements=list(conflict_columns))
        .returning(*returning)
    )
    row: Row[Any] | None = (await session.execute(statement)).first()
    return row


async def insert_many_or_ignore(
    session: AsyncSession,
    model: type[Base],
    rows: Sequence[Mapping[str, Any]],
    *,
    conflict_columns: Sequence[str],
    returning: Sequence[str],
) -> list[Row[Any]]:
    """``insert_or_ignore`` for many rows in one statement; the rows actually inserted.

    ``returning`` names columns; return them with the key to tell which rows went in (the
    order of the result is not the order of ``rows``). Every row must have the same keys.
    A key repeated within ``rows`` inserts once. Callers inserting keys that concurrent
    transactions may insert too should pass ``rows`` sorted by key: PostgreSQL then takes
    the unique-index locks in one order everywhere, so two such inserts cannot deadlock.
    """
    if not rows:
        return []
    statement = _bulk_insert_or_ignore(
        session.get_bind().dialect.name, model, tuple(conflict_columns), tuple(returning)
    )
    # A Core statement on the table, run with a list of rows: SQLAlchemy's "insertmanyvalues"
    # sends one multi-row INSERT (not the ORM's bulk machinery, which costs far more CPU).
    return list((await session.execute(statement, list(rows))).all())


@functools.cache
def _bulk_insert_or_ignore(
    dialect: str, model: type[Base], conflict_columns: tuple[str, ...], returning: tuple[str, ...]
) -> Any:
    # Built once per shape: building and cache-keying a statement costs more than running it.
    table = table_of(model)
    return (
        _insert_for(dialect, table)
        .on_conflict_do_nothing(index_elements=list(conflict_columns))
        .returning(*(table.c[name] for name in returning))
    )


async def insert_many(
    session: AsyncSession, model: type[Base], rows: Sequence[Mapping[str, Any]]
) -> None:
    """Plain multi-row INSERT of rows with the same keys (Python-side defaults apply)."""
    if rows:
        await session.execute(_plain_insert(model), list(rows))


@functools.cache
def _plain_insert(model: type[Base]) -> Any:
    return insert(table_of(model))


def table_of(model: type[Base]) -> Table:
    """The model's Table, for Core statements (no ORM machinery: cheaper for bulk work)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


# PostgreSQL's wire protocol carries at most 32,767 parameters in one statement; an IN
# list of every wamid in a big batch can go past that.
MAX_IN_LIST = 10_000


def in_chunks(values: Collection[T]) -> list[list[T]]:
    """``values``, sorted and deduplicated, in lists short enough for one ``IN (...)``."""
    ordered = sorted(set(values))
    return [ordered[n : n + MAX_IN_LIST] for n in range(0, len(ordered), MAX_IN_LIST)]
