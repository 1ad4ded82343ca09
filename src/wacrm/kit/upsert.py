"""``INSERT … ON CONFLICT DO NOTHING RETURNING`` on SQLite and PostgreSQL.

The building block of race-safe find-or-create: the database's unique constraint decides
who wins, never a check-then-insert. Whoever gets no row back lost the race (or replayed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Row
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.elements import ColumnElement

from wacrm.kit.db import Base


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
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        statement: Any = postgresql.insert(model)
    elif dialect == "sqlite":
        statement = sqlite.insert(model)
    else:  # pragma: no cover - the two supported backends
        raise NotImplementedError(f"insert_or_ignore does not support {dialect}")
    statement = (
        statement.values(**values)
        .on_conflict_do_nothing(index_elements=list(conflict_columns))
        .returning(*returning)
    )
    row: Row[Any] | None = (await session.execute(statement)).first()
    return row
