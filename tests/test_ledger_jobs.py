"""The ledger's jobs and commands: CSV journal imports, month-end FX revaluation, the weekly
verify (an event when books drift), `bpo ledger verify`, and the demo firm's chart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from bpo.core.db import Database
from bpo.core.tenancy import TenantContext
from bpo.ledger.jobs import revalue_all, verify_all
from bpo.settings import Settings
from tests.conftest import build_app
from tests.support.auth import admin_of
from tests.support.jobs import running_worker, wait_for
from tests.support.processes import bpo, bpo_env
from tests.support.tenants import make_tenant

Client = AsyncTestClient[Litestar]


@pytest.fixture
async def api(settings: Settings, db: Database) -> AsyncIterator[Client]:
    async with AsyncTestClient(app=build_app(settings)) as client:
        yield client


async def books(
    api: Client, db: Database, settings: Settings, slug: str
) -> tuple[TenantContext, dict[str, str], str]:
    tenant = await make_tenant(db, slug)
    admin = await admin_of(db, settings, tenant)
    assert (
        await api.post(f"/v1/tenants/{slug}/ledger/chart/apply", json={}, headers=admin)
    ).status_code == 200
    return tenant, admin, f"/v1/tenants/{slug}/ledger"


GOOD_CSV = """entry,effective_on,description,reference,account,debit,credit,currency,memo
A,2026-11-03,Invoice 17,INV-17,1200,120.50,,EUR,
A,2026-11-03,Invoice 17,INV-17,4100,,120.50,EUR,sales
B,2026-11-04,Yen receipt,,1110,1000,,JPY,
B,2026-11-04,Yen receipt,,1200,,1000,JPY,
"""
BAD_CSV = """entry,effective_on,description,account,debit,credit,currency
A,2026-11-03,Fine,1200,10.00,,EUR
A,2026-11-03,Fine,4100,,10.00,EUR
B,2026-11-03,Fraction,1200,10.005,,EUR
B,2026-11-03,Fraction,4100,,10.005,EUR
C,2026-13-03,Bad date,1200,1,,EUR
D,2026-11-03,Unknown account,9999,1,,EUR
D,2026-11-03,Unknown account,4100,,1,EUR
"""


async def _import(api: Client, base: str, admin: dict[str, str], body: str) -> dict[str, Any]:
    started = await api.post(
        f"{base}/imports?filename=nov.csv",
        content=body.encode(),
        headers={**admin, "Content-Type": "text/csv"},
    )
    assert started.status_code == 202, started.text
    location = started.headers["location"]
    result: dict[str, Any] = {}

    async def finished() -> bool:
        result.update((await api.get(location, headers=admin)).json())
        return result["status"] in ("posted", "failed")

    await wait_for(finished, timeout=30)
    return result


async def test_csv_import_posts_all_or_reports_lines(
    api: Client, db: Database, settings: Settings
) -> None:
    _, admin, base = await books(api, db, settings, "ledger-csv")
    await api.put(
        f"{base}/rates",
        json={"rates": [{"currency": "JPY", "on": "2026-11-01", "rate": "0.0061"}]},
        headers=admin,
    )
    async with running_worker(settings):
        bad = await _import(api, base, admin, BAD_CSV)
        assert bad["status"] == "failed" and bad["entries_posted"] == 0
        assert {e["line"] for e in bad["errors"]} == {4, 5, 6}, bad["errors"]
        assert (await api.get(f"{base}/entries", headers=admin)).json()["items"] == []
        unknown = BAD_CSV.splitlines()
        only_unknown = "\n".join([unknown[0], *unknown[1:3], *unknown[6:8]]) + "\n"
        refused = await _import(api, base, admin, only_unknown)
        assert refused["status"] == "failed"
        assert [e["line"] for e in refused["errors"]] == [4], refused["errors"]
        good = await _import(api, base, admin, GOOD_CSV)
    assert good["status"] == "posted" and good["entries_posted"] == 2, good
    assert good["rows_total"] == good["rows_done"] == 4
    entries = (await api.get(f"{base}/entries", headers=admin)).json()["items"]
    assert [e["source"] for e in entries] == ["import", "import"]
    assert entries[0]["lines"][0]["debit"] == 12050 and entries[0]["reference"] == "INV-17"
    assert entries[1]["lines"][0]["functional_debit"] == 610
    wrong_type = await api.post(
        f"{base}/imports", content=b"{}", headers={**admin, "Content-Type": "application/json"}
    )
    assert wrong_type.status_code == 415
    no_header = await api.post(
        f"{base}/imports", content=b"a,b\n1,2\n", headers={**admin, "Content-Type": "text/csv"}
    )
    assert no_header.status_code == 422 and "line 1" in no_header.text


async def test_month_end_revaluation_and_its_reversal(
    api: Client, db: Database, settings: Settings
) -> None:
    tenant, admin, base = await books(api, db, settings, "ledger-reval")
    rates = [
        {"currency": "USD", "on": "2026-10-01", "rate": "0.90"},
        {"currency": "USD", "on": "2026-10-31", "rate": "0.95"},
    ]
    assert (await api.put(f"{base}/rates", json={"rates": rates}, headers=admin)).status_code == 200
    usd = {
        "effective_on": "2026-10-10",
        "description": "USD receivable",
        "lines": [
            {"account": "1200", "debit": 100_000, "currency": "USD"},
            {"account": "4100", "credit": 100_000, "currency": "USD"},
        ],
    }
    assert (await api.post(f"{base}/entries", json=usd, headers=admin)).status_code == 201
    assert await revalue_all(db, date(2026, 10, 1)) >= 1
    assert await revalue_all(db, date(2026, 10, 1)) == 0  # once per month
    receivable = (
        await api.get(f"{base}/accounts/1200/balance?as_of=2026-10-31", headers=admin)
    ).json()
    assert receivable["balances"] == [
        {
            "currency": "USD",
            "debit": 100_000,
            "credit": 100_000 - 100_000,
            "balance": 100_000,
            "functional": 95_000,
        }
    ]
    gain = (await api.get(f"{base}/accounts/4910/balance?as_of=2026-10-31", headers=admin)).json()
    assert gain["balances"][0]["functional"] == 5_000
    after = (await api.get(f"{base}/accounts/1200/balance?as_of=2026-11-01", headers=admin)).json()
    assert after["balances"][0]["functional"] == 90_000  # reversed on the 1st
    entries = (
        await api.get(f"{base}/entries?reference=fx-revaluation:2026-10", headers=admin)
    ).json()
    assert [e["source"] for e in entries["items"]] == ["revaluation", "revaluation"]
    assert entries["items"][1]["reverses"] == entries["items"][0]["id"]
    assert (await api.get(f"{base}/verify", headers=admin)).json()["ok"] is True
    del tenant


async def test_weekly_verify_raises_an_event_when_books_drift(
    api: Client, db: Database, settings: Settings
) -> None:
    tenant, admin, base = await books(api, db, settings, "ledger-drift")
    sale = {
        "effective_on": "2026-11-03",
        "description": "sale",
        "lines": [
            {"account": "1200", "debit": 500, "currency": "EUR"},
            {"account": "4100", "credit": 500, "currency": "EUR"},
        ],
    }
    assert (await api.post(f"{base}/entries", json=sale, headers=admin)).status_code == 201
    assert await verify_all(db) == 0
    async with db.engine.begin() as conn:  # the owner, around the triggers
        await conn.execute(text(f'UPDATE "{tenant.schema}".ledger_totals SET credit = credit + 7'))
    assert await verify_all(db) == 1
    async with db.engine.connect() as conn:
        kinds = await conn.scalars(
            text("SELECT args->>1 FROM platform.outbox WHERE tenant_id = :t"),
            {"t": tenant.tenant_id},
        )
        assert "ledger.verify.drifted" in set(kinds)
    result = bpo(
        "ledger",
        "verify",
        "ledger-drift",
        env=bpo_env(BPO_DATABASE_URL=settings.database_url or ""),
    )
    assert result.returncode == 1 and "DRIFT" in result.stdout and "total" in result.stdout
    fine = await make_tenant(db, "ledger-fine")
    ok = bpo(
        "ledger", "verify", fine.slug, env=bpo_env(BPO_DATABASE_URL=settings.database_url or "")
    )
    assert ok.returncode == 0 and "\tok\t" in ok.stdout, ok.stdout + ok.stderr


async def test_demo_firm_gets_the_starter_chart(db: Database, settings: Settings) -> None:
    from bpo.demo import apply_demo_chart, seed_demo
    from bpo.ledger.chart import SMALL_BUSINESS

    async with db.sessionmaker.begin() as session:
        seeded = await seed_demo(session, settings.secret_key or "")
    assert await apply_demo_chart(db.engine, seeded.tenant) == len(SMALL_BUSINESS)
    assert await apply_demo_chart(db.engine, seeded.tenant) == 0  # only what is missing
    schema = f"tenant_{seeded.tenant.id.hex}"
    async with db.engine.connect() as conn:
        codes = set(await conn.scalars(text(f'SELECT code FROM "{schema}".ledger_accounts')))
        fx = (
            await conn.execute(
                text(
                    f'SELECT fx_gain_account_id, fx_loss_account_id FROM "{schema}".ledger_settings'
                )
            )
        ).one()
    assert codes == {code for code, *_ in SMALL_BUSINESS} and None not in fx
