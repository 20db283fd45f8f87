"""Pricing a period: the one code path behind the invoice preview and the final invoice.

Amounts are in minor units (cents). A meter's first `included` units are free; the rest go
through graduated tiers (each tier's `up_to` counts billable units, past the included
ones), and each line is rounded half up to the cent once, at the end. Late usage for an
invoiced period is billed on the next invoice as the difference between what the period
costs now and what was billed for it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bpo.billing.gateway import Tier
from bpo.billing.models import BilledUsage, Invoice, Plan, PlanPrice
from bpo.billing.service import LATE_LIMIT, period_usage


@dataclass(frozen=True, slots=True)
class MeterPrice:
    meter: str
    included: Decimal
    tiers: tuple[Tier, ...]

    def charge(self, quantity: Decimal) -> int:
        """Minor units for `quantity` in one period."""
        billable = max(quantity - self.included, Decimal(0))
        amount, floor = Decimal(0), Decimal(0)
        for tier in self.tiers:
            top = billable if tier.up_to is None else min(billable, Decimal(tier.up_to))
            if top > floor:
                amount += (top - floor) * tier.unit_amount
            if tier.up_to is None or billable <= tier.up_to:
                break
            floor = Decimal(tier.up_to)
        return int(amount.quantize(Decimal(1), ROUND_HALF_UP))


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


async def plan_terms(conn: AsyncConnection | AsyncSession, key: str) -> PlanTerms:
    plan = (await conn.execute(select(Plan).where(Plan.key == key))).scalar_one()
    prices = (await conn.execute(select(PlanPrice).where(PlanPrice.plan == key))).scalars().all()
    return PlanTerms(
        plan.key,
        plan.name,
        plan.currency,
        plan.base_fee,
        dict(plan.limits),
        {p.meter: MeterPrice(p.meter, Decimal(p.included), tiers_of(p.tiers)) for p in prices},
    )


@dataclass(frozen=True, slots=True)
class Line:
    kind: str  # base_fee | usage | adjustment
    description: str
    amount: int
    meter: str | None = None
    quantity: Decimal | None = None  # for an adjustment: the late quantity
    included: Decimal | None = None
    period_start: datetime | None = None  # for an adjustment: the earlier period's
    period_end: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "description": self.description}
        out["amount"] = self.amount
        for name in ("meter", "quantity", "included", "period_start", "period_end"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value.isoformat() if isinstance(value, datetime) else str(value)
        return out


@dataclass(slots=True)
class Draft:
    tenant_id: uuid.UUID
    plan: PlanTerms
    period_start: datetime
    period_end: datetime
    lines: list[Line] = field(default_factory=list)
    # What the period's usage lines and the adjustments add to the billed ledger.
    billed: list[tuple[datetime, datetime, str, Decimal, int]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)


async def draft_invoice(
    conn: AsyncConnection | AsyncSession,
    tenant_id: uuid.UUID,
    terms: PlanTerms,
    start: datetime,
    end: datetime,
) -> Draft:
    """Price [start, end) for the tenant as things stand now, with adjustments for late
    usage in periods already invoiced."""
    draft = Draft(tenant_id, terms, start, end)
    draft.lines.append(Line("base_fee", f"{terms.name} plan", terms.base_fee))
    for usage in await period_usage(conn, tenant_id, start, end):
        price = terms.prices.get(usage.meter)
        if price is None:
            continue
        amount = price.charge(usage.quantity)
        draft.lines.append(
            Line("usage", usage.name, amount, usage.meter, usage.quantity, price.included)
        )
        draft.billed.append((start, end, usage.meter, usage.quantity, amount))
    await _add_adjustments(conn, draft)
    return draft


async def _add_adjustments(conn: AsyncConnection | AsyncSession, draft: Draft) -> None:
    """Earlier invoiced periods that can still receive usage (35 days back): bill what
    they cost now beyond what was billed, at the price of the plan they were invoiced on."""
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
    periods: dict[tuple[datetime, datetime], dict[str, Decimal]] = {}
    terms_by_plan: dict[str, PlanTerms] = {draft.plan.key: draft.plan}
    for row, plan in billed:
        window = (row.period_start, row.period_end)
        if window not in periods:
            usage = await period_usage(conn, draft.tenant_id, *window)
            periods[window] = {u.meter: u.quantity for u in usage}
        if plan not in terms_by_plan:
            terms_by_plan[plan] = await plan_terms(conn, plan)
        price = terms_by_plan[plan].prices.get(row.meter)
        now_quantity = periods[window].get(row.meter, Decimal(0))
        if price is None or now_quantity == row.quantity:
            continue
        late = now_quantity - row.quantity
        amount = price.charge(now_quantity) - row.amount
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
