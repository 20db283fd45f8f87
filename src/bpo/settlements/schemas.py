"""Request and response types of the settlement APIs. Amounts are integers of minor units;
a bank line's amount is signed (money in > 0), an invoice's or bill's amount is positive."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec

MAX_AMOUNT = 10**15
Amount = Annotated[int, msgspec.Meta(gt=0, le=MAX_AMOUNT)]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
AccountRef = Annotated[str, msgspec.Meta(min_length=1, max_length=36)]  # a ledger code or id
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Number = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]
Ref = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Column = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Score = Annotated[float, msgspec.Meta(ge=0, le=1)]
Days = Annotated[int, msgspec.Meta(ge=0, le=366)]
Note = Annotated[str, msgspec.Meta(max_length=2_000)]
Step = Literal["reference", "amount_date_party", "fuzzy", "split"]


class RulesIn(msgspec.Struct, forbid_unknown_fields=True):
    """The matching cascade of one bank account (first match wins, in this order)."""

    steps: Annotated[list[Step], msgspec.Meta(min_length=1, max_length=4)] = msgspec.field(
        default_factory=lambda: ["reference", "amount_date_party", "fuzzy", "split"]
    )
    auto_confirm: Score = 0.95
    suggest_min: Score = 0.5
    date_window_days: Days = 10
    fee_tolerance: Annotated[int, msgspec.Meta(ge=0, le=MAX_AMOUNT)] = 0
    max_split: Annotated[int, msgspec.Meta(ge=1, le=6)] = 4


class CsvMappingIn(msgspec.Struct, forbid_unknown_fields=True):
    """Which column of the bank's CSV export holds what."""

    date: Column
    amount: Column | None = None
    debit: Column | None = None
    credit: Column | None = None
    currency: Column | None = None
    description: Column | None = None
    reference: Column | None = None
    counterparty: Column | None = None
    counterparty_account: Column | None = None
    value_date: Column | None = None
    date_format: Annotated[str, msgspec.Meta(min_length=2, max_length=20)] = "%Y-%m-%d"
    decimal: Literal[".", ","] = "."
    delimiter: Literal[",", ";", "\t", "|"] = ","


class BankAccountIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    currency: Currency
    iban: Annotated[str, msgspec.Meta(min_length=5, max_length=42)] | None = None
    bic: Annotated[str, msgspec.Meta(min_length=8, max_length=11)] | None = None
    account_number: Annotated[str, msgspec.Meta(min_length=1, max_length=34)] | None = None
    cash_account: AccountRef | None = None
    suspense_account: AccountRef | None = None
    fee_account: AccountRef | None = None
    rules: RulesIn | None = None
    csv_mapping: CsvMappingIn | None = None


class BankAccountUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """A change of a bank account; `confirm` makes an unconfirmed one active (its ledger
    accounts named now or before), which posts and matches its lines from then on."""

    name: Name | None = None
    cash_account: AccountRef | None = None
    suspense_account: AccountRef | None = None
    fee_account: AccountRef | None = None
    rules: RulesIn | None = None
    csv_mapping: CsvMappingIn | None = None
    confirm: bool = False


class BankAccountOut(msgspec.Struct):
    id: str
    name: str
    iban: str | None
    bic: str | None
    account_number: str | None
    currency: str
    status: str
    cash_account: str | None
    suspense_account: str | None
    fee_account: str | None
    rules: RulesIn
    csv_mapping: CsvMappingIn | None
    created_at: datetime


class BankAccountPage(msgspec.Struct):
    items: list[BankAccountOut]
    next_cursor: str | None


class StatementImportOut(msgspec.Struct):
    id: str
    status: str
    format: str
    filename: str | None
    bank_account: str | None
    lines_total: int
    lines_done: int
    lines_imported: int
    lines_skipped: int
    statements: list[str]
    warnings: list[dict[str, object]]
    errors: list[dict[str, object]]
    created_at: datetime
    finished_at: datetime | None


class BankStatementOut(msgspec.Struct):
    id: str
    bank_account: str
    format: str
    bank_statement_id: str | None
    currency: str
    opening_balance: int | None
    opening_date: date | None
    closing_balance: int | None
    closing_date: date | None
    line_count: int
    continuity: str
    created_at: datetime


class StatementLineOut(msgspec.Struct):
    id: str
    statement: str
    booking_date: date
    value_date: date | None
    amount: int
    currency: str
    open_amount: int
    bank_reference: str | None
    end_to_end_id: str | None
    creditor_reference: str | None
    counterparty_name: str | None
    counterparty_account: str | None
    description: str
    reversal: bool
    return_code: str | None
    bank_code: str | None
    status: str


class StatementLinePage(msgspec.Struct):
    items: list[StatementLineOut]
    next_cursor: str | None


class InvoiceIn(msgspec.Struct, forbid_unknown_fields=True):
    """A customer invoice (or, at /bills, a supplier bill): posted when issued, to the
    control account (receivable or payable) against `account` (the sale or the expense)."""

    number: Number
    counterparty: Name
    issue_date: date
    due_date: date
    amount: Amount
    currency: Currency
    control_account: AccountRef
    account: AccountRef
    reference: Ref | None = None  # the structured creditor reference asked of the payer
    description: Note = ""


class ExpectedIn(msgspec.Struct, forbid_unknown_fields=True):
    """A payment the firm expects (in, or out), cleared against `account` when it comes."""

    direction: Literal["in", "out"]
    counterparty: Name
    expected_on: date
    amount: Amount
    currency: Currency
    account: AccountRef
    number: Number | None = None
    amount_min: Amount | None = None
    amount_max: Amount | None = None
    window_days: Days = 10
    reference: Ref | None = None
    end_to_end_id: Ref | None = None
    bank_account: Annotated[str, msgspec.Meta(max_length=36)] | None = None
    description: Note = ""


class ItemOut(msgspec.Struct):
    id: str
    kind: str
    number: str
    counterparty: str
    reference: str | None
    issue_date: date
    due_date: date
    amount: int  # positive, as issued
    direction: str
    currency: str
    open_amount: int  # positive: what remains to be paid
    status: str
    amount_min: int | None
    amount_max: int | None
    entry: str | None
    created_at: datetime


class ItemPage(msgspec.Struct):
    items: list[ItemOut]
    next_cursor: str | None


class Part(msgspec.Struct, forbid_unknown_fields=True):
    id: Annotated[str, msgspec.Meta(max_length=36)]
    amount: Amount | None = None  # positive; default: all that is open


class MatchIn(msgspec.Struct, forbid_unknown_fields=True):
    """A manual match: lines against items (the difference, if any, to `fee` within the
    account's tolerance), or lines (or items) written off to `write_off_account`."""

    lines: Annotated[list[Part], msgspec.Meta(max_length=50)] = []
    items: Annotated[list[Part], msgspec.Meta(max_length=50)] = []
    write_off_account: AccountRef | None = None
    note: Note = ""


class MatchOut(msgspec.Struct):
    id: str
    bank_account: str
    status: str
    rule: str
    score: float
    reasons: list[str]
    lines: list[dict[str, object]]
    items: list[dict[str, object]]
    fee: int
    write_off_account: str | None
    entry: str | None
    reversal_entry: str | None
    auto: bool
    note: str
    created_by: str
    created_at: datetime
    decided_by: str | None
    decided_at: datetime | None


class MatchPage(msgspec.Struct):
    items: list[MatchOut]
    next_cursor: str | None


class RunIn(msgspec.Struct, forbid_unknown_fields=True):
    bank_account: Annotated[str, msgspec.Meta(max_length=36)] | None = None


class RunOut(msgspec.Struct):
    lines_considered: int
    items_considered: int
    confirmed: int
    suggested: int
    matches: list[str]


class DecisionIn(msgspec.Struct, forbid_unknown_fields=True):
    note: Note = ""


class TaskIn(msgspec.Struct, forbid_unknown_fields=True):
    bank_account: Annotated[str, msgspec.Meta(max_length=36)]
    period: Annotated[str, msgspec.Meta(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]


class Ageing(msgspec.Struct):
    current: int
    days_1_30: int
    days_31_60: int
    days_61_90: int
    over_90: int


class ReconciliationOut(msgspec.Struct):
    bank_account: str
    as_of: date
    currency: str
    statement_balance: int | None  # the last closing balance on or before as_of
    statement_date: date | None
    ledger_balance: int  # the cash account
    suspense_balance: int
    difference: int  # statement - ledger
    unposted_lines: int  # lines not in the books yet (an unconfirmed account)
    unmatched_in: int  # bank lines in suspense: money in / money out
    unmatched_out: int
    unmatched_count: int
    explained: bool  # difference == unposted lines
    receivables: Ageing
    payables: Ageing
