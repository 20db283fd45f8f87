"""Cursors of the list endpoints: one refusal for a cursor the API did not give out."""

from __future__ import annotations

import base64
import uuid
from typing import Annotated, Any

from litestar.params import Parameter

from bpo.core.errors import Problem

# How many rows a page of a list holds (50 unless asked), and the cursor of the next page.
PageLimit = Annotated[int, Parameter(ge=1, le=200, description="rows per page")]
PageCursor = Annotated[
    str | None, Parameter(max_length=512, description="next_cursor of the page before")
]


def bad_cursor() -> Problem:
    return Problem(
        400,
        "malformed-request",
        "cursor is not one this API gave out",
        errors=[{"parameter": "cursor", "location": "query", "detail": "unknown cursor"}],
    )


def uuid_cursor(cursor: str | None) -> uuid.UUID | None:
    """A cursor that is the last row's id (time-ordered UUIDv7)."""
    if cursor is None:
        return None
    try:
        return uuid.UUID(cursor)
    except ValueError:
        raise bad_cursor() from None


def page_of(rows: list[Any], limit: int) -> tuple[list[Any], str | None]:
    """The first `limit` of `rows` (fetched as limit + 1, ordered by id) and the cursor of the
    next page, if there is one: the last shown row's id."""
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], str(rows[limit - 1].id)


def key_cursor(*parts: object) -> str:
    """An opaque cursor for a keyset of several columns (a sort key, then the id): the
    caller learns nothing from it and cannot forge one that reads other rows."""
    raw = "|".join(str(p) for p in parts).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def key_cursor_parts(cursor: str, n: int) -> list[str]:
    """The `n` parts of a `key_cursor` (the first may hold "|"; the later ones never do)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise bad_cursor() from None
    parts = raw.rsplit("|", n - 1)
    if len(parts) != n:
        raise bad_cursor()
    return parts
