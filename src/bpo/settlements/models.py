"""Settlement tables, in each tenant's schema: the firm's bank accounts, statement imports,
statements and their lines, open items (invoices, bills, expected payments) and matches.

Amounts are integers of minor units (DESIGN §6). A bank line's amount is signed as the bank
sees it (money in > 0); an open item's amounts are signed like the line that settles it (an
invoice > 0, a bill < 0), so a match compares like with like. Nothing here is a ledger row:
postings go through the ledger's service, and these tables keep the posted entries' ids.
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
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
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
from bpo.core.models import TenantBase

ACCOUNT_STATUSES = ("unconfirmed", "active")
IMPORT_STATUSES = ("queued", "running", "done", "failed")
LINE_STATUSES = ("unmatched", "partly_matched", "matched", "written_off")
ITEM_KINDS = ("invoice", "bill", "expected", "ledger")
ITEM_STATUSES = ("open", "partly_paid", "paid", "written_off", "cancelled")
MATCH_STATUSES = ("suggested", "confirmed", "rejected", "undone")
CONTINUITY = ("first", "continuous", "gap", "unchecked")


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now())


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _ledger_account() -> Mapped[uuid.UUID | None]:
    return mapped_column(ForeignKey("tenant.ledger_accounts.id"))


class BankAccount(TenantBase):
    """An account of the firm at a bank, mirrored by a ledger cash account. One seen first
    in a statement is `unconfirmed`: its lines are imported but neither posted nor matched
    until a tenant admin confirms it and names its ledger accounts."""

    __tablename__ = "settlements_bank_accounts"
    __table_args__ = (
        CheckConstraint(_in("status", ACCOUNT_STATUSES), name="status"),
        CheckConstraint("iban IS NOT NULL OR account_number IS NOT NULL", name="identity"),
        CheckConstraint(
            "status = 'unconfirmed' OR (cash_account_id IS NOT NULL"
            " AND suspense_account_id IS NOT NULL)",
            name="confirmed_accounts",
        ),
        UniqueConstraint("identity", "currency"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    name: Mapped[str] = mapped_column(String(200))
    iban: Mapped[str | None] = mapped_column(String(34))
    bic: Mapped[str | None] = mapped_column(String(11))
    account_number: Mapped[str | None] = mapped_column(String(34))
    identity: Mapped[str] = mapped_column(String(34))  # the IBAN, else the account number
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(12), server_default="unconfirmed")
    cash_account_id: Mapped[uuid.UUID | None] = _ledger_account()
    suspense_account_id: Mapped[uuid.UUID | None] = _ledger_account()
    fee_account_id: Mapped[uuid.UUID | None] = _ledger_account()
    rules: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    csv_mapping: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class StatementImport(TenantBase):
    """An uploaded statement file: checked at upload (a bad file is refused then), written
    by a job with progress; the file itself is dropped once the job finishes."""

    __tablename__ = "settlements_imports"
    __table_args__ = (CheckConstraint(_in("status", IMPORT_STATUSES), name="status"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    bank_account_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("tenant.settlements_bank_accounts.id")
    )
    status: Mapped[str] = mapped_column(String(10), server_default="queued")
    format: Mapped[str] = mapped_column(String(20))
    filename: Mapped[str | None] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes | None] = mapped_column(LargeBinary)
    lines_total: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    lines_done: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    lines_imported: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    lines_skipped: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    statement_ids: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    warnings: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, server_default=text("'[]'::jsonb")
    )
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = _now()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Statement(TenantBase):
    """One statement of one account (a file may hold several). The same statement
    imported again is the same row (`fingerprint`)."""

    __tablename__ = "settlements_statements"
    __table_args__ = (
        CheckConstraint(_in("continuity", CONTINUITY), name="continuity"),
        UniqueConstraint("bank_account_id", "fingerprint"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    bank_account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenant.settlements_bank_accounts.id")
    )
    import_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant.settlements_imports.id"))
    fingerprint: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(20))
    bank_statement_id: Mapped[str | None] = mapped_column(String(100))
    currency: Mapped[str] = mapped_column(String(3))
    opening_balance: Mapped[int | None] = mapped_column(BigInteger)
    opening_date: Mapped[date | None] = mapped_column(Date)
    closing_balance: Mapped[int | None] = mapped_column(BigInteger)
    closing_date: Mapped[date | None] = mapped_column(Date)
    line_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    continuity: Mapped[str] = mapped_column(String(10), server_default="unchecked")
    created_at: Mapped[datetime] = _now()


class BankLine(TenantBase):
    """A movement the bank reported. Deduplicated across imports by `fingerprint` (the
    bank's reference, else the line's content and its place among identical lines)."""

    __tablename__ = "settlements_lines"
    __table_args__ = (
        CheckConstraint(_in("status", LINE_STATUSES), name="status"),
        CheckConstraint("amount <> 0", name="amount"),
        UniqueConstraint("bank_account_id", "fingerprint"),
        Index("ix_settlements_lines_open", "bank_account_id", "status", "booking_date"),
        Index("ix_settlements_lines_statement", "statement_id", "seq"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    bank_account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenant.settlements_bank_accounts.id")
    )
    statement_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant.settlements_statements.id"))
    seq: Mapped[int] = mapped_column(Integer)  # order in its statement
    fingerprint: Mapped[str] = mapped_column(String(64))
    booking_date: Mapped[date] = mapped_column(Date)
    value_date: Mapped[date | None] = mapped_column(Date)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    open_amount: Mapped[int] = mapped_column(BigInteger)  # not yet cleared, signed
    bank_reference: Mapped[str | None] = mapped_column(String(100))
    end_to_end_id: Mapped[str | None] = mapped_column(String(100))
    creditor_reference: Mapped[str | None] = mapped_column(String(100))
    counterparty_name: Mapped[str | None] = mapped_column(String(200))
    counterparty_account: Mapped[str | None] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, server_default="")
    reversal: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    return_code: Mapped[str | None] = mapped_column(String(35))
    bank_code: Mapped[str | None] = mapped_column(String(60))
    status: Mapped[str] = mapped_column(String(15), server_default="unmatched")
    posted: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_at: Mapped[datetime] = _now()


class OpenItem(TenantBase):
    """What a payment can settle: a customer invoice, a supplier bill (each posted to the
    receivable or payable account when issued), an expected payment, or a line posted on a
    ledger account flagged reconcilable (kind `ledger`, its control account that one)."""

    __tablename__ = "settlements_items"
    __table_args__ = (
        CheckConstraint(_in("kind", ITEM_KINDS), name="kind"),
        CheckConstraint(_in("status", ITEM_STATUSES), name="status"),
        CheckConstraint("amount <> 0", name="amount"),
        CheckConstraint("amount_min IS NULL OR amount_min <= amount_max", name="range"),
        Index("ix_settlements_items_number", "kind", "number", unique=True),
        Index("ix_settlements_items_open", "status", "currency", "due_date"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    kind: Mapped[str] = mapped_column(String(10))
    number: Mapped[str] = mapped_column(String(64))
    counterparty: Mapped[str] = mapped_column(String(200))
    reference: Mapped[str | None] = mapped_column(String(100))
    end_to_end_id: Mapped[str | None] = mapped_column(String(100))
    issue_date: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date)
    amount: Mapped[int] = mapped_column(BigInteger)  # signed like the settling bank line
    currency: Mapped[str] = mapped_column(String(3))
    amount_min: Mapped[int | None] = mapped_column(BigInteger)  # expected payments' range
    amount_max: Mapped[int | None] = mapped_column(BigInteger)
    window_days: Mapped[int] = mapped_column(Integer, server_default=text("10"))
    open_amount: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(12), server_default="open")
    bank_account_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("tenant.settlements_bank_accounts.id")
    )
    control_account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant.ledger_accounts.id"))
    counter_account_id: Mapped[uuid.UUID | None] = _ledger_account()
    entry_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # the issue posting
    ledger_line_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)  # kind ledger
    description: Mapped[str] = mapped_column(Text, server_default="")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class Match(TenantBase):
    """Bank lines tied to open items (or written off to an account): suggested, then
    confirmed (the clearing entry posted), rejected, or undone (the entry reversed)."""

    __tablename__ = "settlements_matches"
    __table_args__ = (
        CheckConstraint(_in("status", MATCH_STATUSES), name="status"),
        Index("ix_settlements_matches_status", "bank_account_id", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid7)
    bank_account_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenant.settlements_bank_accounts.id")
    )
    status: Mapped[str] = mapped_column(String(10), server_default="suggested")
    rule: Mapped[str] = mapped_column(String(30))
    score: Mapped[float] = mapped_column(Float)
    reasons: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)  # [{id, amount}]
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)  # [{id, amount}]
    fee: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    write_off_account_id: Mapped[uuid.UUID | None] = _ledger_account()
    entry_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # the clearing entry
    reversal_entry_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    auto: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    note: Mapped[str] = mapped_column(Text, server_default="")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = _now()
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
