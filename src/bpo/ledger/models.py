"""Ledger tables, in each tenant's schema: the chart of accounts, the journal (entries and
their posted lines), balances kept with every posting, closed periods, rates and imports.

Drafts keep their lines in the entry (`draft_lines`); `ledger_lines` holds posted lines
only, so every row of it is immutable. The database enforces the invariants (see
`ledger/ddl.py`): posted entries balance per currency at commit, posted entries and lines
never change, nothing posts on or before the lock date or into a closed period, and balance
conditions hold on every change of a maintained balance.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    SmallInteger,
    String,
    Text,
    event,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from bpo.core.ids import uuid7
from bpo.core.models import TenantBase
from bpo.ledger import ddl

ACCOUNT_TYPES = ("asset", "liability", "equity", "income", "expense")
DEBIT_NORMAL = ("asset", "expense")  # their balance grows with debits
ENTRY_SOURCES = (
    "api",
    "import",
    "settlement",
    "revaluation",
    "reversal",
    "opening",
    "adjustment",
)


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now())


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class LedgerSettings(TenantBase):
    """The firm's books: functional currency, lock date, where FX revaluation posts."""

    __tablename__ = "ledger_settings"
    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint("fiscal_year_start BETWEEN 1 AND 12", name="fiscal_year_start"),
    )

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, default=1)
    functional_currency: Mapped[str] = mapped_column(String(3), server_default="EUR")
    fiscal_year_start: Mapped[int] = mapped_column(SmallInteger, server_default=text("1"))
    lock_date: Mapped[date | None] = mapped_column(Date)
    fx_gain_account_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("tenant.ledger_accounts.id")
    )
    fx_loss_account_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("tenant.ledger_accounts.id")
    )
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    updated_at: Mapped[datetime] = _now()


class Account(TenantBase):
    """An account of the chart: a tree by `parent_id`; one currency, or any (NULL)."""

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        CheckConstraint(_in("type", ACCOUNT_TYPES), name="type"),
        CheckConstraint("status IN ('active', 'closed')", name="status"),
        CheckConstraint(
            "min_balance IS NULL OR max_balance IS NULL OR min_balance <= max_balance",
            name="condition",
        ),
        CheckConstraint("parent_id <> id", name="not_own_parent"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(10))
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("tenant.ledger_accounts.id"), index=True
    )
    currency: Mapped[str | None] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(10), server_default="active")
    # Balance conditions on the account's natural balance (debits less credits for assets
    # and expenses, the reverse for the others), in each currency it holds.
    min_balance: Mapped[int | None] = mapped_column(BigInteger)
    max_balance: Mapped[int | None] = mapped_column(BigInteger)
    description: Mapped[str] = mapped_column(Text, server_default="")
    # Its lines are open items to settle against the bank (settlements), e.g. money in transit.
    reconcilable: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class Entry(TenantBase):
    """A journal entry. Posted: immutable, its lines in `ledger_lines`, its `content_hash`
    recorded in the firm's audit chain. A reversal points at what it reverses (once)."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("status IN ('draft', 'posted')", name="status"),
        CheckConstraint(_in("source", ENTRY_SOURCES), name="source"),
        CheckConstraint(
            "(status = 'posted') = (booked_at IS NOT NULL AND content_hash IS NOT NULL"
            " AND posting_id IS NOT NULL)",
            name="posted_fields",
        ),
        CheckConstraint("reverses_id <> id", name="not_own_reversal"),
        Index("ix_ledger_entries_effective_on_number", "effective_on", "number"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    number: Mapped[int] = mapped_column(BigInteger, Identity(), unique=True)
    status: Mapped[str] = mapped_column(String(10))
    effective_on: Mapped[date] = mapped_column(Date)
    booked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    description: Mapped[str] = mapped_column(String(500))
    reference: Mapped[str | None] = mapped_column(String(200), index=True)
    source: Mapped[str] = mapped_column(String(20), server_default="api")
    reverses_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("tenant.ledger_entries.id"), unique=True
    )
    draft_lines: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    content_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    # The posting it was written in (the id of its first entry): the audit event
    # `ledger.posting:<posting_id>` records the hashes of all its entries.
    posting_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    created_by: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class Line(TenantBase):
    """A posted line: signed amount (debit positive) in its currency and in the firm's
    functional currency. Written once, with its entry's posting; never changed."""

    __tablename__ = "ledger_lines"
    __table_args__ = (
        CheckConstraint("amount <> 0 OR functional_amount <> 0", name="not_empty"),
        Index("ix_ledger_lines_account_id_effective_on", "account_id", "effective_on", "id"),
        # An entry's lines in order, each number once (verify reads them in this order).
        Index("ix_ledger_lines_entry_id_line_no", "entry_id", "line_no", unique=True),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    entry_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant.ledger_entries.id"))
    line_no: Mapped[int] = mapped_column(SmallInteger)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant.ledger_accounts.id"))
    effective_on: Mapped[date] = mapped_column(Date)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    functional_amount: Mapped[int] = mapped_column(BigInteger)
    memo: Mapped[str | None] = mapped_column(String(500))
    counterparty: Mapped[str | None] = mapped_column(String(200))
    tags: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))


class Balance(TenantBase):
    """Turnover of one account, currency and day, kept in each posting's transaction:
    the trial balance at any date sums these, never the lines."""

    __tablename__ = "ledger_balances"
    __table_args__ = (Index("ix_ledger_balances_on_date", "on_date"),)

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenant.ledger_accounts.id"), primary_key=True
    )
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    on_date: Mapped[date] = mapped_column(Date, primary_key=True)
    debit: Mapped[int] = mapped_column(BigInteger)
    credit: Mapped[int] = mapped_column(BigInteger)
    functional: Mapped[int] = mapped_column(BigInteger)  # signed, debit positive


class Total(TenantBase):
    """An account's balance now, per currency: where balance conditions are enforced."""

    __tablename__ = "ledger_totals"

    account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenant.ledger_accounts.id"), primary_key=True
    )
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    debit: Mapped[int] = mapped_column(BigInteger)
    credit: Mapped[int] = mapped_column(BigInteger)
    functional: Mapped[int] = mapped_column(BigInteger)


class Period(TenantBase):
    """A monthly period that has been closed (or closed and reopened); absent means open."""

    __tablename__ = "ledger_periods"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'closed')", name="status"),
        CheckConstraint("extract(day FROM starts_on) = 1", name="first_of_month"),
    )

    starts_on: Mapped[date] = mapped_column(Date, primary_key=True)
    status: Mapped[str] = mapped_column(String(10))
    changed_by: Mapped[str] = mapped_column(String(200))
    changed_at: Mapped[datetime] = _now()


class Rate(TenantBase):
    """Functional-currency units per unit of `currency`, from `on_date` until the next."""

    __tablename__ = "ledger_rates"
    __table_args__ = (CheckConstraint("rate > 0", name="positive"),)

    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    on_date: Mapped[date] = mapped_column(Date, primary_key=True)
    rate: Mapped[Decimal] = mapped_column(Numeric(24, 12))
    created_at: Mapped[datetime] = _now()


class JournalImport(TenantBase):
    """A CSV journal import: queued, running (progress), posted or failed (errors by line)."""

    __tablename__ = "ledger_imports"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'posted', 'failed')", name="status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    status: Mapped[str] = mapped_column(String(10), server_default="queued")
    filename: Mapped[str | None] = mapped_column(String(200))
    content: Mapped[str | None] = mapped_column(Text)  # dropped once the import finishes
    rows_total: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    rows_done: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    entries_posted: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = _now()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# The invariants' functions and triggers, created with the tables (a new tenant's schema is
# built from the models) and by the tenant migration that adds the ledger.
event.listen(TenantBase.metadata, "after_create", ddl.create_after_tables)
