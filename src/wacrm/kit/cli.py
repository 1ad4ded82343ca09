"""Shared plumbing of the ``wacrm`` sub-commands."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.kit.db import in_new_transaction
from wacrm.kit.errors import AppError
from wacrm.settings import get_settings

T = TypeVar("T")
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON")]


def in_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in one committed transaction; AppErrors become a clean exit 1."""
    try:
        return asyncio.run(in_new_transaction(get_settings().database_url, work))
    except AppError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None
    except (OperationalError, ProgrammingError) as exc:
        if not _missing_schema(exc):
            raise
        typer.echo("error: the database has no schema yet: run `wacrm db upgrade` first", err=True)
        raise typer.Exit(1) from None


def _missing_schema(exc: Exception) -> bool:
    text = str(exc).lower()
    return "no such table" in text or ("relation" in text and "does not exist" in text)


def print_json(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2, default=str))
