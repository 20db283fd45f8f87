"""Cursors of the list endpoints: one refusal for a cursor the API did not give out."""

from __future__ import annotations

import uuid
from typing import Any

from bpo.core.errors import Problem


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
