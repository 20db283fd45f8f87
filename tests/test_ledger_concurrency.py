"""32 connections posting, reversing and retrying 20,000 entries at once, a share of them on
one hot account that must not go below zero: afterwards nothing drifted, the condition held,
and every Idempotency-Key had exactly one effect."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

from litestar.testing import AsyncTestClient
from sqlalchemy import text

from bpo.core.db import Database
from bpo.settings import Settings
from tests.conftest import build_app
from tests.support.auth import admin_of
from tests.support.tenants import make_tenant

SLUG = "ledger-race"
BASE = f"/v1/tenants/{SLUG}/ledger"
HOT = "1120"  # petty cash, "not below zero"
WORKERS = 32
ENTRIES = 20_000
BATCH = 100


def _entry(rng: random.Random, key: str) -> dict[str, Any]:
    amount = rng.randint(1, 5_000)
    roll = rng.random()
    if roll < 0.25:  # into the hot account
        debit, credit = HOT, "3100"
    elif roll < 0.5:  # out of it, larger: refused when it would go below zero
        debit, credit, amount = "6900", HOT, amount * 2
    else:
        debit, credit = rng.choice([("1200", "4100"), ("6200", "1110"), ("1110", "2100")])
    return {
        "effective_on": f"2026-11-{rng.randint(1, 28):02d}",
        "description": "race",
        "reference": key,
        "lines": [
            {"account": debit, "debit": amount, "currency": "EUR"},
            {"account": credit, "credit": amount, "currency": "EUR"},
        ],
    }


class Tally:
    def __init__(self) -> None:
        self.attempted = 0
        self.keys: dict[str, int] = {}  # key -> 201 answers seen
        self.posted_ids: list[str] = []
        self.statuses: dict[int, int] = {}


async def _single(api: Any, headers: dict[str, str], rng: random.Random, tally: Tally) -> None:
    key = uuid.uuid4().hex
    body = _entry(rng, key)
    sent = {**headers, "Idempotency-Key": key}
    tries = 2 if rng.random() < 0.3 else 1  # a retry racing the first attempt
    replies = await asyncio.gather(
        *(api.post(f"{BASE}/entries", json=body, headers=sent) for _ in range(tries))
    )
    tally.attempted += 1
    for reply in replies:
        tally.statuses[reply.status_code] = tally.statuses.get(reply.status_code, 0) + 1
        assert reply.status_code in (201, 409, 422), reply.text
        if reply.status_code == 201:
            tally.keys[key] = tally.keys.get(key, 0) + 1
            tally.posted_ids.append(reply.json()["id"])
        elif reply.status_code == 422:
            assert reply.json()["type"].endswith("/balance-condition"), reply.text


async def _batch(api: Any, headers: dict[str, str], rng: random.Random, tally: Tally) -> None:
    # Batches stay off the hot account (one refusal would refuse the whole batch).
    entries = []
    for _ in range(BATCH):
        e = _entry(rng, uuid.uuid4().hex)
        for line in e["lines"]:
            line["account"] = {HOT: "1110"}.get(line["account"], line["account"])
        entries.append(e)
    reply = await api.post(f"{BASE}/entries/batch", json={"entries": entries}, headers=headers)
    assert reply.status_code == 201, reply.text
    tally.attempted += BATCH
    for e in entries:
        tally.keys[e["reference"]] = 1


async def _reverse(api: Any, headers: dict[str, str], rng: random.Random, tally: Tally) -> None:
    if not tally.posted_ids:
        return
    target = rng.choice(tally.posted_ids)
    reply = await api.post(f"{BASE}/entries/{target}/reverse", json={}, headers=headers)
    tally.attempted += 1
    assert reply.status_code in (201, 409, 422), reply.text


async def _worker(api: Any, headers: dict[str, str], seed: int, tally: Tally) -> None:
    rng = random.Random(seed)
    while tally.attempted < ENTRIES:
        roll = rng.random()
        if roll < 0.06:
            await _batch(api, headers, rng, tally)
        elif roll < 0.15:
            await _reverse(api, headers, rng, tally)
        else:
            await _single(api, headers, rng, tally)


async def test_thirty_two_connections_no_drift_condition_held_keys_once(
    settings: Settings, db: Database
) -> None:
    tenant = await make_tenant(db, SLUG)
    admin = await admin_of(db, settings, tenant)
    async with AsyncTestClient(app=build_app(settings), timeout=60) as api:
        assert (await api.post(f"{BASE}/chart/apply", json={}, headers=admin)).status_code == 200
        etag = (await api.get(f"{BASE}/accounts/{HOT}", headers=admin)).headers["etag"]
        guarded = await api.patch(
            f"{BASE}/accounts/{HOT}", json={"min_balance": 0}, headers={**admin, "If-Match": etag}
        )
        assert guarded.status_code == 200
        tally = Tally()
        await asyncio.gather(*(_worker(api, admin, seed, tally) for seed in range(WORKERS)))
        verified = (await api.get(f"{BASE}/verify", headers=admin)).json()
    assert tally.attempted >= ENTRIES
    assert tally.statuses.get(422, 0) > 0  # the hot account did refuse some spends
    assert verified["ok"] is True, verified["differences"][:5]
    assert verified["entries_checked"] >= ENTRIES * 0.6
    async with db.engine.connect() as conn:
        schema = tenant.schema
        hot = await conn.scalar(
            text(
                f'SELECT t.debit - t.credit FROM "{schema}".ledger_totals t'
                f' JOIN "{schema}".ledger_accounts a ON a.id = t.account_id WHERE a.code = :c'
            ),
            {"c": HOT},
        )
        # Each reference (the key) one entry, however often it was retried.
        doubles = await conn.scalar(
            text(
                f'SELECT count(*) FROM (SELECT reference FROM "{schema}".ledger_entries'
                " WHERE source <> 'reversal' GROUP BY reference HAVING count(*) > 1) d"
            )
        )
    # Every change of the total ran the condition's trigger (each refusal above was one);
    # the balance it ends with holds it too.
    assert hot is not None and hot >= 0
    assert doubles == 0
    assert all(count >= 1 for count in tally.keys.values())
