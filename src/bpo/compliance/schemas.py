"""Request and response types of the compliance APIs."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec

Text200 = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
Jurisdiction = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")]
Country = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}$")]
Rule = Annotated[str, msgspec.Meta(min_length=6, max_length=500)]
Roll = Literal["following", "preceding", "modified_following", "none"]
ClassCode = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
PartyName = Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
BirthDate = Annotated[str, msgspec.Meta(pattern=r"^\d{4}(-\d{2}-\d{2})?$")]
Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=2_000)]
PartyKind = Literal["person", "organization"]


class ObligationIn(msgspec.Struct, forbid_unknown_fields=True):
    """A recurring duty to a regulator: `rrule` (RFC 5545, without DTSTART) counted from
    `anchor`; each occurrence is due `offset_days`/`offset_months` later, rolled per `roll`
    off weekends and the jurisdiction's public holidays."""

    regulator: Text200
    jurisdiction: Jurisdiction
    form: Text200
    rrule: Rule
    anchor: date
    title: Title | None = None
    offset_days: Annotated[int, msgspec.Meta(ge=-366, le=366)] = 0
    offset_months: Annotated[int, msgspec.Meta(ge=0, le=24)] = 0
    roll: Roll = "following"
    lead_days: Annotated[int, msgspec.Meta(ge=0, le=366)] = 14
    time_zone: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = "UTC"
    owner: Text200 | None = None
    evidence_classes: Annotated[list[ClassCode], msgspec.Meta(max_length=20)] = []
    open_request: bool = False  # open a work request for the provider at the lead time


class TemplateApply(msgspec.Struct, forbid_unknown_fields=True):
    template: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    anchor: date | None = None
    owner: Text200 | None = None
    open_request: bool = False


class ObligationOut(msgspec.Struct):
    id: str
    regulator: str
    jurisdiction: str
    form: str
    title: str
    rrule: str
    anchor: date
    offset_days: int
    offset_months: int
    roll: str
    lead_days: int
    time_zone: str
    owner: str | None
    evidence_classes: list[str]
    open_request: bool
    template: str | None
    status: str
    horizon_until: date | None
    created_at: datetime


class ObligationPage(msgspec.Struct):
    items: list[ObligationOut]
    next_cursor: str | None


class TemplateOut(msgspec.Struct):
    key: str
    regulator: str
    jurisdiction: str
    form: str
    title: str
    rrule: str
    offset_days: int
    offset_months: int
    roll: str
    lead_days: int
    evidence: list[str]


class DeadlineOut(msgspec.Struct):
    id: str
    obligation: str
    regulator: str
    form: str
    period: date
    nominal: date
    due: date
    due_at: datetime
    rolled: str | None
    remind_on: date
    status: str
    filing: str | None
    request: str | None


class DeadlinePage(msgspec.Struct):
    items: list[DeadlineOut]
    next_cursor: str | None


class FilingIn(msgspec.Struct, forbid_unknown_fields=True):
    title: Title
    obligation: Annotated[str, msgspec.Meta(max_length=36)] | None = None
    deadline: Annotated[str, msgspec.Meta(max_length=36)] | None = None
    period: date | None = None
    data: dict[str, Any] = {}


class FilingUpdate(msgspec.Struct, forbid_unknown_fields=True):
    title: Title | None = None
    data: dict[str, Any] | None = None


class RejectIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: Reason


class ApproveIn(msgspec.Struct, forbid_unknown_fields=True):
    note: Annotated[str, msgspec.Meta(max_length=2_000)] = ""


class FileIn(msgspec.Struct, forbid_unknown_fields=True):
    """The filing as made: the regulator's reference, the day, and the evidence documents
    (ids of documents kept in records under a compliance-mode class)."""

    regulator_reference: Text200
    filed_on: date
    evidence: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=36)]], msgspec.Meta(min_length=1, max_length=50)
    ]


class FilingOut(msgspec.Struct):
    id: str
    title: str
    obligation: str | None
    deadline: str | None
    period: date | None
    data: dict[str, Any]
    status: str
    maker: str
    submitted_at: datetime | None
    submitted_hash: str | None
    checker: str | None
    approved_at: datetime | None
    rejections: list[dict[str, Any]]
    regulator_reference: str | None
    filed_on: date | None
    filed_by: str | None
    evidence: list[dict[str, Any]]
    locked_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime


class FilingPage(msgspec.Struct):
    items: list[FilingOut]
    next_cursor: str | None


class CounterpartyIn(msgspec.Struct, forbid_unknown_fields=True):
    name: PartyName
    kind: PartyKind
    aliases: Annotated[list[PartyName], msgspec.Meta(max_length=20)] = []
    country: Country | None = None
    birth_date: BirthDate | None = None  # or the date of registration
    identifiers: Annotated[list[Identifier], msgspec.Meta(max_length=20)] = []
    reference: Text200 | None = None


class CounterpartyOut(msgspec.Struct):
    id: str
    name: str
    kind: str
    aliases: list[str]
    country: str | None
    birth_date: str | None
    identifiers: list[str]
    reference: str | None
    screened_at: datetime | None
    screened_version: str | None
    open_hits: int
    created_at: datetime


class CounterpartyPage(msgspec.Struct):
    items: list[CounterpartyOut]
    next_cursor: str | None


class ScreeningIn(msgspec.Struct, forbid_unknown_fields=True):
    name: PartyName
    type: PartyKind | None = None
    country: Country | None = None
    birth_date: BirthDate | None = None
    identifiers: Annotated[list[Identifier], msgspec.Meta(max_length=20)] = []


class ScreeningBatchIn(msgspec.Struct, forbid_unknown_fields=True):
    """Screen many names at once (a job); or every counterparty of the firm when empty."""

    names: Annotated[list[ScreeningIn], msgspec.Meta(max_length=10_000)] = []


class ScreeningHit(msgspec.Struct):
    source: str
    source_id: str  # the entry's id in its list (an SDN ent_num)
    listed_name: str
    matched_name: str
    score: float
    explanation: dict[str, Any]


class ScreeningOut(msgspec.Struct):
    list_version: str | None
    published_on: date | None
    threshold: float
    hits: list[ScreeningHit]


class HitOut(msgspec.Struct):
    id: str
    counterparty: str
    counterparty_name: str
    list_version: str
    source: str
    source_id: str
    listed_name: str
    score: float
    explanation: dict[str, Any]
    status: str
    reviewer: str | None
    reason: str | None
    decided_at: datetime | None
    request: str | None
    created_at: datetime


class HitPage(msgspec.Struct):
    items: list[HitOut]
    next_cursor: str | None


class DecideIn(msgspec.Struct, forbid_unknown_fields=True):
    decision: Literal["true_match", "false_positive"]
    reason: Reason


class ListOut(msgspec.Struct):
    id: str
    source: str
    published_on: date | None
    sha256: str
    entries: int
    aliases: int
    added: int
    changed: int
    removed: int
    status: str
    firms_total: int
    firms_screened: int
    loaded_by: str
    loaded_at: datetime


class ListPage(msgspec.Struct):
    items: list[ListOut]


class JobAccepted(msgspec.Struct):
    job: str
    status: str


class Dashboard(msgspec.Struct):
    upcoming: list[DeadlineOut]
    overdue: list[DeadlineOut]
    filings: dict[str, int]
    open_hits: int
    last_screening: datetime | None
    list_version: ListOut | None


class FirmCompliance(msgspec.Struct):
    """One firm's line on the provider's dashboard."""

    slug: str
    name: str
    due_30_days: int
    overdue: int
    awaiting_approval: int
    open_hits: int
    next_due: date | None


class StaffDashboard(msgspec.Struct):
    firms: list[FirmCompliance]


class ThresholdIn(msgspec.Struct, forbid_unknown_fields=True):
    """The screening threshold (0.5 to 1; null: the engine's default)."""

    threshold: Annotated[float, msgspec.Meta(ge=0.5, le=1)] | None


class ThresholdOut(msgspec.Struct):
    threshold: float
