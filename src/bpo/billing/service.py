"""Recording usage, rolling it up by hour, and reading a period's usage.

`record_usage` writes one event in the caller's transaction (platform or tenant session);
`record_usage_batch` writes many in one statement, sorted by key (concurrent batches with
keys in different orders deadlocked, DESIGN §8). Both skip a (tenant, meter, key) seen
before. `roll_up` folds pending events into their hour in one statement; a late event
(up to 35 days, as Stripe accepts) simply updates its hour. The same transaction fixes the
batch's meter events for Stripe (`usage_pushes`), so what is pushed is exactly what was
rolled up, whatever crashes in between.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bpo.billing.models import Invoice, Meter
from bpo.core.pagination import bad_cursor, key_cursor, key_cursor_parts
from bpo.core.tenancy import TenantContext

LEVELS = ("max", "last")  # aggregations whose quantity is a level, not an amount added
LATE_LIMIT = timedelta(days=35)  # Stripe meter events may be up to 35 days old
EARLY_LIMIT = timedelta(minutes=5)  # clock skew allowed for events "in the future"
BATCH_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class Usage:
    tenant_id: uuid.UUID
    meter: str
    quantity: Decimal
    key: str
    at: datetime


class UsageRefused(ValueError):
    """Usage that cannot be recorded as given; the message says why."""


def check_usage(
    quantity: Decimal, at: datetime, now: datetime | None = None, *, correction: bool = False
) -> None:
    now = now or datetime.now(UTC)
    if quantity < 0 and not correction:
        raise UsageRefused("quantity must not be negative")
    if at.tzinfo is None:
        raise UsageRefused("at must carry a time zone (RFC 3339)")
    if at > now + EARLY_LIMIT:
        raise UsageRefused("at is in the future")
    if at < now - LATE_LIMIT:
        raise UsageRefused("at is more than 35 days ago (Stripe accepts no older usage)")


async def record_usage(
    session: AsyncSession | AsyncConnection,
    tenant: TenantContext | uuid.UUID,
    meter: str,
    quantity: Decimal | int,
    key: str,
    at: datetime | None = None,
    *,
    correction: bool = False,
) -> bool:
    """Record usage in the caller's transaction; False if this key was recorded before.

    A `correction` may be negative: it takes back part of earlier usage of a sum meter
    (Stripe sums meter event values, negative ones included)."""
    when = at or datetime.now(UTC)
    amount = Decimal(quantity)
    check_usage(amount, when, correction=correction)
    tenant_id = tenant.tenant_id if isinstance(tenant, TenantContext) else tenant
    # Plain SQL: the ORM insert would fetch the id's sequence value first (a round trip).
    result: Any = await session.execute(
        _ONE, {"t": tenant_id, "m": meter, "k": key, "q": amount, "a": when}
    )
    return bool(result.rowcount)


_ONE = text(
    "INSERT INTO platform.usage_events (tenant_id, meter, key, quantity, at)"
    " VALUES (:t, :m, :k, :q, :a) ON CONFLICT DO NOTHING"
)


_BATCH = text(
    "INSERT INTO platform.usage_events (tenant_id, meter, key, quantity, at)"
    " SELECT t, m, k, q, a FROM unnest("
    "CAST(:tenants AS uuid[]), CAST(:meters AS text[]), CAST(:keys AS text[]),"
    " CAST(:quantities AS numeric[]), CAST(:ats AS timestamptz[])) AS u(t, m, k, q, a)"
    " ORDER BY t, m, k ON CONFLICT DO NOTHING"
)


async def record_usage_batch(conn: AsyncConnection, events: Sequence[Usage]) -> int:
    """Record many events in one statement; returns how many were new."""
    if not events:
        return 0
    ordered = sorted(events, key=lambda e: (str(e.tenant_id), e.meter, e.key))
    result: Any = await conn.execute(
        _BATCH,
        {
            "tenants": [e.tenant_id for e in ordered],
            "meters": [e.meter for e in ordered],
            "keys": [e.key for e in ordered],
            "quantities": [e.quantity for e in ordered],
            "ats": [e.at for e in ordered],
        },
    )
    return int(result.rowcount)


_ROLL_UP = text(
    """
    WITH batch AS (
        UPDATE platform.usage_events SET pending = false
         WHERE id IN (SELECT id FROM platform.usage_events WHERE pending
                       ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED)
        RETURNING tenant_id, meter, at, quantity
    ), hours AS (
        SELECT tenant_id, meter, date_trunc('hour', at, 'UTC') AS hour,
               sum(quantity) AS total, count(*) AS events, max(quantity) AS maximum,
               (array_agg(quantity ORDER BY at DESC))[1] AS last_value, max(at) AS last_at
          FROM batch GROUP BY 1, 2, 3
    ), rolled AS (
        INSERT INTO platform.usage_rollups AS r
            (tenant_id, meter, hour, total, events, maximum, last_value, last_at)
        SELECT * FROM hours ORDER BY tenant_id, meter, hour
        ON CONFLICT (tenant_id, meter, hour) DO UPDATE SET
            total = r.total + EXCLUDED.total,
            events = r.events + EXCLUDED.events,
            maximum = GREATEST(r.maximum, EXCLUDED.maximum),
            last_value = CASE WHEN EXCLUDED.last_at >= r.last_at
                              THEN EXCLUDED.last_value ELSE r.last_value END,
            last_at = GREATEST(r.last_at, EXCLUDED.last_at)
        RETURNING 1
    ), pushes AS (
        -- The batch's meter events for Stripe, fixed now: one per tenant, meter and hour,
        -- named tenant:meter:window (the window: the hour and this batch's number).
        INSERT INTO platform.usage_pushes (identifier, tenant_id, meter, at, value)
        SELECT h.tenant_id || ':' || h.meter || ':'
                 || to_char(h.hour AT TIME ZONE 'UTC', 'YYYYMMDD"T"HH24') || '.' || b.n,
               h.tenant_id, h.meter, h.last_at,
               CASE m.aggregation WHEN 'sum' THEN h.total WHEN 'count' THEN h.events
                                  ELSE h.last_value END
          FROM hours h
          JOIN platform.meters m ON m.key = h.meter AND m.aggregation <> 'max'
         CROSS JOIN (SELECT nextval('platform.usage_push_batch_seq') AS n) b
        RETURNING 1
    ), levels AS (  -- max meters' periods this batch touched: pushed by _LEVEL_PUSHES
        SELECT DISTINCT h.tenant_id, h.meter, date_trunc('month', h.hour, 'UTC') AS month
          FROM hours h JOIN platform.meters m ON m.key = h.meter AND m.aggregation = 'max'
    )
    -- Every data-modifying CTE runs, referenced or not.
    SELECT (SELECT count(*) FROM rolled), l.tenant_id, l.meter, l.month
      FROM (SELECT 1) AS one LEFT JOIN levels l ON true
    """
)

# Stripe meters sum, count or keep the last value (no max): a max meter's event carries the
# period's maximum so far, stamped later than every earlier one of the period (a whole
# second later at least: Stripe's timestamps are seconds), so Stripe's `last` is bpo's
# max, late events included. Formed after the rollup statement, under a lock, so each
# sees the rollups of every run that formed one before it.
_LEVEL_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended('bpo-level-pushes', 0))")
_LEVEL_PUSHES = text(
    """
    INSERT INTO platform.usage_pushes (identifier, tenant_id, meter, at, value)
    SELECT l.tenant_id || ':' || l.meter || ':'
             || to_char(l.month AT TIME ZONE 'UTC', 'YYYYMM') || '.' || b.n,
           l.tenant_id, l.meter, s.at, v.value
      FROM unnest(CAST(:tenants AS uuid[]), CAST(:meters AS text[]),
                  CAST(:months AS timestamptz[])) AS l(tenant_id, meter, month)
     CROSS JOIN (SELECT nextval('platform.usage_push_batch_seq') AS n) b
     CROSS JOIN LATERAL (
         SELECT (l.month AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC' AS month_end
     ) e
     CROSS JOIN LATERAL (
         SELECT max(r.maximum) AS value FROM platform.usage_rollups r
          WHERE r.tenant_id = l.tenant_id AND r.meter = l.meter
            AND r.hour >= l.month AND r.hour < e.month_end
     ) v
     CROSS JOIN LATERAL (  -- now, or a second after the period's last push; in the period
         SELECT least(greatest(date_trunc('second', clock_timestamp()),
                               max(p.at) + interval '1 second'),
                      e.month_end - interval '1 second') AS at
           FROM platform.usage_pushes p
          WHERE p.tenant_id = l.tenant_id AND p.meter = l.meter
            AND p.at >= l.month AND p.at < e.month_end
     ) s
    """
)


async def roll_up(conn: AsyncConnection, limit: int = 50_000) -> int:
    """Fold up to `limit` pending events into their hours; returns how many hour rows moved
    (0 when nothing was pending). Rows are upserted in key order: concurrent runs, each
    with its own SKIP LOCKED share, take the rollup rows' locks in the same order."""
    rows = (await conn.execute(_ROLL_UP, {"limit": limit})).all()
    levels = [row[1:] for row in rows if row[1] is not None]
    if levels:
        await conn.execute(_LEVEL_LOCK)
        tenants, meters, months = (list(column) for column in zip(*levels, strict=True))
        await conn.execute(_LEVEL_PUSHES, {"tenants": tenants, "meters": meters, "months": months})
    return int(rows[0][0])


@dataclass(frozen=True, slots=True)
class MeterUsage:
    meter: str
    name: str
    unit: str
    aggregation: str
    quantity: Decimal
    events: int


_PERIOD_USAGE = text(
    """
    WITH parts AS (
        SELECT meter, total, events, maximum, last_value, last_at FROM platform.usage_rollups
         WHERE tenant_id = :tenant AND hour >= :start AND hour < :end
        UNION ALL  -- events the rollup job has not folded in yet (a minute's worth at most)
        SELECT meter, quantity, 1, quantity, quantity, at FROM platform.usage_events
         WHERE pending AND tenant_id = :tenant AND at >= :start AND at < :end
    )
    SELECT m.key, m.name, m.unit, m.aggregation,
           coalesce(sum(p.total), 0), coalesce(sum(p.events), 0), coalesce(max(p.maximum), 0),
           coalesce((array_agg(p.last_value ORDER BY p.last_at DESC)
                     FILTER (WHERE p.last_at IS NOT NULL))[1], 0)
      FROM platform.meters m LEFT JOIN parts p ON p.meter = m.key
     GROUP BY m.key, m.name, m.unit, m.aggregation ORDER BY m.key
    """
)


async def period_usage(
    conn: AsyncConnection | AsyncSession, tenant_id: uuid.UUID, start: datetime, end: datetime
) -> list[MeterUsage]:
    """Each meter's quantity for [start, end), by its aggregation. `start` and `end` fall on
    whole hours (billing periods do), since rollups are hourly."""
    rows = (
        await conn.execute(_PERIOD_USAGE, {"tenant": tenant_id, "start": start, "end": end})
    ).all()
    out = []
    for key, name, unit, aggregation, total, events, maximum, last in rows:
        quantity = {"sum": total, "count": Decimal(events), "max": maximum, "last": last}
        out.append(MeterUsage(key, name, unit, aggregation, Decimal(quantity[aggregation]), events))
    return out


_DAILY_USAGE = text(
    """
    WITH parts AS (
        SELECT date_trunc('day', hour, 'UTC') AS day, total, events, maximum, last_value, last_at
          FROM platform.usage_rollups
         WHERE tenant_id = :tenant AND meter = :meter AND hour >= :start AND hour < :end
        UNION ALL
        SELECT date_trunc('day', at, 'UTC'), quantity, 1, quantity, quantity, at
          FROM platform.usage_events
         WHERE pending AND tenant_id = :tenant AND meter = :meter AND at >= :start AND at < :end
    )
    SELECT day, sum(total), sum(events), max(maximum),
           (array_agg(last_value ORDER BY last_at DESC))[1]
      FROM parts GROUP BY day ORDER BY day
    """
)


async def daily_usage(
    conn: AsyncConnection | AsyncSession, tenant_id: uuid.UUID, meter: Meter, days: int
) -> list[tuple[date, Decimal, int]]:
    """The meter's quantity per UTC day, by its aggregation, over the last `days` days
    (today included; a day without usage is 0): one statement, not one per day."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=days - 1)
    params = {"tenant": tenant_id, "meter": meter.key, "start": start,
              "end": today + timedelta(days=1)}  # fmt: skip
    found = {}
    for day, total, events, maximum, last in (await conn.execute(_DAILY_USAGE, params)).all():
        quantity = {"sum": total, "count": Decimal(events), "max": maximum, "last": last}
        found[day.date()] = (Decimal(quantity[meter.aggregation]), int(events))
    return [
        (d, *found.get(d, (Decimal(0), 0)))
        for d in ((start + timedelta(days=n)).date() for n in range(days))
    ]


def plain(value: Decimal) -> str:
    """12.500000 -> "12.5", 3.000000 -> "3": quantities as people (and Stripe) write them."""
    shown = format(value.normalize(), "f")
    return shown if shown != "-0" else "0"


def month_of(moment: datetime) -> tuple[datetime, datetime]:
    """The calendar month (UTC) holding `moment`: the period until subscriptions set one."""
    start = moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


async def period_invoiced(conn: AsyncConnection, tenant_id: uuid.UUID, at: datetime) -> bool:
    """Whether the billing period holding `at` has a finalized invoice (its usage is final)."""
    found = await conn.scalar(
        select(Invoice.id).where(
            Invoice.tenant_id == tenant_id, Invoice.period_start <= at, Invoice.period_end > at
        )
    )
    return found is not None


async def list_invoices(
    session: AsyncSession, tenant_id: uuid.UUID, limit: int, cursor: str | None
) -> tuple[list[Invoice], str | None]:
    """Newest period first, `limit` at a time; the cursor is the last shown (period, id)."""
    query = select(Invoice).where(Invoice.tenant_id == tenant_id)
    if cursor is not None:
        start, ident = key_cursor_parts(cursor, 2)
        try:
            after = (datetime.fromisoformat(start), uuid.UUID(ident))
        except ValueError:
            raise bad_cursor() from None
        query = query.where(tuple_(Invoice.period_start, Invoice.id) < after)
    order = (Invoice.period_start.desc(), Invoice.id.desc())
    rows = list(await session.scalars(query.order_by(*order).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], key_cursor(last.period_start.isoformat(), last.id)
