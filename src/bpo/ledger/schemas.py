"""Request and response types of the ledger APIs. Amounts are integers of minor units."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

MAX_AMOUNT = 10**15  # minor units per line: sums of 1,000 entries stay far inside bigint
MAX_LINES = 500
MAX_BATCH = 1_000

Amount = Annotated[int, msgspec.Meta(gt=0, le=MAX_AMOUNT)]
Limit = Annotated[int, msgspec.Meta(ge=-MAX_AMOUNT, le=MAX_AMOUNT)]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
Code = Annotated[
    str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]
AccountRef = Annotated[str, msgspec.Meta(min_length=1, max_length=36)]  # a code or an id
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Memo = Annotated[str, msgspec.Meta(max_length=500)]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=60)]
Description = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
Reference = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
AccountType = Literal["asset", "liability", "equity", "income", "expense"]
ClientSource = Literal["api", "adjustment", "opening"]
Rate = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,12}(\.[0-9]{1,12})?$")]


class AccountIn(msgspec.Struct, forbid_unknown_fields=True):
    code: Code
    name: Name
    type: AccountType
    parent: AccountRef | None = None
    currency: Currency | None = None  # None: any currency
    description: Annotated[str, msgspec.Meta(max_length=2_000)] = ""
    min_balance: Limit | None = None  # e.g. 0: never below zero
    max_balance: Limit | None = None
    reconcilable: bool = False  # its lines are open items for bank reconciliation


class AccountUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | UnsetType = UNSET
    parent: AccountRef | UnsetType | None = UNSET
    description: Annotated[str, msgspec.Meta(max_length=2_000)] | UnsetType = UNSET
    status: Literal["active", "closed"] | UnsetType = UNSET
    min_balance: Limit | UnsetType | None = UNSET
    max_balance: Limit | UnsetType | None = UNSET
    reconcilable: bool | UnsetType = UNSET


class BalanceOut(msgspec.Struct):
    currency: str
    debit: int  # turnover
    credit: int
    balance: int  # natural sign: debits less credits for assets and expenses, else reverse
    functional: int  # the same balance in the functional currency


class AccountOut(msgspec.Struct):
    id: str
    code: str
    name: str
    type: str
    parent_id: str | None
    currency: str | None
    status: str
    min_balance: int | None
    max_balance: int | None
    description: str
    reconcilable: bool
    created_at: datetime
    updated_at: datetime
    balances: list[BalanceOut] | None = None


class AccountPage(msgspec.Struct):
    items: list[AccountOut]
    next_cursor: str | None


class LineIn(msgspec.Struct, forbid_unknown_fields=True):
    account: AccountRef
    currency: Currency
    debit: Amount | None = None
    credit: Amount | None = None
    memo: Memo | None = None
    counterparty: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    tags: Annotated[list[Tag], msgspec.Meta(max_length=20)] = []


class EntryIn(msgspec.Struct, forbid_unknown_fields=True):
    effective_on: date
    description: Description
    lines: Annotated[list[LineIn], msgspec.Meta(min_length=1, max_length=MAX_LINES)]
    reference: Reference | None = None
    status: Literal["posted", "draft"] = "posted"
    source: ClientSource = "api"


class DraftUpdate(msgspec.Struct, forbid_unknown_fields=True):
    effective_on: date | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    reference: Reference | UnsetType | None = UNSET
    lines: Annotated[list[LineIn], msgspec.Meta(min_length=1, max_length=MAX_LINES)] | UnsetType = (
        UNSET
    )


class BatchIn(msgspec.Struct, forbid_unknown_fields=True):
    entries: Annotated[list[EntryIn], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


class ReverseIn(msgspec.Struct, forbid_unknown_fields=True):
    effective_on: date | None = None  # default: the reversed entry's date
    description: Description | None = None


class EntryLineOut(msgspec.Struct):
    line_no: int
    account_id: str
    account_code: str
    currency: str
    debit: int
    credit: int
    functional_debit: int
    functional_credit: int
    memo: str | None = None
    counterparty: str | None = None
    tags: list[str] = []


class EntryOut(msgspec.Struct):
    id: str
    number: int
    status: str
    effective_on: date
    description: str
    reference: str | None
    source: str
    lines: list[EntryLineOut]
    created_by: str
    created_at: datetime
    booked_at: datetime | None = None
    reverses: str | None = None
    reversed_by: str | None = None
    hash: str | None = None  # SHA-256 of the posted content, recorded in the audit chain


class EntryPage(msgspec.Struct):
    items: list[EntryOut]
    next_cursor: str | None


class BatchOut(msgspec.Struct):
    entries: list[EntryOut]


class PeriodOut(msgspec.Struct):
    id: str  # YYYY-MM
    fiscal_year: int
    starts_on: date
    ends_on: date
    status: str  # open, closed, locked (on or before the lock date)
    changed_by: str | None = None
    changed_at: datetime | None = None


class LockDateIn(msgspec.Struct, forbid_unknown_fields=True):
    lock_date: date | None  # nothing posts on or before it; None lifts it


class LockDateOut(msgspec.Struct):
    lock_date: date | None


class SettingsIn(msgspec.Struct, forbid_unknown_fields=True):
    functional_currency: Currency | UnsetType = UNSET
    fiscal_year_start: Annotated[int, msgspec.Meta(ge=1, le=12)] | UnsetType = UNSET
    fx_gain_account: AccountRef | UnsetType | None = UNSET
    fx_loss_account: AccountRef | UnsetType | None = UNSET


class SettingsOut(msgspec.Struct):
    functional_currency: str
    fiscal_year_start: int
    lock_date: date | None
    fx_gain_account_id: str | None
    fx_loss_account_id: str | None


class RateIn(msgspec.Struct, forbid_unknown_fields=True):
    currency: Currency
    on: date
    rate: Rate  # functional units per unit of `currency`, as a decimal string


class RatesIn(msgspec.Struct, forbid_unknown_fields=True):
    rates: Annotated[list[RateIn], msgspec.Meta(min_length=1, max_length=1_000)]


class RateOut(msgspec.Struct):
    currency: str
    on: date
    rate: str


class ChartIn(msgspec.Struct, forbid_unknown_fields=True):
    chart: Literal["small-business"] = "small-business"


class ChartOut(msgspec.Struct):
    chart: str
    created: int
    existing: int


class TrialRow(msgspec.Struct):
    account_id: str
    code: str
    name: str
    type: str
    currency: str
    debit: int  # the balance, on its side
    credit: int
    functional_debit: int
    functional_credit: int


class TrialTotal(msgspec.Struct):
    currency: str
    debit: int
    credit: int


class TrialBalanceOut(msgspec.Struct):
    as_of: date
    functional_currency: str
    rows: list[TrialRow]
    totals: list[TrialTotal]  # per currency: debit = credit
    functional_totals: TrialTotal


class StatementRow(msgspec.Struct):
    account_id: str
    code: str
    name: str
    type: str
    parent_id: str | None
    balance: int  # the account's own, functional currency, natural sign
    total: int  # with its sub-accounts


class StatementOut(msgspec.Struct, omit_defaults=True):
    functional_currency: str
    sections: dict[str, list[StatementRow]]
    totals: dict[str, int]
    as_of: date | None = None
    start: date | None = None
    end: date | None = None


class AccountBalanceOut(msgspec.Struct):
    account_id: str
    code: str
    as_of: date
    balances: list[BalanceOut]


class LedgerLineOut(msgspec.Struct):
    line_id: int
    effective_on: date
    entry_id: str
    entry_number: int
    description: str
    reference: str | None
    currency: str
    debit: int
    credit: int
    balance: int  # after this line, natural sign, in the line's currency
    functional_amount: int
    memo: str | None
    counterparty: str | None


class LedgerPage(msgspec.Struct):
    items: list[LedgerLineOut]
    next_cursor: str | None


class Drift(msgspec.Struct):
    what: str  # balance, total, entry, posting
    detail: str
    account: str | None = None
    currency: str | None = None
    on: date | None = None
    entry_number: int | None = None


class LedgerVerifyOut(msgspec.Struct):
    ok: bool
    lines_checked: int
    entries_checked: int
    postings_checked: int
    differences: list[Drift]
    first_broken: Drift | None = None  # the first broken link of the entries' chain


class ImportOut(msgspec.Struct):
    id: str
    status: str  # queued, running, posted, failed
    filename: str | None
    rows_total: int
    rows_done: int
    entries_posted: int
    errors: list[dict[str, Any]]  # {"line": n, "detail": ...}, nothing posted if any
    created_by: str
    created_at: datetime
    finished_at: datetime | None
