"""Pricing a period: the one code path behind the invoice preview and the final invoice.

Amounts are in minor units (cents). A meter's first `included` units are free; the rest go
through graduated tiers (each tier's `up_to` counts billable units, past the included
ones), and each line is rounded half up to the cent once, at the end (amounts are exact
fractions until then). Late usage for an invoiced period is billed on the next invoice as
the difference between what the period costs now and what was billed for it.

A period in which the plan changed is priced in parts, each at the plan in force during it
(`plan_history`), one line per part: the base fee prorated by time (whole hours: changes
take effect on the hour), usage by when it happened, against the plan's included quantity
and tier widths prorated by the same share, so a part is priced as a period of its own
and switching plans back and forth earns no extra free units. Level meters (max, last:
GB stored) have no "when": the period's level is priced at each plan for its share of
the time. A period with one plan is priced exactly as before.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bpo.billing.gateway import Tier
from bpo.billing.models import BilledUsage, Invoice, Plan, PlanPrice
from bpo.billing.plan_history import Segment, plan_segments
from bpo.billing.service import LATE_LIMIT, LEVELS, MeterUsage, period_usage

Conn = AsyncConnection | AsyncSession
WHOLE = Fraction(1)
MICRO = Decimal("0.000001")


def round_half_up(amount: Fraction) -> int:
    """To the whole minor unit, halves away from zero (as Decimal's ROUND_HALF_UP)."""
    whole = math.floor(abs(amount) + Fraction(1, 2))
    return whole if amount >= 0 else -whole


@dataclass(frozen=True, slots=True)
class MeterPrice:
    meter: str
    included: Decimal
    tiers: tuple[Tier, ...]
    quota: Decimal | None = None
    quota_kind: str | None = None  # hard | soft

    def cost(self, quantity: Decimal, share: Fraction = WHOLE) -> Fraction:
        """Exact minor units for `quantity` used in `share` of a period: the included
        quantity and every tier's width scale with the share."""
        billable = max(Fraction(quantity) - Fraction(self.included) * share, Fraction(0))
        amount, floor = Fraction(0), Fraction(0)
        for tier in self.tiers:
            top = billable if tier.up_to is None else min(billable, tier.up_to * share)
            if top > floor:
                amount += (top - floor) * Fraction(tier.unit_amount)
            if tier.up_to is None or billable <= tier.up_to * share:
                break
            floor = tier.up_to * share
        return amount

    def charge(self, quantity: Decimal, share: Fraction = WHOLE) -> int:
        return round_half_up(self.cost(quantity, share))


@dataclass(frozen=True, slots=True)
class PlanTerms:
    key: str
    name: str
    currency: str
    base_fee: int
    limits: dict[str, Any]
    prices: dict[str, MeterPrice]


def tiers_of(raw: list[dict[str, Any]]) -> tuple[Tier, ...]:
    return tuple(
        Tier(None if t.get("up_to") is None else int(t["up_to"]), Decimal(str(t["unit_amount"])))
        for t in raw
    )


async def plan_terms(conn: Conn, key: str) -> PlanTerms:
    plan = (await conn.execute(select(Plan).where(Plan.key == key))).scalar_one()
    prices = (await conn.execute(select(PlanPrice).where(PlanPrice.plan == key))).scalars().all()
    return PlanTerms(
        plan.key,
        plan.name,
        plan.currency,
        plan.base_fee,
        dict(plan.limits),
        {
            p.meter: MeterPrice(
                p.meter, Decimal(p.included), tiers_of(p.tiers), p.quota, p.quota_kind
            )
            for p in prices
        },
    )


class PlanBook:
    """Plan terms read once per pricing run."""

    def __init__(self, conn: Conn, *known: PlanTerms) -> None:
        self._conn = conn
        self._terms = {t.key: t for t in known}

    async def get(self, key: str) -> PlanTerms:
        if key not in self._terms:
            self._terms[key] = await plan_terms(self._conn, key)
        return self._terms[key]


@dataclass(frozen=True, slots=True)
class Line:
    kind: str  # base_fee | usage | adjustment
    description: str
    amount: int
    meter: str | None = None
    quantity: Decimal | None = None  # for an adjustment: the late quantity
    included: Decimal | None = None
    # An adjustment: the earlier period's; a line of one part of a split period: the part's.
    period_start: datetime | None = None
    period_end: datetime | None = None
    plan: str | None = None  # a line of one part of a split period: that part's plan

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "description": self.description}
        out["amount"] = self.amount
        for name in ("meter", "quantity", "included", "period_start", "period_end", "plan"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value.isoformat() if isinstance(value, datetime) else str(value)
        return out


@dataclass(slots=True)
class Draft:
    tenant_id: uuid.UUID
    plan: PlanTerms  # the plan in force at the end of the period
    period_start: datetime
    period_end: datetime
    lines: list[Line] = field(default_factory=list)
    # What the period's usage lines and the adjustments add to the billed ledger.
    billed: list[tuple[datetime, datetime, str, Decimal, int]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)


@dataclass(slots=True)
class Priced:
    lines: list[Line] = field(default_factory=list)
    # Per meter: the period's quantity (by its aggregation) and what all parts charge.
    totals: dict[str, tuple[Decimal, int]] = field(default_factory=dict)


async def draft_invoice(
    conn: Conn, tenant_id: uuid.UUID, terms: PlanTerms, start: datetime, end: datetime
) -> Draft:
    """Price [start, end) for the tenant as things stand now, with adjustments for late
    usage in periods already invoiced. `terms`: the plan when the tenant has no history."""
    book = PlanBook(conn, terms)
    segments = await plan_segments(conn, tenant_id, start, end, terms.key)
    priced = await price_period(conn, tenant_id, segments, book)
    draft = Draft(tenant_id, await book.get(segments[-1].plan), start, end, priced.lines)
    draft.billed = [(start, end, m, q, amount) for m, (q, amount) in priced.totals.items()]
    await _add_adjustments(conn, draft, book)
    return draft


async def price_period(
    conn: Conn, tenant_id: uuid.UUID, segments: list[Segment], book: PlanBook
) -> Priced:
    """Each part's base fee and usage lines; one part (one plan) is the whole period."""
    start, end = segments[0].start, segments[-1].end
    whole = {u.meter: u for u in await period_usage(conn, tenant_id, start, end)}
    priced = Priced()
    for segment in segments:
        usage = whole
        if len(segments) > 1:
            usage = {u.meter: u for u in await period_usage(conn, tenant_id, *_at(segment))}
        share = Fraction(_seconds(segment.end - segment.start), _seconds(end - start))
        for line in _part_lines(await book.get(segment.plan), segment, share, usage, whole):
            if len(segments) > 1:
                line = replace(line, period_start=segment.start, period_end=segment.end)
                line = replace(line, plan=segment.plan)
            priced.lines.append(line)
            if line.meter is not None:
                quantity, amount = priced.totals.get(line.meter, (whole[line.meter].quantity, 0))
                priced.totals[line.meter] = (quantity, amount + line.amount)
    return priced


def _part_lines(
    terms: PlanTerms,
    segment: Segment,
    share: Fraction,
    usage: dict[str, MeterUsage],
    whole: dict[str, MeterUsage],
) -> list[Line]:
    name = f"{terms.name} plan" if share == WHOLE else f"{terms.name} plan, {_span(segment)}"
    lines = [Line("base_fee", name, round_half_up(terms.base_fee * share))]
    for meter, used in usage.items():
        price = terms.prices.get(meter)
        if price is not None:
            lines.append(_usage_line(used, whole[meter], price, share, name))
    return lines


def _usage_line(
    used: MeterUsage, whole: MeterUsage, price: MeterPrice, share: Fraction, part: str
) -> Line:
    if used.aggregation in LEVELS:  # the period's level, for this part's share of the time
        amount = round_half_up(price.cost(whole.quantity) * share)
        description = used.name if share == WHOLE else f"{used.name} ({part}, prorated)"
        return Line("usage", description, amount, used.meter, whole.quantity, price.included)
    included = _decimal(Fraction(price.included) * share)
    description = used.name if share == WHOLE else f"{used.name} ({part})"
    amount = price.charge(used.quantity, share)
    return Line("usage", description, amount, used.meter, used.quantity, included)


def _at(segment: Segment) -> tuple[datetime, datetime]:
    return segment.start, segment.end


def _span(segment: Segment) -> str:
    return f"{segment.start:%Y-%m-%d %H:%M} to {segment.end:%Y-%m-%d %H:%M} UTC"


def _seconds(span: timedelta) -> int:
    return int(span.total_seconds())


def _decimal(value: Fraction) -> Decimal:
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(MICRO)


async def _add_adjustments(conn: Conn, draft: Draft, book: PlanBook) -> None:
    """Earlier invoiced periods that can still receive usage (35 days back): bill what
    they cost now beyond what was billed, priced as they were (by their plan history, or
    the plan they were invoiced on)."""
    since = draft.period_start - LATE_LIMIT - timedelta(days=31)
    billed = (
        await conn.execute(
            select(BilledUsage, Invoice.plan)
            .join(
                Invoice,
                (Invoice.tenant_id == BilledUsage.tenant_id)
                & (Invoice.period_start == BilledUsage.period_start),
            )
            .where(
                BilledUsage.tenant_id == draft.tenant_id,
                BilledUsage.period_start >= since,
                BilledUsage.period_start < draft.period_start,
            )
            .order_by(BilledUsage.period_start, BilledUsage.meter)
        )
    ).all()
    periods: dict[tuple[datetime, datetime], Priced] = {}
    for row, plan in billed:
        window = (row.period_start, row.period_end)
        if window not in periods:
            segments = await plan_segments(conn, draft.tenant_id, *window, plan)
            periods[window] = await price_period(conn, draft.tenant_id, segments, book)
        now = periods[window].totals.get(row.meter)
        if now is None or now[0] == row.quantity:
            continue
        late, amount = now[0] - row.quantity, now[1] - row.amount
        draft.lines.append(
            Line(
                "adjustment",
                f"Late usage: {row.meter}, period from {row.period_start:%Y-%m-%d}",
                amount,
                row.meter,
                late,
                None,
                row.period_start,
                row.period_end,
            )
        )
        draft.billed.append((row.period_start, row.period_end, row.meter, late, amount))
