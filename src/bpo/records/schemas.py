"""Request and response types of the record-keeping APIs."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec

# A title is a name, not a path: no separators, no control characters, not "." or "..".
Title = Annotated[
    str, msgspec.Meta(min_length=1, max_length=300, pattern=r"^(?!\.{1,2}$)[^/\\\x00-\x1f\x7f]+$")
]
Code = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=2_000)]
Party = Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
Tag = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]
Kind = Annotated[str, msgspec.Meta(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")]
Ref = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
DocType = Annotated[str, msgspec.Meta(max_length=64)]
Mode = Literal["governance", "compliance"]
Anchor = Literal["document_date", "fiscal_year_end", "received"]
MonthDay = Annotated[str, msgspec.Meta(pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]
Years = Annotated[int, msgspec.Meta(ge=0, le=200)]


class Link(msgspec.Struct, forbid_unknown_fields=True):
    """Another domain's object: `ledger_entry`, `work_task`, `filing`, `statement`, ..."""

    kind: Kind
    id: Ref


class ClassIn(msgspec.Struct, forbid_unknown_fields=True):
    code: Code
    name: Name
    mode: Mode
    retention_years: Years | None  # null: kept permanently
    retention_after: Anchor = "document_date"
    fiscal_year_end: MonthDay = "12-31"
    description: Annotated[str, msgspec.Meta(max_length=2_000)] = ""


class ClassUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """A change of rule: compliance mode only ever extends (more years, or permanent)."""

    retention_years: Years | None
    reason: Text
    mode: Mode | None = None


class ClassOut(msgspec.Struct):
    id: str
    code: str
    name: str
    mode: str
    retention_years: int | None
    retention_after: str
    fiscal_year_end: str
    rule: str  # in words: "7 years after the document date"
    description: str
    created_at: datetime


class ClassPage(msgspec.Struct):
    items: list[ClassOut]
    next_cursor: str | None


class DocumentIn(msgspec.Struct, forbid_unknown_fields=True):
    record_class: Code  # the class's code
    title: Title
    document_date: date
    type: DocType = ""
    counterparty: Party | None = None
    received_on: date | None = None  # default: today
    tags: Annotated[list[Tag], msgspec.Meta(max_length=50)] = []
    custom_fields: Annotated[dict[Kind, Any], msgspec.Meta(max_length=50)] = {}
    links: Annotated[list[Link], msgspec.Meta(max_length=50)] = []


class VersionOut(msgspec.Struct):
    number: int
    sha256: str
    size: int
    content_type: str  # as declared by the uploader
    sniffed_type: str  # as read from the content's first bytes
    filename: str | None
    created_by: str
    created_at: datetime
    content_removed_at: datetime | None


class DocumentOut(msgspec.Struct):
    id: str
    record_class: str
    title: str
    type: str
    counterparty: str | None
    document_date: date
    received_on: date
    tags: list[str]
    custom_fields: dict[str, Any]
    links: list[dict[str, str]]
    mode: str
    retain_until: date | None  # None: permanent
    status: str  # pending (no content yet), active, disposed
    current_version: VersionOut | None
    held: list[str]  # the names of the open holds covering it
    created_by: str
    created_at: datetime
    disposed_at: datetime | None = None
    certificate_id: str | None = None
    rank: float | None = None  # with q=: the full-text rank


class DocumentPage(msgspec.Struct):
    items: list[DocumentOut]
    next_cursor: str | None


class VersionPage(msgspec.Struct):
    items: list[VersionOut]


class HoldIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    reason: Text
    documents: Annotated[list[str], msgspec.Meta(max_length=10_000)] = []
    counterparty: Party | None = None
    record_class: Code | None = None
    date_from: date | None = None
    date_to: date | None = None


class ReleaseIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: Text


class HoldOut(msgspec.Struct):
    id: str
    name: str
    reason: str
    documents: list[str]
    counterparty: str | None
    record_class: str | None
    date_from: date | None
    date_to: date | None
    placed_by: str
    placed_at: datetime
    released_at: datetime | None
    released_by: str | None
    release_reason: str | None


class HoldPage(msgspec.Struct):
    items: list[HoldOut]
    next_cursor: str | None


class ErasureIn(msgspec.Struct, forbid_unknown_fields=True):
    """A person whose records are to be erased: by the counterparty name the documents
    carry (exact, case-insensitive), or by a custom field's value."""

    counterparty: Party | None = None
    custom_field: Kind | None = None
    value: Party | None = None


class Blocked(msgspec.Struct):
    document_id: str
    reason: Literal["legal-hold", "retention-active"]
    hold: str | None = None
    retain_until: date | None = None


class ErasureOut(msgspec.Struct):
    id: str
    status: Literal["completed", "partial", "refused", "nothing"]
    erased: list[str]
    blocked: list[Blocked]
    created_at: datetime


class ExportIn(msgspec.Struct, forbid_unknown_fields=True):
    record_class: Code | None = None
    date_from: date | None = None
    date_to: date | None = None
    hold: str | None = None


class ExportOut(msgspec.Struct):
    id: str
    status: str  # queued, running, ready, failed, expired
    selection: dict[str, Any]
    documents: int
    size: int
    sha256: str | None
    expires_at: datetime | None
    error: str | None
    created_at: datetime
    download: str | None  # the archive's path, while ready


class DisposeIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(max_length=2_000)] = ""
