"""Record-keeping tables, in each tenant's schema: record classes (retention rules),
documents (metadata) with their immutable versions (content by hash in the store), legal
holds, erasure requests and auditor exports.

Nothing here is ever deleted as a row: a disposed document keeps its metadata and hashes
(the destruction certificate points at them). The database holds the rules when anything
else writes, raw SQL as the tenant's role included (see `records/ddl.py`).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Uuid,
    event,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from bpo.core.ids import uuid7
from bpo.core.models import TenantBase
from bpo.records import ddl

MODES = ("governance", "compliance")
ANCHORS = ("document_date", "fiscal_year_end", "received")
STATUSES = ("pending", "active", "disposed")
PERMANENT = date(9999, 12, 31)  # retain_until of a class kept forever


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now())


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class RecordClass(TenantBase):
    """What a firm keeps and for how long: "7 years after the document date", "10 years
    after the end of the fiscal year", "permanent" (no years)."""

    __tablename__ = "records_classes"
    __table_args__ = (
        CheckConstraint(_in("mode", MODES), name="mode"),
        CheckConstraint(_in("retention_after", ANCHORS), name="retention_after"),
        CheckConstraint(
            "retention_years IS NULL OR retention_years BETWEEN 0 AND 200", name="years"
        ),
        CheckConstraint("fiscal_year_end ~ '^[0-1][0-9]-[0-3][0-9]$'", name="fiscal_year_end"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    mode: Mapped[str] = mapped_column(String(10))
    retention_years: Mapped[int | None] = mapped_column(Integer)  # None: permanent
    retention_after: Mapped[str] = mapped_column(String(16), server_default="document_date")
    fiscal_year_end: Mapped[str] = mapped_column(String(5), server_default="12-31")
    description: Mapped[str] = mapped_column(Text, server_default="")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class Document(TenantBase):
    """A record's metadata; its content lives in its versions (the latest is the default)."""

    __tablename__ = "records_documents"
    __table_args__ = (
        CheckConstraint(_in("status", STATUSES), name="status"),
        CheckConstraint(_in("mode", MODES), name="mode"),
        Index("ix_records_documents_search", "search", postgresql_using="gin"),
        Index("ix_records_documents_tags", "tags", postgresql_using="gin"),
        Index("ix_records_documents_links", "links", postgresql_using="gin"),
        Index("ix_records_documents_class_date", "class_id", "document_date"),
        Index("ix_records_documents_counterparty", "counterparty"),
        Index("ix_records_documents_retain_until", "retain_until"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    class_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenant.records_classes.id", ondelete="RESTRICT")
    )
    title: Mapped[str] = mapped_column(String(300))
    type: Mapped[str] = mapped_column(String(64), server_default="")
    counterparty: Mapped[str | None] = mapped_column(String(300))
    document_date: Mapped[date] = mapped_column(Date)
    received_on: Mapped[date] = mapped_column(Date)
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(64)), server_default="{}")
    custom_fields: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    links: Mapped[list[dict[str, str]]] = mapped_column(JSONB, server_default="[]")
    # Copied from the class when filed, so a later change of the class cannot weaken it.
    mode: Mapped[str] = mapped_column(String(10))
    retain_until: Mapped[date] = mapped_column(Date)  # kept through this day
    status: Mapped[str] = mapped_column(String(10), server_default="pending")
    current_version: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    extracted_text: Mapped[str] = mapped_column(Text, server_default="")
    search: Mapped[Any] = mapped_column(TSVECTOR, server_default=text("''::tsvector"))
    disposed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disposal_reason: Mapped[str | None] = mapped_column(Text)
    certificate_id: Mapped[uuid.UUID | None] = mapped_column()
    redacted: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class Version(TenantBase):
    """One upload of a document, immutable: its hash, size, types and where it is stored."""

    __tablename__ = "records_versions"
    __table_args__ = (Index("ix_records_versions_sha256", "sha256"),)

    document_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenant.records_documents.id", ondelete="RESTRICT"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    declared_type: Mapped[str] = mapped_column(String(200))
    sniffed_type: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str | None] = mapped_column(String(300))
    storage_key: Mapped[str] = mapped_column(String(300))
    storage_version: Mapped[str | None] = mapped_column(String(200))  # S3 VersionId
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = _now()
    content_removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Hold(TenantBase):
    """A legal hold: open-ended until released. Its scope is the listed documents, plus
    every document matching all of the filters it gives (counterparty, class, date range)."""

    __tablename__ = "records_holds"
    __table_args__ = (
        CheckConstraint(
            "cardinality(document_ids) > 0 OR counterparty IS NOT NULL"
            " OR class_id IS NOT NULL OR date_from IS NOT NULL OR date_to IS NOT NULL",
            name="scope",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    name: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    document_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(Uuid()), server_default="{}")
    counterparty: Mapped[str | None] = mapped_column(String(300))
    class_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("tenant.records_classes.id", ondelete="RESTRICT")
    )
    date_from: Mapped[date | None] = mapped_column(Date)
    date_to: Mapped[date | None] = mapped_column(Date)
    placed_by: Mapped[str] = mapped_column(String(200))
    placed_at: Mapped[datetime] = _now()
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    released_by: Mapped[str | None] = mapped_column(String(200))
    release_reason: Mapped[str | None] = mapped_column(Text)


class Erasure(TenantBase):
    """A person's erasure request and what became of it (GDPR art. 17): the documents
    erased, and those a retention period or a hold kept (art. 17(3)(b))."""

    __tablename__ = "records_erasures"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    status: Mapped[str] = mapped_column(String(10))  # completed, partial, refused
    erased: Mapped[list[str]] = mapped_column(JSONB, server_default="[]")
    blocked: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default="[]")
    requested_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = _now()


class Export(TenantBase):
    """An auditor's archive: a selection packed by a job, downloadable until it expires."""

    __tablename__ = "records_exports"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    status: Mapped[str] = mapped_column(String(10), server_default="queued")
    selection: Mapped[dict[str, Any]] = mapped_column(JSONB)
    documents: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    size: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    sha256: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = _now()


event.listen(TenantBase.metadata, "after_create", ddl.create_after_tables)
