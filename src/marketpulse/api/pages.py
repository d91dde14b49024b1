"""The one envelope every list endpoint answers with: `{"data": [...], "next": <cursor or null>}`.

A client pages through any list the same way: read `data`, and while `next` is not null ask again with
`?cursor=<next>` (endpoints that page by offset put the next offset there as a string). Keeping one shape means one
client helper, one OpenAPI pattern, and room to add paging to a list later without breaking its callers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    data: list[T] = Field(description="this page's items")
    next: str | None = Field(default=None, description="pass as `cursor` to get the next page; null on the last")


def page(items: Sequence[T], next_cursor: str | int | None = None) -> Page[T]:
    """A page of `items`; `next_cursor` (a cursor or an offset) when more follow."""
    return Page[T](data=list(items), next=None if next_cursor is None else str(next_cursor))


CURSOR_PATTERN = r"^[0-9]{1,8}$"

# The `cursor` query parameter of offset-paged lists: a previous answer's `next`.
Cursor = Annotated[str | None, Query(pattern=CURSOR_PATTERN, description="a previous page's `next`; wins over offset")]


def offset_of(offset: int, cursor: str | None) -> int:
    """The offset to start at: `cursor` (a previous page's `next`, validated by `CURSOR_PATTERN`) wins over
    `offset`."""
    return int(cursor) if cursor is not None else offset


def next_offset(offset: int, shown: int, total: int) -> str | None:
    """The `next` of an offset-paged list: where the following page starts, or None on the last page."""
    return str(offset + shown) if shown and offset + shown < total else None
