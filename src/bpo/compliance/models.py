"""Compliance tables. In each tenant's schema: the firm's obligations and their deadlines,
filings (maker-checker), counterparties and screening hits. In `platform`: the sanctions
lists, one row per loaded version and its entries, shared by every firm (all screen against
the same lists); a tenant's role may read them, never write.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from bpo.core.ids import uuid7
from bpo.core.models import PlatformBase, TenantBase

ROLLS = ("following", "preceding", "modified_following", "none")
DEADLINE_STATUSES = ("upcoming", "due_soon", "overdue", "filed", "cancelled")
FILING_STATUSES = ("draft", "submitted", "approved", "rejected", "filed", "locked")
PARTY_KINDS = ("person", "organization")
HIT_STATUSES = ("open", "true_match", "false_positive")


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now())


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _json_list() -> Mapped[list[Any]]:
    return mapped_column(JSONB, server_default=text("'[]'::jsonb"))


class Settings(TenantBase):
    """The firm's own choices: its screening threshold (none: the engine's default)."""

    __tablename__ = "compliance_settings"
    __table_args__ = (
        CheckConstraint("id = 1", name="one_row"),
        CheckConstraint("threshold IS NULL OR threshold BETWEEN 0.5 AND 1", name="threshold"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    threshold: Mapped[float | None] = mapped_column(Float)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = _now()


class Obligation(TenantBase):
    """Something due to a regulator again and again: a recurrence rule (RFC 5545), an
    offset after each occurrence, business-day rolling in the jurisdiction, a lead time."""

    __tablename__ = "compliance_obligations"
    __table_args__ = (
        CheckConstraint(_in("roll", ROLLS), name="roll"),
        CheckConstraint("lead_days BETWEEN 0 AND 366", name="lead_days"),
        CheckConstraint(_in("status", ("active", "retired")), name="status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    regulator: Mapped[str] = mapped_column(String(200))
    jurisdiction: Mapped[str] = mapped_column(String(10))
    form: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(300))
    rrule: Mapped[str] = mapped_column(String(500))
    anchor: Mapped[date] = mapped_column(Date)
    offset_days: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    offset_months: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    roll: Mapped[str] = mapped_column(String(20), server_default="following")
    lead_days: Mapped[int] = mapped_column(Integer, server_default=text("14"))
    time_zone: Mapped[str] = mapped_column(String(64), server_default="UTC")
    owner: Mapped[str | None] = mapped_column(String(200))
    evidence_classes: Mapped[list[str]] = _json_list()
    open_request: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    template: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(10), server_default="active")
    horizon_until: Mapped[date | None] = mapped_column(Date)  # deadlines generated up to
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class Deadline(TenantBase):
    """One occurrence of an obligation: its period, when it is due (rolled to a business
    day), and what happened about it (reminded, escalated, filed)."""

    __tablename__ = "compliance_deadlines"
    __table_args__ = (
        UniqueConstraint("obligation_id", "period"),
        CheckConstraint(_in("status", DEADLINE_STATUSES), name="status"),
        Index("ix_compliance_deadlines_due", "due", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    obligation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant.compliance_obligations.id"))
    period: Mapped[date] = mapped_column(Date)
    nominal: Mapped[date] = mapped_column(Date)
    due: Mapped[date] = mapped_column(Date)
    rolled: Mapped[str | None] = mapped_column(String(200))
    remind_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(10), server_default="upcoming")
    reminded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    request_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # the work request opened
    filing_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_at: Mapped[datetime] = _now()


class Filing(TenantBase):
    """A return or report, drafted by a maker, approved by a different checker (the data's
    hash at submission must still hold at approval), then filed with its evidence and
    locked."""

    __tablename__ = "compliance_filings"
    __table_args__ = (
        CheckConstraint(_in("status", FILING_STATUSES), name="status"),
        # The second pair of eyes, kept by the database too.
        CheckConstraint("checker IS NULL OR checker <> maker", name="four_eyes"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    obligation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("tenant.compliance_obligations.id")
    )
    deadline_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("tenant.compliance_deadlines.id")
    )
    title: Mapped[str] = mapped_column(String(300))
    period: Mapped[date | None] = mapped_column(Date)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    status: Mapped[str] = mapped_column(String(10), server_default="draft")
    maker: Mapped[str] = mapped_column(String(200))
    submitted_hash: Mapped[str | None] = mapped_column(String(64))
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    checker: Mapped[str | None] = mapped_column(String(200))
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rejections: Mapped[list[dict[str, Any]]] = _json_list()
    regulator_reference: Mapped[str | None] = mapped_column(String(200))
    filed_on: Mapped[date | None] = mapped_column(Date)
    filed_by: Mapped[str | None] = mapped_column(String(200))
    evidence: Mapped[list[dict[str, Any]]] = _json_list()
    locked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class Counterparty(TenantBase):
    """Someone the firm does business with, screened against the sanctions lists."""

    __tablename__ = "compliance_counterparties"
    __table_args__ = (CheckConstraint(_in("kind", PARTY_KINDS), name="kind"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    name: Mapped[str] = mapped_column(String(300))
    aliases: Mapped[list[str]] = _json_list()
    kind: Mapped[str] = mapped_column(String(12))
    country: Mapped[str | None] = mapped_column(String(2))
    birth_date: Mapped[str | None] = mapped_column(String(10))  # YYYY or YYYY-MM-DD
    identifiers: Mapped[list[str]] = _json_list()
    reference: Mapped[str | None] = mapped_column(String(200))  # the firm's own id
    screened_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    screened_version: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class Hit(TenantBase):
    """A counterparty's name close to a listed one: kept with its list version, score and
    explanation, and decided by a reviewer. A false positive stays decided for the same
    list entry (its fingerprint) until the entry changes."""

    __tablename__ = "compliance_hits"
    __table_args__ = (
        UniqueConstraint("counterparty_id", "source_id", "entry_fingerprint"),
        CheckConstraint(_in("status", HIT_STATUSES), name="status"),
        Index("ix_compliance_hits_status", "status", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    counterparty_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenant.compliance_counterparties.id")
    )
    list_version: Mapped[uuid.UUID] = mapped_column(Uuid)
    source: Mapped[str] = mapped_column(String(40))
    source_id: Mapped[str] = mapped_column(String(100))
    entry_fingerprint: Mapped[str] = mapped_column(String(64))
    listed_name: Mapped[str] = mapped_column(String(500))
    score: Mapped[float] = mapped_column(Float)
    explanation: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16), server_default="open")
    reviewer: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    request_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # the review task's request
    created_at: Mapped[datetime] = _now()


class SanctionsList(PlatformBase):
    """One loaded version of a sanctions list; earlier versions stay for the record."""

    __tablename__ = "sanctions_lists"
    __table_args__ = (
        CheckConstraint(_in("status", ("current", "superseded")), name="status"),
        Index("ix_sanctions_lists_source", "source", "loaded_at"),
        {"info": {"tenant_reads": True}},  # every firm's screening reads it (Citus: reference)
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    source: Mapped[str] = mapped_column(String(40))  # ofac_sdn, opensanctions, ...
    published_on: Mapped[date | None] = mapped_column(Date)
    sha256: Mapped[str] = mapped_column(String(64))
    entries: Mapped[int] = mapped_column(Integer)
    aliases: Mapped[int] = mapped_column(Integer)
    added: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    changed: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    removed: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    status: Mapped[str] = mapped_column(String(12), server_default="current")
    firms_total: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    firms_screened: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    loaded_by: Mapped[str] = mapped_column(String(200))
    loaded_at: Mapped[datetime] = _now()


class SanctionsEntry(PlatformBase):
    """One listed person, organisation, vessel or aircraft in one list version."""

    __tablename__ = "sanctions_entries"
    __table_args__ = {"info": {"tenant_reads": True}}  # read by every firm's screening

    list_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("platform.sanctions_lists.id", ondelete="CASCADE"), primary_key=True
    )
    source_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(500))
    aliases: Mapped[list[str]] = _json_list()
    countries: Mapped[list[str]] = _json_list()
    birth_dates: Mapped[list[str]] = _json_list()
    identifiers: Mapped[list[str]] = _json_list()
    programs: Mapped[list[str]] = _json_list()
    remarks: Mapped[str] = mapped_column(Text, server_default="")
    fingerprint: Mapped[str] = mapped_column(String(64))
