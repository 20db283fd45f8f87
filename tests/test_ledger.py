"""The ledger over the API: a firm's chart, journal, periods, rates and reports, and every
refusal a demanding accountant expects (a problem naming the field, nothing written)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from bpo.core.db import Database
from bpo.core.tenancy import TenantContext
from bpo.settings import Settings
from tests.conftest import build_app
from tests.support.auth import admin_of, bearer, client_token, make_user, user_token
from tests.support.isolation import assert_cross_tenant_404
from tests.support.tenants import make_tenant
from tests.support.work import staff_member

Client = AsyncTestClient[Litestar]


@pytest.fixture
async def api(settings: Settings, db: Database) -> AsyncIterator[Client]:
    async with AsyncTestClient(app=build_app(settings)) as client:
        yield client


async def books(
    api: Client, db: Database, settings: Settings, slug: str
) -> tuple[TenantContext, dict[str, str]]:
    """A firm with the starter chart applied; its admin's headers."""
    tenant = await make_tenant(db, slug)
    admin = await admin_of(db, settings, tenant)
    reply = await api.post(f"/v1/tenants/{slug}/ledger/chart/apply", json={}, headers=admin)
    assert reply.status_code == 200, reply.text
    return tenant, admin


def entry(
    day: str, *lines: tuple[str, str, int], currency: str = "EUR", **extra: Any
) -> dict[str, Any]:
    return {
        "effective_on": day,
        "description": extra.pop("description", "test entry"),
        "lines": [
            {"account": acct, side: amount, "currency": currency} for acct, side, amount in lines
        ],
        **extra,
    }


def sale(day: str, amount: int, **extra: Any) -> dict[str, Any]:
    return entry(day, ("1200", "debit", amount), ("4000", "credit", amount), **extra)


async def test_post_an_entry_and_read_balances_and_reports(
    api: Client, db: Database, settings: Settings
) -> None:
    _, admin = await books(api, db, settings, "ledger-one")
    base = "/v1/tenants/ledger-one/ledger"
    posted = await api.post(
        f"{base}/entries", json=sale("2026-11-03", 12050, reference="INV-1"), headers=admin
    )
    assert posted.status_code == 201, posted.text
    body = posted.json()
    assert body["status"] == "posted" and body["number"] >= 1 and len(body["hash"]) == 64
    assert [ln["debit"] for ln in body["lines"]] == [12050, 0]
    account = (await api.get(f"{base}/accounts/1200", headers=admin)).json()
    assert account["balances"] == [
        {"currency": "EUR", "debit": 12050, "credit": 0, "balance": 12050, "functional": 12050}
    ]
    trial = (await api.get(f"{base}/trial-balance?as_of=2026-11-30", headers=admin)).json()
    assert trial["totals"] == [{"currency": "EUR", "debit": 12050, "credit": 12050}]
    assert {r["code"]: (r["debit"], r["credit"]) for r in trial["rows"]} == {
        "1200": (12050, 0),
        "4000": (0, 12050),
    }
    before = (await api.get(f"{base}/trial-balance?as_of=2026-11-02", headers=admin)).json()
    assert before["rows"] == []
    income = (
        await api.get(f"{base}/income-statement?from=2026-11-01&to=2026-11-30", headers=admin)
    ).json()
    assert income["totals"]["net_income"] == 12050
    sheet = (await api.get(f"{base}/balance-sheet?as_of=2026-11-30", headers=admin)).json()
    assert sheet["totals"]["assets"] == sheet["totals"]["liabilities_and_equity"] == 12050
    verified = (await api.get(f"{base}/verify", headers=admin)).json()
    assert verified["ok"] is True and verified["lines_checked"] == 2, verified


async def test_reversal_is_linked_and_only_once(
    api: Client, db: Database, settings: Settings
) -> None:
    _, admin = await books(api, db, settings, "ledger-rev")
    base = "/v1/tenants/ledger-rev/ledger"
    original = (
        await api.post(f"{base}/entries", json=sale("2026-11-03", 500), headers=admin)
    ).json()
    first = await api.post(f"{base}/entries/{original['id']}/reverse", json={}, headers=admin)
    assert first.status_code == 201, first.text
    assert first.json()["reverses"] == original["id"] and first.json()["source"] == "reversal"
    again = await api.post(f"{base}/entries/{original['id']}/reverse", json={}, headers=admin)
    assert again.status_code == 409 and again.json()["type"].endswith("/already-reversed")
    shown = (await api.get(f"{base}/entries/{original['id']}", headers=admin)).json()
    assert shown["reversed_by"] == first.json()["id"]
    account = (await api.get(f"{base}/accounts/1200", headers=admin)).json()
    assert account["balances"][0]["balance"] == 0


async def test_drafts_change_then_post_and_become_immutable(
    api: Client, db: Database, settings: Settings
) -> None:
    _, admin = await books(api, db, settings, "ledger-draft")
    base = "/v1/tenants/ledger-draft/ledger"
    draft = await api.post(
        f"{base}/entries", json=sale("2026-11-03", 100, status="draft"), headers=admin
    )
    assert draft.status_code == 201 and draft.json()["status"] == "draft", draft.text
    entry_id = draft.json()["id"]
    etag = (await api.get(f"{base}/entries/{entry_id}", headers=admin)).headers["etag"]
    changed = await api.patch(
        f"{base}/entries/{entry_id}",
        json={"lines": sale("2026-11-03", 250)["lines"]},
        headers={**admin, "If-Match": etag},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["lines"][0]["debit"] == 250
    posted = await api.post(f"{base}/entries/{entry_id}/post", headers=admin)
    assert posted.status_code == 200, posted.text
    assert posted.json()["status"] == "posted" and posted.json()["number"] == draft.json()["number"]
    refused = await api.patch(
        f"{base}/entries/{entry_id}",
        json={"description": "x"},
        headers={**admin, "If-Match": posted.headers.get("etag", "*")},
    )
    assert refused.status_code in (409, 412)
    gone = await api.delete(f"{base}/entries/{entry_id}", headers=admin)
    assert gone.status_code == 409


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        (lambda e: e["lines"][1].update(credit=100), "/lines"),  # unbalanced
        (lambda e: e["lines"][0].update(account="9999"), "/lines/0/account"),  # unknown
        (lambda e: e["lines"][0].update(debit=120.5), "/lines/0/debit"),  # a float
        (lambda e: e["lines"][0].update(debit="12050"), "/lines/0/debit"),  # a string
        (lambda e: e["lines"][0].update(debit=0), "/lines/0/debit"),  # zero
        (lambda e: e["lines"][0].update(debit=-5), "/lines/0/debit"),  # negative
        (lambda e: e["lines"][0].update(credit=5), "/lines/0"),  # both sides
        (lambda e: e.update(lines=[]), "/lines"),  # no lines
        (lambda e: e["lines"][0].update(currency="XAU"), "/lines/0/currency"),  # no minor unit
        (lambda e: e.update(colour="red"), "/colour"),  # unknown field
    ],
)
async def test_bad_entries_are_problems_naming_the_field(
    api: Client, db: Database, settings: Settings, change: Any, pointer: str
) -> None:
    slug = f"ledger-bad-{uuid.uuid4().hex[:6]}"
    _, admin = await books(api, db, settings, slug)
    body = sale("2026-11-03", 12050)
    change(body)
    reply = await api.post(f"/v1/tenants/{slug}/ledger/entries", json=body, headers=admin)
    assert reply.status_code in (400, 422), reply.text
    problem = reply.json()
    assert reply.headers["content-type"].startswith("application/problem+json")
    assert any(
        pointer in (e.get("pointer") or e.get("key") or "")
        or pointer.strip("/").split("/")[-1] in (problem.get("detail") or "")
        for e in problem.get("errors") or [{}]
    ), problem
    listed = (await api.get(f"/v1/tenants/{slug}/ledger/entries", headers=admin)).json()
    assert listed["items"] == []


async def test_currency_rates_and_functional_amounts(
    api: Client, db: Database, settings: Settings
) -> None:
    _, admin = await books(api, db, settings, "ledger-fx")
    base = "/v1/tenants/ledger-fx/ledger"
    no_rate = await api.post(
        f"{base}/entries", json=sale("2026-11-03", 1000, currency="JPY"), headers=admin
    )
    assert no_rate.status_code == 422 and "/lines/0/currency" in no_rate.text
    rates = await api.put(
        f"{base}/rates",
        json={
            "rates": [
                {"currency": "JPY", "on": "2026-11-01", "rate": "0.0061"},
                {"currency": "KWD", "on": "2026-11-01", "rate": "2.98"},
            ]
        },
        headers=admin,
    )
    assert rates.status_code == 200, rates.text
    jpy = await api.post(
        f"{base}/entries", json=sale("2026-11-03", 1000, currency="JPY"), headers=admin
    )
    assert jpy.status_code == 201, jpy.text
    assert jpy.json()["lines"][0]["functional_debit"] == 610  # JPY 1000 at 0.0061 = EUR 6.10
    kwd = await api.post(
        f"{base}/entries", json=sale("2026-11-03", 1_005, currency="KWD"), headers=admin
    )
    assert kwd.json()["lines"][0]["functional_debit"] == 299  # KWD 1.005 at 2.98 = EUR 2.9949
    account = (await api.get(f"{base}/accounts/1200", headers=admin)).json()
    assert {b["currency"]: b["balance"] for b in account["balances"]} == {"JPY": 1000, "KWD": 1005}
    trial = (await api.get(f"{base}/trial-balance?as_of=2026-11-30", headers=admin)).json()
    assert trial["functional_totals"]["debit"] == trial["functional_totals"]["credit"] == 909


async def test_lock_date_and_closed_periods(api: Client, db: Database, settings: Settings) -> None:
    _, admin = await books(api, db, settings, "ledger-lock")
    base = "/v1/tenants/ledger-lock/ledger"
    closed = await api.post(f"{base}/periods/2026-10/close", headers=admin)
    assert closed.status_code == 200 and closed.json()["status"] == "closed", closed.text
    into_closed = await api.post(f"{base}/entries", json=sale("2026-10-15", 100), headers=admin)
    assert into_closed.status_code == 422 and into_closed.json()["period"] == "2026-10"
    reopened = await api.post(f"{base}/periods/2026-10/reopen", headers=admin)
    assert reopened.json()["status"] == "open"
    assert (
        await api.post(f"{base}/entries", json=sale("2026-10-15", 100), headers=admin)
    ).status_code == 201
    lock = await api.put(f"{base}/lock-date", json={"lock_date": "2026-10-31"}, headers=admin)
    assert lock.status_code == 200, lock.text
    locked = await api.post(f"{base}/entries", json=sale("2026-10-31", 100), headers=admin)
    assert locked.status_code == 422, locked.text
    problem = locked.json()
    assert problem["type"].endswith("/period-locked") and problem["lock_date"] == "2026-10-31"
    assert problem["errors"][0]["pointer"] == "#/effective_on"
    october = (await api.get(f"{base}/entries?to=2026-10-31", headers=admin)).json()["items"][0]
    reversal = await api.post(f"{base}/entries/{october['id']}/reverse", json={}, headers=admin)
    assert reversal.status_code == 422 and reversal.json()["lock_date"] == "2026-10-31"
    assert reversal.json()["errors"][0]["pointer"] == "#/effective_on"
    later = await api.post(
        f"{base}/entries/{october['id']}/reverse",
        json={"effective_on": "2026-11-02"},
        headers=admin,
    )
    assert later.status_code == 201 and later.json()["reverses"] == october["id"]
    listed = (await api.get(f"{base}/periods?fiscal_year=2026", headers=admin)).json()
    assert [p["status"] for p in listed][9:] == ["locked", "open", "open"]


async def test_balance_condition_refuses_overdraft(
    api: Client, db: Database, settings: Settings
) -> None:
    _, admin = await books(api, db, settings, "ledger-cond")
    base = "/v1/tenants/ledger-cond/ledger"
    etag = (await api.get(f"{base}/accounts/1110", headers=admin)).headers["etag"]

    set_ = await api.patch(
        f"{base}/accounts/1110", json={"min_balance": 0}, headers={**admin, "If-Match": etag}
    )
    assert set_.status_code == 200, set_.text
    funded = entry("2026-11-01", ("1110", "debit", 1000), ("3000", "credit", 1000))
    assert (await api.post(f"{base}/entries", json=funded, headers=admin)).status_code == 201
    # A spend within the balance passes (the condition holds on the balance it ends with,
    # not on this posting's turnover alone).
    within = entry("2026-11-02", ("6000", "debit", 400), ("1110", "credit", 400))
    assert (await api.post(f"{base}/entries", json=within, headers=admin)).status_code == 201
    spend = entry("2026-11-02", ("6000", "debit", 601), ("1110", "credit", 601))
    refused = await api.post(f"{base}/entries", json=spend, headers=admin)
    assert refused.status_code == 422, refused.text
    assert refused.json()["type"].endswith("/balance-condition")
    assert refused.json()["errors"][0]["pointer"] == "#/lines/1/account"
    account = (await api.get(f"{base}/accounts/1110", headers=admin)).json()
    assert account["balances"][0]["balance"] == 600
    exact = entry("2026-11-03", ("6000", "debit", 600), ("1110", "credit", 600))
    assert (await api.post(f"{base}/entries", json=exact, headers=admin)).status_code == 201


async def test_batch_is_all_or_nothing(api: Client, db: Database, settings: Settings) -> None:
    _, admin = await books(api, db, settings, "ledger-batch")
    base = "/v1/tenants/ledger-batch/ledger"
    good = [sale("2026-11-03", 100 + i) for i in range(5)]
    bad = [*good, entry("2026-11-03", ("1200", "debit", 5), ("4000", "credit", 6))]
    refused = await api.post(f"{base}/entries/batch", json={"entries": bad}, headers=admin)
    assert refused.status_code == 422 and "#/entries/5/lines" in refused.text
    assert (await api.get(f"{base}/entries", headers=admin)).json()["items"] == []
    accepted = await api.post(f"{base}/entries/batch", json={"entries": good}, headers=admin)
    assert accepted.status_code == 201, accepted.text
    assert len(accepted.json()["entries"]) == 5
    too_many = await api.post(
        f"{base}/entries/batch", json={"entries": [good[0]] * 1001}, headers=admin
    )
    assert too_many.status_code == 422 and too_many.json()["errors"][0]["pointer"] == "#/entries"


async def test_idempotency_key_one_effect_and_changed_body_refused(
    api: Client, db: Database, settings: Settings
) -> None:
    tenant, _ = await books(api, db, settings, "ledger-idem")
    client = bearer(await client_token(db, settings, tenant, ["ledger:read", "ledger:write"]))
    base = "/v1/tenants/ledger-idem/ledger"
    key = {**client, "Idempotency-Key": "post-1"}
    first = await api.post(f"{base}/entries", json=sale("2026-11-03", 700), headers=key)
    again = await api.post(f"{base}/entries", json=sale("2026-11-03", 700), headers=key)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    changed = await api.post(f"{base}/entries", json=sale("2026-11-03", 701), headers=key)
    assert changed.status_code == 422, changed.text
    listed = (await api.get(f"{base}/entries", headers=client)).json()
    assert len(listed["items"]) == 1


async def test_account_rules(api: Client, db: Database, settings: Settings) -> None:
    _, admin = await books(api, db, settings, "ledger-acct")
    base = "/v1/tenants/ledger-acct/ledger"
    made = await api.post(
        f"{base}/accounts",
        json={
            "code": "1015",
            "name": "USD account",
            "type": "asset",
            "currency": "USD",
            "parent": "1000",
        },
        headers=admin,
    )
    assert made.status_code == 201, made.text
    dup = await api.post(
        f"{base}/accounts", json={"code": "1015", "name": "x", "type": "asset"}, headers=admin
    )
    assert dup.status_code == 409
    wrong = await api.post(
        f"{base}/entries",
        json=entry("2026-11-03", ("1015", "debit", 5), ("3000", "credit", 5)),
        headers=admin,
    )
    assert wrong.status_code == 422 and "#/lines/0/currency" in wrong.text
    assert (
        await api.post(f"{base}/entries", json=sale("2026-11-03", 10), headers=admin)
    ).status_code == 201
    etag = (await api.get(f"{base}/accounts/1200", headers=admin)).headers["etag"]
    close = await api.patch(
        f"{base}/accounts/1200", json={"status": "closed"}, headers={**admin, "If-Match": etag}
    )
    assert close.status_code == 422 and close.json()["type"].endswith("/account-not-empty")
    etag = (await api.get(f"{base}/accounts/1015", headers=admin)).headers["etag"]
    closed = await api.patch(
        f"{base}/accounts/1015", json={"status": "closed"}, headers={**admin, "If-Match": etag}
    )
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    into_closed = await api.post(
        f"{base}/entries",
        json=entry("2026-11-03", ("1015", "debit", 5), ("3000", "credit", 5), currency="USD"),
        headers=admin,
    )
    assert into_closed.status_code == 422 and "closed" in into_closed.text


async def test_account_ledger_running_balance_across_pages(
    api: Client, db: Database, settings: Settings
) -> None:
    _, admin = await books(api, db, settings, "ledger-gl")
    base = "/v1/tenants/ledger-gl/ledger"
    days = ["2026-11-05", "2026-11-01", "2026-11-03", "2026-11-03", "2026-11-09"]
    batch = [sale(day, 100 * (i + 1)) for i, day in enumerate(days)]
    assert (
        await api.post(f"{base}/entries/batch", json={"entries": batch}, headers=admin)
    ).status_code == 201
    seen: list[tuple[str, int]] = []
    cursor = None
    while True:
        query = f"?limit=2&cursor={cursor}" if cursor else "?limit=2"
        page = (await api.get(f"{base}/accounts/1200/ledger{query}", headers=admin)).json()
        seen += [(i["effective_on"], i["balance"]) for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [d for d, _ in seen] == sorted(days)
    assert [b for _, b in seen] == [200, 500, 900, 1000, 1500]
    at = (await api.get(f"{base}/accounts/1200/balance?as_of=2026-11-03", headers=admin)).json()
    assert at["balances"][0]["balance"] == 900


async def test_another_firms_ids_are_404(api: Client, db: Database, settings: Settings) -> None:
    _, admin_a = await books(api, db, settings, "ledger-a")
    _, admin_b = await books(api, db, settings, "ledger-b")
    theirs = (
        await api.post(
            "/v1/tenants/ledger-b/ledger/entries", json=sale("2026-11-03", 9), headers=admin_b
        )
    ).json()
    account_b = (await api.get("/v1/tenants/ledger-b/ledger/accounts/1200", headers=admin_b)).json()
    mine = "/v1/tenants/ledger-a/ledger"
    for method, path in [
        ("GET", f"{mine}/entries/{theirs['id']}"),
        ("POST", f"{mine}/entries/{theirs['id']}/reverse"),
        ("POST", f"{mine}/entries/{theirs['id']}/post"),
        ("GET", f"{mine}/accounts/{account_b['id']}"),
        ("GET", f"{mine}/accounts/{account_b['id']}/ledger"),
        ("GET", f"{mine}/accounts/{account_b['id']}/balance"),
        ("PATCH", f"{mine}/accounts/{account_b['id']}"),
        ("PATCH", f"{mine}/entries/{theirs['id']}"),
        ("DELETE", f"{mine}/entries/{theirs['id']}"),
        ("GET", f"{mine}/imports/{theirs['id']}"),
        *[
            (method, f"/v1/tenants/ledger-b/ledger/{path}")
            for method, path in [
                ("GET", "accounts"),
                ("POST", "accounts"),
                ("POST", "chart/apply"),
                ("GET", "settings"),
                ("PUT", "settings"),
                ("GET", "entries"),
                ("POST", "entries"),
                ("POST", "entries/batch"),
                ("POST", "imports"),
                ("GET", "periods"),
                ("POST", "periods/2026-11/close"),
                ("POST", "periods/2026-11/reopen"),
                ("GET", "lock-date"),
                ("PUT", "lock-date"),
                ("GET", "rates"),
                ("PUT", "rates"),
                ("GET", "trial-balance"),
                ("GET", "balance-sheet"),
                ("GET", "income-statement?from=2026-01-01&to=2026-12-31"),
                ("GET", "verify"),
            ]
        ],
    ]:
        await assert_cross_tenant_404(
            api,
            method,
            path,
            headers=admin_a,
            json={} if method in ("POST", "PUT", "PATCH") else None,
        )
    # Posting with another firm's account id is an unknown account, not a leak.
    cross = entry("2026-11-03", (account_b["id"], "debit", 5), ("4000", "credit", 5))
    refused = await api.post(f"{mine}/entries", json=cross, headers=admin_a)
    assert refused.status_code == 422 and "/lines/0/account" in refused.text


_POSTED_ENTRY = (
    "INSERT INTO ledger_entries (id, status, effective_on, booked_at, description,"
    " content_hash, posting_id, created_by) VALUES (gen_random_uuid(), 'posted', '{day}',"
    " {booked}, 'x', '\\x00', gen_random_uuid(), 'sql')"
)


async def _refusal(db: Database, tenant: TenantContext, sql: str) -> str | None:
    """The SQLSTATE with which the database refuses `sql` as the tenant's role (None: it
    did not refuse), in a transaction that checks its deferred constraints at commit."""
    async with db.engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        try:
            async with raw.transaction():
                await raw.execute(
                    f'SET LOCAL ROLE "{tenant.role}"; SET LOCAL search_path = "{tenant.schema}"'
                )
                await raw.execute(sql)
        except asyncpg.PostgresError as exc:
            return str(exc.sqlstate)
    return None


async def test_database_refuses_raw_sql_as_the_tenant_role(
    api: Client, db: Database, settings: Settings
) -> None:
    """Raw SQL as the tenant's role: no change to a posted line or entry, no unbalanced
    posting, nothing into a locked period, no lines added to a posted entry, and another
    tenant's schema is out of reach."""
    tenant, admin = await books(api, db, settings, "ledger-raw")
    other, _ = await books(api, db, settings, "ledger-raw-other")
    base = "/v1/tenants/ledger-raw/ledger"
    posted = (await api.post(f"{base}/entries", json=sale("2026-11-03", 100), headers=admin)).json()
    await api.put(f"{base}/lock-date", json={"lock_date": "2026-09-30"}, headers=admin)
    account = (await api.get(f"{base}/accounts/1200", headers=admin)).json()["id"]
    line = (
        "INSERT INTO ledger_lines (entry_id, line_no, account_id, effective_on, amount, currency,"
        " functional_amount) SELECT {entry}, {no}, '" + account + "', '{day}', 5, 'EUR', 5"
    )
    attempts = {
        "change a posted line": ("UPDATE ledger_lines SET amount = amount + 1", "LD001"),
        "delete a posted line": ("DELETE FROM ledger_lines", "LD001"),
        "change a posted entry": (
            f"UPDATE ledger_entries SET description = 'x' WHERE id = '{posted['id']}'",
            "LD001",
        ),
        "delete a posted entry": (
            f"DELETE FROM ledger_entries WHERE id = '{posted['id']}'",
            "LD001",
        ),
        "post an entry without lines": (
            _POSTED_ENTRY.format(day="2026-11-04", booked="now()"),
            "LD003",
        ),
        "backdate a posting's booking time": (
            _POSTED_ENTRY.format(day="2026-11-04", booked="now() - interval '1 day'"),
            "LD006",
        ),
        "post an unbalanced entry": (
            f"WITH e AS ({_POSTED_ENTRY.format(day='2026-11-04', booked='now()')} RETURNING id) "
            + line.format(entry="id", no=1, day="2026-11-04")
            + " FROM e",
            "LD003",
        ),
        "add a line to a posted entry": (
            line.format(entry=f"'{posted['id']}'::uuid", no=3, day="2026-11-03"),
            "LD005",
        ),
        "a second line 1 in a posted entry": (
            line.format(entry=f"'{posted['id']}'::uuid", no=1, day="2026-11-03"),
            "23505",
        ),
        "post into the locked period": (
            _POSTED_ENTRY.format(day="2026-09-15", booked="now()"),
            "LD002",
        ),
        "lift the lock date by SQL": ("DROP TRIGGER posted ON ledger_entries", "42501"),
        "switch the checks off": ("ALTER TABLE ledger_entries DISABLE TRIGGER posted", "42501"),
        "read another firm's lines": (f'SELECT * FROM "{other.schema}".ledger_lines', "42501"),
    }
    for name, (sql, code) in attempts.items():
        assert await _refusal(db, tenant, sql) == code, name
    async with db.engine.connect() as conn:
        count = await conn.scalar(text(f'SELECT count(*) FROM "{tenant.schema}".ledger_lines'))
    assert count == 2
    verified = (await api.get(f"{base}/verify", headers=admin)).json()
    assert verified["ok"] is True, verified


async def test_verify_names_tampering(api: Client, db: Database, settings: Settings) -> None:
    """What only the database owner could do (bypass the triggers) shows in verify."""
    tenant, admin = await books(api, db, settings, "ledger-tamper")
    base = "/v1/tenants/ledger-tamper/ledger"
    for amount in (100, 200, 300):
        assert (
            await api.post(f"{base}/entries", json=sale("2026-11-03", amount), headers=admin)
        ).status_code == 201
    entries = (await api.get(f"{base}/entries", headers=admin)).json()["items"]
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql("SET LOCAL session_replication_role = replica")  # triggers off
        await conn.execute(
            text(
                f'UPDATE "{tenant.schema}".ledger_lines SET amount = amount * 2 WHERE entry_id = :e'
            ),
            {"e": uuid.UUID(entries[1]["id"])},
        )
        await conn.exec_driver_sql(
            f'UPDATE "{tenant.schema}".ledger_balances SET debit = debit + 1'
        )
    verified = (await api.get(f"{base}/verify", headers=admin)).json()
    assert verified["ok"] is False
    assert verified["first_broken"]["entry_number"] == entries[1]["number"]
    kinds = {d["what"] for d in verified["differences"]}
    assert {"balance", "entry"} <= kinds, verified


async def test_staff_close_the_month_members_cannot(
    api: Client, db: Database, settings: Settings
) -> None:
    """Staff assigned to the firm do its month-end close; a member (even with
    ledger:write) posts but cannot close or lock; staff not assigned get 404."""
    tenant, _ = await books(api, db, settings, "ledger-staff")
    base = "/v1/tenants/ledger-staff/ledger"
    _, as_staff = await staff_member(db, settings, [tenant])
    _, as_outsider = await staff_member(db, settings, [])
    member = await make_user(db, "member@ledger-staff.example", tenants={tenant: "tenant_member"})
    as_member = bearer(await user_token(db, settings, member, tenant=tenant))
    assert (
        await api.post(f"{base}/entries", json=sale("2026-11-03", 5), headers=as_member)
    ).status_code == 201
    assert (
        await api.post(f"{base}/entries", json=sale("2026-11-04", 5), headers=as_staff)
    ).status_code == 201
    refused = await api.post(f"{base}/periods/2026-11/close", headers=as_member)
    assert refused.status_code == 403
    assert (
        await api.put(f"{base}/lock-date", json={"lock_date": "2026-10-31"}, headers=as_member)
    ).status_code == 403
    closed = await api.post(f"{base}/periods/2026-11/close", headers=as_staff)
    assert closed.status_code == 200 and closed.json()["changed_by"].startswith("staff:")
    locked = await api.put(f"{base}/lock-date", json={"lock_date": "2026-10-31"}, headers=as_staff)
    assert locked.status_code == 200
    assert (await api.post(f"{base}/periods/2026-11/close", headers=as_outsider)).status_code == 404
    async with db.engine.connect() as conn:
        actions = set(
            await conn.scalars(
                text("SELECT action FROM platform.audit_events WHERE chain_id = :c"),
                {"c": tenant.tenant_id},
            )
        )
    assert {"ledger.period.closed", "ledger.lock_date.changed", "ledger.entries.posted"} <= actions


async def test_empty_books_answer_with_their_functional_currency(
    api: Client, db: Database, settings: Settings
) -> None:
    _, admin = await books(api, db, settings, "ledger-empty")
    base = "/v1/tenants/ledger-empty/ledger"
    changed = await api.put(f"{base}/settings", json={"functional_currency": "USD"}, headers=admin)
    assert changed.status_code == 200 and changed.json()["functional_currency"] == "USD"
    trial = (await api.get(f"{base}/trial-balance", headers=admin)).json()
    assert trial["functional_currency"] == "USD" and trial["rows"] == [] and trial["totals"] == []
    assert trial["functional_totals"] == {"currency": "USD", "debit": 0, "credit": 0}
    assert (
        await api.post(f"{base}/entries", json=sale("2026-11-03", 5, currency="USD"), headers=admin)
    ).status_code == 201
    fixed = await api.put(f"{base}/settings", json={"functional_currency": "EUR"}, headers=admin)
    assert fixed.status_code == 409  # fixed once the books hold postings


async def test_bad_rates_periods_lock_dates_and_settings_change_nothing(
    api: Client, db: Database, settings: Settings
) -> None:
    _, admin = await books(api, db, settings, "ledger-badin")
    base = "/v1/tenants/ledger-badin/ledger"
    bad_rates = [
        ([{"currency": "USD", "on": "2026-11-01", "rate": "0"}], "/rates/0/rate"),
        ([{"currency": "XAU", "on": "2026-11-01", "rate": "1.5"}], "/rates/0/currency"),
        ([{"currency": "EUR", "on": "2026-11-01", "rate": "1.5"}], "/rates/0/currency"),
        ([{"currency": "USD", "on": "2026-11-01", "rate": 1.5}], "/rates/0/rate"),
        ([{"currency": "USD", "on": "2026-11-01", "rate": "1"}] * 2, "/rates/1"),
    ]
    for rates, pointer in bad_rates:
        reply = await api.put(f"{base}/rates", json={"rates": rates}, headers=admin)
        assert reply.status_code == 422, reply.text
        assert any(e["pointer"].endswith(pointer) for e in reply.json()["errors"]), reply.json()
    assert (await api.get(f"{base}/rates", headers=admin)).json() == []
    for bad in ({"lock_date": "2026-02-30"}, {"lock_date": 20261031}, {"lock": "2026-10-31"}):
        reply = await api.put(f"{base}/lock-date", json=bad, headers=admin)
        assert reply.status_code == 422, reply.text
    assert (await api.get(f"{base}/lock-date", headers=admin)).json() == {"lock_date": None}
    for period, status in (("2026-13", 404), ("26-11", 404), ("november", 422)):  # too long
        reply = await api.post(f"{base}/periods/{period}/close", headers=admin)
        assert reply.status_code == status, reply.text
    assert all(
        p["status"] == "open" for p in (await api.get(f"{base}/periods", headers=admin)).json()
    )
    reply = await api.put(f"{base}/settings", json={"functional_currency": "XAU"}, headers=admin)
    assert reply.status_code == 422
    shown = (await api.get(f"{base}/settings", headers=admin)).json()
    assert shown["functional_currency"] == "EUR" and shown["lock_date"] is None
