"""Usage end to end: 100,000 events (20% duplicates, shuffled) recorded through the staff
API while a worker rolls them up and pushes them to the Stripe stand-in, which fails now
and then (500, 429, answers lost after the work was done); the worker is killed with
SIGKILL mid-way. The rollups and what Stripe holds equal an oracle computed here."""

from __future__ import annotations

import asyncio
import itertools
import random
import signal
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from bpo.billing import stripe_sync
from bpo.billing.gateway import StripeGateway
from bpo.billing.service import month_of, period_usage, record_usage, roll_up
from bpo.core.db import Database
from bpo.jobs.outbox import enqueue
from bpo.settings import Settings
from tests.support.auth import bearer, staff_admin_token
from tests.support.billing import WEBHOOK_SECRET, stripe_settings, subscribe_directly
from tests.support.jobs import spawn_worker
from tests.support.stripe_standin import stripe_standin
from tests.support.tenants import make_tenant

Client = AsyncTestClient[Litestar]
METERS = {
    "api_calls": "bpo_api_calls",
    "tasks_completed": "bpo_tasks_completed",
    "staff_minutes": "bpo_staff_minutes",
    "statement_lines": "bpo_statement_lines",
}
UNIQUE, DUPLICATES, BATCH = 80_000, 20_000, 1000
HOUR = timedelta(hours=1)


def _events(slugs: list[str], now: datetime) -> list[dict[str, Any]]:
    rng = random.Random(6)
    unique = []
    for n in range(UNIQUE):
        meter = rng.choice(list(METERS))
        quantity = Decimal(rng.randint(1, 40)) / (4 if meter == "staff_minutes" else 1)
        # Mostly the last 12 hours; one in 400 is late (up to 20 days back).
        back = (
            timedelta(days=rng.uniform(1, 20))
            if n % 400 == 0
            else timedelta(hours=rng.uniform(0, 12))
        )
        unique.append(
            {"tenant": rng.choice(slugs), "meter": meter, "quantity": str(quantity),
             "key": f"usage-{n}", "at": (now - back).isoformat()}
        )  # fmt: skip
    events = unique + [dict(rng.choice(unique)) for _ in range(DUPLICATES)]
    rng.shuffle(events)
    return events


def _hour(at: str) -> datetime:
    return datetime.fromisoformat(at).astimezone(UTC).replace(minute=0, second=0, microsecond=0)


async def _scalar(db: Database, sql: str) -> int:
    async with db.engine.connect() as conn:
        return int(await conn.scalar(text(sql)) or 0)


async def _kick(db: Database) -> None:
    """What the scheduler does each minute, now: roll up, then push."""
    async with db.sessionmaker.begin() as session:
        await enqueue(session, "roll_up_usage", tenant=None)
        await enqueue(session, "push_usage", tenant=None)


async def test_100k_events_with_duplicates_and_a_killed_worker_match_the_oracle(
    client: Client, db: Database, settings: Settings
) -> None:
    firms = [await make_tenant(db, f"metered-firm-{n}") for n in range(3)]
    for firm in firms:
        await subscribe_directly(db, firm, "starter", f"cus_{firm.slug}")
    customers = {firm.slug: f"cus_{firm.slug}" for firm in firms}
    ids = {firm.slug: firm.tenant_id for firm in firms}
    events = _events(list(customers), datetime.now(UTC))
    as_staff = bearer(await staff_admin_token(db, settings))

    with stripe_standin() as standin:
        standin.state.fail_before = [500, 429, 503, 500, 429]
        standin.state.lose_after = 25  # done, then the answer is lost: resent, Stripe's 400
        env = {"BPO_STRIPE_API_KEY": "sk_test_bpo", "BPO_STRIPE_API_BASE": standin.url,
               "BPO_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET, "BPO_WORKER_THREADS": "2"}  # fmt: skip
        worker, killed = spawn_worker(settings, **env), False
        try:
            recorded = duplicates = 0
            for n in range(0, len(events), BATCH):
                answer = await client.post(
                    "/v1/staff/usage", json={"events": events[n : n + BATCH]}, headers=as_staff
                )
                assert answer.status_code == 200, answer.text
                recorded += answer.json()["recorded"]
                duplicates += answer.json()["duplicates"]
                if n % 4000 == 0:
                    await _kick(db)
                if not killed and n >= len(events) // 2 and standin.state.meter_events:
                    worker.send_signal(signal.SIGKILL)  # mid-way: rolling up and pushing
                    await asyncio.to_thread(worker.wait, 10)
                    worker, killed = spawn_worker(settings, **env), True
            assert (recorded, duplicates) == (UNIQUE, DUPLICATES)
            assert killed, "the worker was never killed: nothing was tested"
            deadline = asyncio.get_running_loop().time() + 240
            while await _scalar(db, "SELECT count(*) FROM platform.usage_events WHERE pending") or (
                await _scalar(
                    db, "SELECT count(*) FROM platform.usage_pushes WHERE status <> 'delivered'"
                )
            ):
                assert asyncio.get_running_loop().time() < deadline, "usage never fully pushed"
                await _kick(db)
                await asyncio.sleep(1.0)
        finally:
            worker.send_signal(signal.SIGKILL)
            await asyncio.to_thread(worker.wait, 10)

    # The oracle: each key once, its first copy (every copy is the same here).
    first: dict[str, dict[str, Any]] = {}
    for event in events:
        first.setdefault(event["key"], event)
    by_hour: dict[tuple[Any, str, datetime], Decimal] = defaultdict(Decimal)
    by_meter: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for e in first.values():
        by_hour[(ids[e["tenant"]], e["meter"], _hour(e["at"]))] += Decimal(e["quantity"])
        by_meter[(customers[e["tenant"]], METERS[e["meter"]])] += Decimal(e["quantity"])

    async with db.engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT tenant_id, meter, hour, total FROM platform.usage_rollups")
            )
        ).all()
    assert {(t, m, h): Decimal(v) for t, m, h, v in rows} == dict(by_hour)
    assert standin.totals() == dict(by_meter)
    # Nothing was sent twice as new, and the injected failures did happen.
    sent = standin.state.sent("/v2/billing/meter_event_stream")
    identifiers = [e["identifier"] for r in sent for e in r.params["events"]]
    assert all(len(r.params["events"]) <= 100 for r in sent)
    assert len(standin.state.meter_events) == await _scalar(
        db, "SELECT count(*) FROM platform.usage_pushes"
    )
    assert len(identifiers) > len(set(identifiers))  # resent after failures and lost answers
    assert standin.state.lose_after == 0 and standin.state.fail_before == []
    repeats = {identifier for identifier, _ in standin.state.dropped}
    assert repeats, "no resend was dropped as a repeat of its identifier"
    assert repeats <= set(standin.state.meter_events)


async def _meter_id(db: Database, gateway: StripeGateway, key: str, aggregation: str) -> str:
    meter_id = await gateway.create_meter(f"bpo_{key}", key, aggregation)
    async with db.engine.begin() as conn:
        await conn.execute(
            text("UPDATE platform.meters SET stripe_meter_id = :id WHERE key = :key"),
            {"id": meter_id, "key": key},
        )
    return meter_id


async def test_max_meters_reach_stripe_as_the_maximum_in_batches_of_100(
    db: Database, settings: Settings
) -> None:
    """A max meter's events carry the period's maximum so far, each stamped after the one
    before, so Stripe's `last` is bpo's max, even when a late event raises it in an
    earlier hour; meter events go 100 to a request, and an expired stream session is
    renewed."""
    firm = await make_tenant(db, "stored-firm")
    await subscribe_directly(db, firm, "starter", "cus_stored")
    now = datetime.now(UTC)
    start, end = month_of(now)
    hour = now.replace(minute=0, second=0, microsecond=0)
    earlier, later = max(start, hour - 2 * HOUR), max(start, hour - HOUR)
    with stripe_standin() as standin:
        gateway = StripeGateway(stripe_settings(settings, standin))
        documents = await _meter_id(db, gateway, "documents_gb_month", "max")
        await _meter_id(db, gateway, "api_calls", "sum")
        levels = [("4", earlier), ("6", later), ("9", earlier + timedelta(minutes=10))]
        for n, (gb, at) in enumerate(levels):  # the last one late, in the earlier hour
            async with db.engine.begin() as conn:
                await record_usage(conn, firm, "documents_gb_month", Decimal(gb), f"gb-{n}", at)
                if n == 0:  # and 250 hours of API calls: 250 meter events
                    for h in range(250):
                        at = now - (h + 1) * HOUR
                        await record_usage(conn, firm, "api_calls", 2, f"calls-{h}", at)
                await roll_up(conn)
        first = await stripe_sync.push_usage(db.engine, gateway)
        assert (first.sent, first.refused, first.unavailable) == (253, 0, 0)
        standin.state.sessions.clear()  # the session's token expires: a new one, once
        async with db.engine.begin() as conn:
            await record_usage(conn, firm, "documents_gb_month", Decimal("2"), "gb-3", later)
            await roll_up(conn)
        again = await stripe_sync.push_usage(db.engine, gateway)
        assert (again.sent, again.unavailable) == (1, 0)
        stripe_max = await gateway.metered_total(documents, "cus_stored", start, end)

    async with db.engine.connect() as conn:
        [ours] = [u for u in await period_usage(conn, firm.tenant_id, start, end)
                  if u.meter == "documents_gb_month"]  # fmt: skip
        pushed = (
            await conn.execute(
                text(
                    "SELECT value, at FROM platform.usage_pushes"
                    " WHERE meter = 'documents_gb_month' ORDER BY at"
                )
            )
        ).all()
    assert stripe_max == ours.quantity == 9
    assert [value for value, _ in pushed] == [4, 6, 9, 9]
    stamps = [at for _, at in pushed]
    assert all(a < b for a, b in itertools.pairwise(stamps))
    assert all(start <= at < end for at in stamps)
    requests = standin.state.sent("/v2/billing/meter_event_stream")
    sizes = sorted(len(r.params["events"]) for r in requests if r.status == 200)
    assert sizes == [1, 53, 100, 100]  # the first round's three requests went at once
    assert [r.status for r in requests][3:] == [401, 200]
    assert len(standin.state.sent("/v2/billing/meter_event_session")) == 2
    assert standin.totals()[("cus_stored", "bpo_api_calls")] == 500
