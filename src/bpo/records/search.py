"""Finding documents: filters on every metadata field and full text (PostgreSQL's
`websearch_to_tsquery` over the trigger-kept vector, ranked with `ts_rank_cd`), in cursor
pages (newest first; by rank with `q=`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Select, and_, func, literal, literal_column, not_, or_, select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.core.errors import Problem
from bpo.core.pagination import bad_cursor, key_cursor, key_cursor_parts, uuid_cursor
from bpo.records.models import Document, RecordClass, Version

CONFIG = "english"


@dataclass(slots=True)
class Filters:
    q: str | None = None
    record_class: str | None = None
    type: str | None = None
    counterparty: str | None = None
    tags: list[str] = field(default_factory=list)
    link: str | None = None  # kind:id
    fields: list[str] = field(default_factory=list)  # name:value
    date_from: date | None = None
    date_to: date | None = None
    received_from: date | None = None
    received_to: date | None = None
    status: str | None = None
    held: bool | None = None
    sha256: str | None = None
    title: str | None = None


def _pair(value: str, name: str) -> tuple[str, str]:
    left, sep, right = value.partition(":")
    if not sep or not left or not right:
        raise Problem(
            400,
            "malformed-request",
            f"{name} takes name:value, not {value!r}",
            errors=[{"pointer": name, "detail": "expected name:value"}],
        )
    return left, right


def _where(f: Filters, query: Select[Any]) -> Select[Any]:
    if f.status:
        query = query.where(Document.status == f.status)
    else:
        query = query.where(Document.status != "disposed")
    if f.record_class:
        query = query.where(
            Document.class_id
            == select(RecordClass.id).where(RecordClass.code == f.record_class).scalar_subquery()
        )
    if f.type:
        query = query.where(Document.type == f.type)
    if f.counterparty:
        query = query.where(func.lower(Document.counterparty) == f.counterparty.lower())
    if f.title:
        query = query.where(Document.title.ilike(f"%{_like(f.title)}%"))
    if f.tags:
        query = query.where(Document.tags.contains(f.tags))
    if f.link:
        kind, ref = _pair(f.link, "link")
        wanted = literal([{"kind": kind, "id": ref}], JSONB)
        query = query.where(Document.links.contains(wanted))
    for item in f.fields:
        name, value = _pair(item, "field")
        query = query.where(Document.custom_fields[name].astext == value)
    for column, low, high in (
        (Document.document_date, f.date_from, f.date_to),
        (Document.received_on, f.received_from, f.received_to),
    ):
        if low:
            query = query.where(column >= low)
        if high:
            query = query.where(column <= high)
    if f.held is not None:
        held = text("EXISTS (SELECT 1 FROM records_holds_on(records_documents))")
        query = query.where(held if f.held else not_(held))
    if f.sha256:
        query = query.where(
            select(Version.document_id)
            .where(Version.document_id == Document.id, Version.sha256 == f.sha256.lower())
            .exists()
        )
    return query


def _like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def find(
    session: AsyncSession, f: Filters, limit: int, cursor: str | None
) -> tuple[list[Document], list[float | None], str | None]:
    """One page of documents, their ranks (with `q`), and the next page's cursor."""
    if not f.q:
        query = _where(f, select(Document)).order_by(Document.id.desc()).limit(limit + 1)
        if cursor:
            query = query.where(Document.id < uuid_cursor(cursor))
        docs = list(await session.scalars(query))
        more = len(docs) > limit
        docs = docs[:limit]
        return docs, [None] * len(docs), str(docs[-1].id) if more else None
    tsquery = func.websearch_to_tsquery(literal_column(f"'{CONFIG}'"), f.q)
    rank = func.ts_rank_cd(Document.search, tsquery).label("rank")
    query = _where(f, select(Document, rank)).where(Document.search.op("@@")(tsquery))
    if cursor:
        after_rank, after_id = _rank_cursor(cursor)
        query = query.where(
            or_(rank < after_rank, and_(rank == after_rank, Document.id < after_id))
        )
    rows = list(
        await session.execute(query.order_by(rank.desc(), Document.id.desc()).limit(limit + 1))
    )
    more = len(rows) > limit
    rows = rows[:limit]
    docs = [r[0] for r in rows]
    ranks: list[float | None] = [float(r[1]) for r in rows]
    next_cursor = None
    if more:
        next_cursor = key_cursor(repr(rows[-1][1]), rows[-1][0].id)
    return docs, ranks, next_cursor


def _rank_cursor(cursor: str) -> tuple[float, uuid.UUID]:
    rank, ident = key_cursor_parts(cursor, 2)
    try:
        return float(rank), uuid.UUID(ident)
    except ValueError:
        raise bad_cursor() from None
