"""The success envelope: ``{"data": ...}`` and ``{"data": [...], "meta": {...}}``."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class Data(BaseModel, Generic[T]):
    data: T = Field(description="The result")


class PageMeta(BaseModel):
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at end")


class ListOf(BaseModel, Generic[T]):
    data: list[T] = Field(description="This page of results, newest first")
    meta: PageMeta = Field(description="Pagination")
