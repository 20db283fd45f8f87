"""Sanctions lists at the provider level: each load is a version (source, published date,
hash, counts, and what it added, changed and removed against the previous version of the
same source); earlier versions stay for the record. Every process screens against an index
of the current versions, built once per set of versions and kept in memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import weakref
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from bpo.compliance import lists, scoring
from bpo.compliance.models import SanctionsEntry, SanctionsList
from bpo.compliance.schemas import ListOut
from bpo.core.errors import Problem, invalid

SOURCES = {"ofac": "ofac_sdn", "ftm": "opensanctions"}
ROWS_PER_INSERT = 32_767 // 11  # PostgreSQL's bind-parameter limit, 11 columns a row
MAX_FILE_BYTES = 256 * 1024 * 1024


def list_out(row: SanctionsList) -> ListOut:
    return ListOut(
        id=str(row.id), source=row.source, published_on=row.published_on, sha256=row.sha256,
        entries=row.entries, aliases=row.aliases, added=row.added, changed=row.changed,
        removed=row.removed, status=row.status, firms_total=row.firms_total,
        firms_screened=row.firms_screened, loaded_by=row.loaded_by, loaded_at=row.loaded_at,
    )  # fmt: skip


def refused(where: str, detail: str) -> Problem:
    return invalid(where, detail, slug="list-refused")


def parse(files: list[tuple[str, bytes]]) -> tuple[str, list[lists.ListEntry], str]:
    """The source, its entries and the hash of the files: OFAC's sdn (with its alt and add
    files when given) or FollowTheMoney JSON lines, never both in one load."""
    kinds: dict[str, bytes] = {}
    try:
        for name, data in files:
            kind = lists.detect(name, data)
            if kind in kinds:
                raise refused(name, f"a second {kind} file in one load")
            kinds[kind] = data
        if "ftm" in kinds:
            if len(kinds) > 1:
                raise refused("files", "load OFAC and FollowTheMoney files separately")
            entries, source = lists.parse_ftm(kinds["ftm"]), SOURCES["ftm"]
        elif "ofac_sdn" in kinds:
            entries = lists.parse_ofac(
                kinds["ofac_sdn"], kinds.get("ofac_alt"), kinds.get("ofac_add")
            )
            source = SOURCES["ofac"]
        else:
            raise refused("files", "an OFAC load needs the sdn file (alt and add are optional)")
    except lists.ListError as exc:
        raise refused(exc.where, exc.detail) from None
    if not entries:
        raise refused("files", "the list holds no entries")
    digest = hashlib.sha256()
    for kind in sorted(kinds):
        digest.update(kind.encode() + b"\0" + hashlib.sha256(kinds[kind]).digest())
    return source, entries, digest.hexdigest()


async def load(
    session: AsyncSession, files: list[tuple[str, bytes]], who: str, published_on: date | None
) -> tuple[SanctionsList, bool]:
    """A new current version of the files' list (True), or the current one when the files
    are the same (False)."""
    source, entries, sha = parse(files)
    previous = await session.scalar(
        select(SanctionsList)
        .where(SanctionsList.source == source, SanctionsList.status == "current")
        .with_for_update()
    )
    if previous is not None and previous.sha256 == sha:
        return previous, False
    before = await _fingerprints(session, previous)
    after = {e.source_id: e.fingerprint() for e in entries}
    row = SanctionsList(
        source=source, published_on=published_on, sha256=sha, entries=len(entries),
        aliases=sum(len(e.aliases) for e in entries), loaded_by=who[:200],
        added=sum(1 for k in after if k not in before),
        changed=sum(1 for k, v in after.items() if k in before and before[k] != v),
        removed=sum(1 for k in before if k not in after),
    )  # fmt: skip
    if previous is not None:
        previous.status = "superseded"
        await session.flush()
    session.add(row)
    await session.flush()
    await _write_entries(session, row, entries)
    return row, True


async def _fingerprints(session: AsyncSession, version: SanctionsList | None) -> dict[str, str]:
    if version is None:
        return {}
    rows = await session.execute(
        select(SanctionsEntry.source_id, SanctionsEntry.fingerprint).where(
            SanctionsEntry.list_id == version.id
        )
    )
    return dict(rows.all())


async def _write_entries(
    session: AsyncSession, version: SanctionsList, entries: list[lists.ListEntry]
) -> None:
    unique = {e.source_id: e for e in entries}  # a source id once per version
    rows = [
        {
            "list_id": version.id,
            "source_id": e.source_id[:100],
            "kind": e.kind[:20],
            "name": e.name[:500],
            "aliases": list(e.aliases),
            "countries": list(e.countries),
            "birth_dates": list(e.birth_dates),
            "identifiers": list(e.identifiers),
            "programs": list(e.programs),
            "remarks": e.remarks,
            "fingerprint": e.fingerprint(),
        }
        for e in unique.values()
    ]
    for at in range(0, len(rows), ROWS_PER_INSERT):
        await session.execute(insert(SanctionsEntry).values(rows[at : at + ROWS_PER_INSERT]))


async def versions(session: AsyncSession, limit: int = 100) -> list[SanctionsList]:
    rows = await session.scalars(
        select(SanctionsList).order_by(SanctionsList.loaded_at.desc()).limit(limit)
    )
    return list(rows)


async def current(session: AsyncSession) -> list[SanctionsList]:
    rows = await session.scalars(
        select(SanctionsList)
        .where(SanctionsList.status == "current")
        .order_by(SanctionsList.source)
    )
    return list(rows)


async def mark_progress(session: AsyncSession, list_id: Any, total: int, done: int) -> None:
    await session.execute(
        update(SanctionsList)
        .where(SanctionsList.id == list_id)
        .values(firms_total=total, firms_screened=done)
    )


@dataclass(frozen=True)
class Listed:
    version: SanctionsList
    source_id: str  # the entry's id in its own list (an SDN ent_num)
    name: str
    fingerprint: str  # as stored with the version: a decision holds while it does


@dataclass(frozen=True)
class Screen:
    """The index of the current list versions, and which entry belongs to which."""

    versions: tuple[SanctionsList, ...]
    index: scoring.Index | None
    entry_of: dict[str, Listed]  # "source:source_id" (ids are per source) -> the entry

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(str(v.id) for v in self.versions)


_screens: dict[tuple[str, ...], Screen] = {}
# One build at a time per event loop (a lock belongs to the loop it was first used in).
_building: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


async def screen_of(session: AsyncSession) -> Screen:
    """The index of the current versions (built on first use in this process)."""
    now = await current(session)
    key = tuple(str(v.id) for v in now)
    if key in _screens:
        return _screens[key]
    lock = _building.setdefault(asyncio.get_running_loop(), asyncio.Lock())
    async with lock:
        if key not in _screens:
            entries, entry_of = await _entries(session, now)
            index = await asyncio.to_thread(scoring.Index, entries) if entries else None
            _screens.clear()  # older versions are not screened against any more
            _screens[key] = Screen(tuple(now), index, entry_of)
    return _screens[key]


async def _entries(
    session: AsyncSession, now: list[SanctionsList]
) -> tuple[list[lists.ListEntry], dict[str, Listed]]:
    by_id = {v.id: v for v in now}
    rows = await session.scalars(
        select(SanctionsEntry).where(SanctionsEntry.list_id.in_(list(by_id)))
    )
    entries, entry_of = [], {}
    for r in rows:
        key = f"{by_id[r.list_id].source}:{r.source_id}"
        entries.append(
            lists.ListEntry(
                source_id=key,
                kind=r.kind,
                name=r.name,
                aliases=tuple(r.aliases),
                countries=tuple(r.countries),
                birth_dates=tuple(r.birth_dates),
                identifiers=tuple(r.identifiers),
                programs=tuple(r.programs),
                remarks=r.remarks,
            )
        )
        entry_of[key] = Listed(by_id[r.list_id], r.source_id, r.name, r.fingerprint)
    return entries, entry_of
