"""Exchange rates into the firm's functional currency, loaded over the API: a rate holds
from its day until the next one of the same currency."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bpo import audit
from bpo.core.tenancy import TenantContext
from bpo.ledger import money
from bpo.ledger.accounts import Who, invalid, settings_of
from bpo.ledger.models import Rate
from bpo.ledger.schemas import RateIn, RateOut

_UPSERT = text("""
    INSERT INTO ledger_rates (currency, on_date, rate)
    SELECT * FROM unnest(CAST(:cs AS text[]), CAST(:ds AS date[]), CAST(:rs AS numeric[]))
    ON CONFLICT (currency, on_date) DO UPDATE SET rate = excluded.rate, created_at = now()
""")


def _out(r: Rate) -> RateOut:
    return RateOut(r.currency, r.on_date, format(r.rate.normalize(), "f"))


async def list_rates(
    session: AsyncSession, currency: str | None, start: date | None, end: date | None
) -> list[RateOut]:
    query = select(Rate).order_by(Rate.currency, Rate.on_date).limit(5_000)
    if currency is not None:
        query = query.where(Rate.currency == currency)
    if start is not None:
        query = query.where(Rate.on_date >= start)
    if end is not None:
        query = query.where(Rate.on_date <= end)
    return [_out(r) for r in await session.scalars(query)]


async def put_rates(
    session: AsyncSession, tenant: TenantContext, who: Who, rates: list[RateIn]
) -> list[RateOut]:
    """Load rates, all or nothing: each currency must be a real one other than the
    functional currency, each rate positive; one rate per currency and day."""
    functional = (await settings_of(session)).functional_currency
    seen: set[tuple[str, date]] = set()
    for i, r in enumerate(rates):
        if not money.is_currency(r.currency):
            raise invalid(
                f"#/rates/{i}/currency",
                f"{r.currency} is not an ISO 4217 currency with minor units",
            )
        if r.currency == functional:
            raise invalid(
                f"#/rates/{i}/currency", f"{r.currency} is the functional currency (its rate is 1)"
            )
        if Decimal(r.rate) <= 0:
            raise invalid(f"#/rates/{i}/rate", "a rate is positive")
        if (r.currency, r.on) in seen:
            raise invalid(f"#/rates/{i}", f"{r.currency} on {r.on} is given twice")
        seen.add((r.currency, r.on))
    await session.execute(
        _UPSERT,
        {
            "cs": [r.currency for r in rates],
            "ds": [r.on for r in rates],
            "rs": [Decimal(r.rate) for r in rates],
        },
    )
    await audit.record(
        session,
        tenant.tenant_id,
        actor=who,
        action="ledger.rates.loaded",
        target="ledger.rates",
        after=[[r.currency, r.on.isoformat(), r.rate] for r in rates],
    )
    return [RateOut(r.currency, r.on, format(Decimal(r.rate).normalize(), "f")) for r in rates]
