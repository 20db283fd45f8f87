"""Screening a firm's counterparties against the current sanctions lists.

A hit above the threshold is kept with its list version, score and explanation, opens a
review request for the provider's compliance staff and is announced (`screening.hit`). A
hit is raised once per counterparty and list entry *as the entry stands* (its
fingerprint): re-screening after a new list version raises only what is new, and a false
positive stays decided until the listed entry itself changes.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from bpo import audit
from bpo.audit.service import actor_of
from bpo.billing.quotas import reserve_usage
from bpo.compliance import sanctions, scoring
from bpo.compliance.models import Counterparty, Hit, Settings
from bpo.compliance.schemas import (
    CounterpartyIn,
    CounterpartyOut,
    DecideIn,
    HitOut,
    ScreeningHit,
    ScreeningIn,
    ScreeningOut,
)
from bpo.core.errors import Problem
from bpo.core.ids import uuid7
from bpo.core.tenancy import TenantContext
from bpo.webhooks.service import record_events
from bpo.work import service as work

SCREENINGS = "screenings"  # the usage meter
REVIEW_SERVICE = "sanctions-review"
BATCH = 500


def _query(name: str, kind: str | None, country: str | None, born: str | None,
           ids: list[str]) -> scoring.Query:  # fmt: skip
    return scoring.Query(name=name, kind=kind, country=country, birth_date=born,
                         identifiers=tuple(ids))  # fmt: skip


def _hit_out(screen: sanctions.Screen, h: scoring.Hit) -> ScreeningHit:
    listed = screen.entry_of[h.source_id]
    return ScreeningHit(
        source=listed.version.source, source_id=listed.source_id, listed_name=listed.name,
        matched_name=h.matched_name, score=round(h.score, 4), explanation=h.explanation,
    )  # fmt: skip


async def threshold_of(session: AsyncSession) -> float:
    """The firm's screening threshold, or the engine's default."""
    chosen = await session.scalar(select(Settings.threshold).where(Settings.id == 1))
    return float(chosen) if chosen is not None else scoring.THRESHOLD


async def set_threshold(
    session: AsyncSession, tenant: TenantContext, who: Any, threshold: float | None
) -> float:
    before = await threshold_of(session)
    row = {"id": 1, "threshold": threshold, "updated_by": actor_of(who)[:200]}
    await session.execute(
        insert(Settings)
        .values(row)
        .on_conflict_do_update(index_elements=["id"], set_={**row, "updated_at": func.now()})
    )
    await audit.record(
        session, tenant.tenant_id, actor=who, action="compliance.threshold.changed",
        target="compliance.settings:1", before={"threshold": before},
        after={"threshold": threshold},
    )  # fmt: skip
    return await threshold_of(session)


def _screen(
    screen: sanctions.Screen, queries: list[scoring.Query], threshold: float
) -> list[list[scoring.Hit]]:
    if screen.index is None:
        return [[] for _ in queries]
    try:
        return screen.index.screen_many(queries, threshold)
    except ValueError as exc:  # a name that normalises to nothing
        raise Problem(
            422,
            "validation-error",
            f"#/name: {exc}",
            errors=[{"pointer": "#/name", "detail": str(exc)}],
        ) from None


async def screen_name(
    session: AsyncSession, tenant: TenantContext, data: ScreeningIn
) -> ScreeningOut:
    """One name now, against every primary name and alias of the current versions."""
    screen = await sanctions.screen_of(session)
    query = _query(data.name, data.type, data.country, data.birth_date, data.identifiers)
    threshold = await threshold_of(session)
    [found] = _screen(screen, [query], threshold)
    await reserve_usage(session, tenant, SCREENINGS, 1, f"screening:{uuid7()}")
    newest = max((v.published_on for v in screen.versions if v.published_on), default=None)
    return ScreeningOut(
        list_version=",".join(screen.key) or None, published_on=newest,
        threshold=threshold, hits=[_hit_out(screen, h) for h in found],
    )  # fmt: skip


def party_out(p: Counterparty, open_hits: int = 0) -> CounterpartyOut:
    return CounterpartyOut(
        id=str(p.id), name=p.name, kind=p.kind, aliases=list(p.aliases), country=p.country,
        birth_date=p.birth_date, identifiers=list(p.identifiers), reference=p.reference,
        screened_at=p.screened_at,
        screened_version=str(p.screened_version) if p.screened_version else None,
        open_hits=open_hits, created_at=p.created_at,
    )  # fmt: skip


async def add_party(
    session: AsyncSession, tenant: TenantContext, who: Any, data: CounterpartyIn
) -> tuple[Counterparty, int]:
    """A new counterparty, screened at once; with the number of hits it raised."""
    party = Counterparty(
        id=uuid7(), name=data.name, kind=data.kind, aliases=list(dict.fromkeys(data.aliases)),
        country=data.country, birth_date=data.birth_date,
        identifiers=list(dict.fromkeys(data.identifiers)), reference=data.reference,
        created_by=actor_of(who)[:200],
    )  # fmt: skip
    session.add(party)
    await session.flush()
    await audit.record(
        session, tenant.tenant_id, actor=who, action="compliance.counterparty.created",
        target=f"compliance.counterparty:{party.id}",
        after={"name": party.name, "kind": party.kind},
    )  # fmt: skip
    raised = await screen_parties(session, tenant, who, [party])
    await session.refresh(party)
    return party, raised


def _queries(p: Counterparty) -> list[scoring.Query]:
    """Each of the party's names (the name and every alias), with its other signals."""
    return [
        _query(name, p.kind, p.country, p.birth_date, list(p.identifiers))
        for name in [p.name, *p.aliases]
    ]


async def screen_parties(
    session: AsyncSession, tenant: TenantContext, who: Any, parties: list[Counterparty]
) -> int:
    """Screen `parties` against the current versions; raise what is new. How many hits."""
    screen = await sanctions.screen_of(session)
    queries = [(p, q) for p in parties for q in _queries(p)]
    results = _screen(screen, [q for _, q in queries], await threshold_of(session))
    best: dict[tuple[uuid.UUID, str], scoring.Hit] = {}
    for (p, _), hits in zip(queries, results, strict=True):
        for h in hits:
            key = (p.id, h.source_id)
            if key not in best or h.score > best[key].score:
                best[key] = h
    now = datetime.now(UTC)
    for p in parties:
        p.screened_at, p.screened_version = now, screen.versions[0].id if screen.versions else None
    await reserve_usage(session, tenant, SCREENINGS, len(parties), f"screening:{uuid7()}")
    names = {p.id: p.name for p in parties}
    return await _raise(session, tenant, who, screen, best, names)


async def _raise(
    session: AsyncSession,
    tenant: TenantContext,
    who: Any,
    screen: sanctions.Screen,
    best: dict[tuple[uuid.UUID, str], scoring.Hit],
    names: dict[uuid.UUID, str],
) -> int:
    rows = []
    for (party_id, key), h in best.items():
        listed = screen.entry_of[key]
        rows.append({
            "id": uuid7(), "counterparty_id": party_id, "list_version": listed.version.id,
            "source": listed.version.source, "source_id": listed.source_id,
            "entry_fingerprint": listed.fingerprint, "listed_name": listed.name[:500],
            "score": round(h.score, 4), "explanation": h.explanation,
        })  # fmt: skip
    if not rows:
        return 0
    new = list(
        await session.scalars(insert(Hit).values(rows).on_conflict_do_nothing().returning(Hit))
    )
    for hit in new:
        hit.request_id = await _review(session, tenant, who, hit, names[hit.counterparty_id])
    await session.flush()
    await record_events(session, tenant, [("screening.hit", _event(h, names)) for h in new])
    return len(new)


async def _review(
    session: AsyncSession, tenant: TenantContext, who: Any, hit: Hit, party: str
) -> uuid.UUID | None:
    """A review request in the provider's queue (when its catalog offers the service)."""
    payload = {"counterparty": party[:300], "listed_name": hit.listed_name,
               "list_entry": f"{hit.source}:{hit.source_id}"[:100], "score": hit.score,
               "hit": str(hit.id)}  # fmt: skip
    try:
        request = await work.request_service(
            session, tenant, who, REVIEW_SERVICE, payload, f"Sanctions hit: {party[:100]}"
        )
    except Problem:
        return None  # the hit stays open in /hits for the firm's own compliance people
    return request.id


def _event(h: Hit, names: dict[uuid.UUID, str]) -> dict[str, Any]:
    return {"hit_id": str(h.id), "counterparty_id": str(h.counterparty_id),
            "counterparty": names[h.counterparty_id], "source": h.source,
            "source_id": h.source_id, "listed_name": h.listed_name, "score": h.score}  # fmt: skip


def hit_out(h: Hit, party: str) -> HitOut:
    return HitOut(
        id=str(h.id), counterparty=str(h.counterparty_id), counterparty_name=party,
        list_version=str(h.list_version), source=h.source, source_id=h.source_id,
        listed_name=h.listed_name, score=h.score, explanation=h.explanation, status=h.status,
        reviewer=h.reviewer, reason=h.reason, decided_at=h.decided_at,
        request=str(h.request_id) if h.request_id else None, created_at=h.created_at,
    )  # fmt: skip


async def decide(
    session: AsyncSession, tenant: TenantContext, who: Any, hit_id: uuid.UUID, data: DecideIn
) -> HitOut:
    hit = await session.get(Hit, hit_id, with_for_update=True)
    if hit is None:
        raise Problem(404, "not-found", f"no hit {hit_id}")
    if hit.status != "open":
        raise Problem(409, "conflict", f"the hit was decided already ({hit.status})")
    hit.status, hit.reason = data.decision, data.reason
    hit.reviewer, hit.decided_at = actor_of(who)[:200], datetime.now(UTC)
    await session.flush()
    await audit.record(
        session, tenant.tenant_id, actor=who, action="compliance.hit.decided",
        target=f"compliance.hit:{hit.id}",
        after={"decision": hit.status, "reason": hit.reason, "score": hit.score,
               "list_version": str(hit.list_version), "entry": hit.source_id},
    )  # fmt: skip
    party = await session.get(Counterparty, hit.counterparty_id)
    return hit_out(hit, party.name if party else "")


async def rescreen_all(session: AsyncSession, tenant: TenantContext, who: Any) -> int:
    """Every counterparty of the firm against the current versions, in batches."""
    raised, after = 0, uuid.UUID(int=0)
    while True:
        batch = list(
            await session.scalars(
                select(Counterparty).where(Counterparty.id > after).order_by(Counterparty.id)
                .limit(BATCH)
            )
        )  # fmt: skip
        if not batch:
            return raised
        raised += await screen_parties(session, tenant, who, batch)
        after = batch[-1].id


async def open_hits_of(session: AsyncSession, ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    rows = await session.execute(
        select(Hit.counterparty_id, func.count())
        .where(Hit.counterparty_id.in_(ids), Hit.status == "open")
        .group_by(Hit.counterparty_id)
    )
    return dict(rows.all())
