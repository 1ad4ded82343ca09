"""Shared plumbing of the ``wacrm`` sub-commands."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncSession

from wacrm.kit.db import in_new_transaction
from wacrm.kit.errors import AppError
from wacrm.settings import Settings, get_settings

T = TypeVar("T")
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON")]


def fail(message: str) -> NoReturn:
    """A clean exit 1 with one ``error:`` line on stderr."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def settings_or_exit() -> Settings:
    """The settings, or a clean exit naming what is wrong with them."""
    try:
        return get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            str(error["msg"]).removeprefix("Value error, ") for error in exc.errors()
        )
        fail(f"invalid settings: {problems}")


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
