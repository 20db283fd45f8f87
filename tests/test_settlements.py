"""Settlements over the API: bank accounts, statement imports (deduplicated across
re-imports, posted to the books), open items, matching and clearing through the ledger,
manual matches, undo and write-off, the reconciliation report, and every refusal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from bpo.core.db import Database
from bpo.settings import Settings
from bpo.settlements.references import make_rf
from bpo.work.starter import seed_catalog
from tests.conftest import build_app
from tests.support.auth import bearer, client_token
from tests.support.isolation import assert_cross_tenant_404
from tests.support.jobs import running_worker
from tests.support.settlements import (
    IBAN,
    OTHER_IBAN,
    Firm,
    Movement,
    balance,
    camt053,
    firm,
    imported,
)

Client = AsyncTestClient[Litestar]
NOV = date(2026, 11, 2)


@pytest.fixture
async def api(settings: Settings, db: Database) -> AsyncIterator[Client]:
    async with AsyncTestClient(app=build_app(settings)) as client:
        yield client


def invoice(number: str, amount: int, counterparty: str, **extra: Any) -> dict[str, Any]:
    return {
        "number": number, "counterparty": counterparty, "issue_date": "2026-10-20",
        "due_date": "2026-11-03", "amount": amount, "currency": "EUR",
        "control_account": "1200", "account": "4100",
    } | extra  # fmt: skip


async def issued(api: Client, f: Firm, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    made = await api.post(f"{f.base}/{kind}", json=body, headers=f.admin)
    assert made.status_code == 201, made.text
    return dict(made.json())


async def lines_of(api: Client, f: Firm, statement_id: str) -> list[dict[str, Any]]:
    got = await api.get(f"{f.base}/statements/{statement_id}/lines?limit=500", headers=f.admin)
    assert got.status_code == 200, got.text
    return list(got.json()["items"])


async def test_bank_accounts_are_checked(api: Client, db: Database, settings: Settings) -> None:
    f = await firm(api, db, settings, "set-accounts")
    assert f.account["status"] == "active" and f.account["iban"] == IBAN
    assert f.account["cash_account"] == "1110" and f.account["rules"]["fee_tolerance"] == 500
    url = f"{f.base}/bank-accounts"
    cases = [
        ({"name": "x", "currency": "EUR", "iban": "DE89370400440532013001"}, "#/iban"),
        ({"name": "x", "currency": "EUR"}, "#/iban"),
        ({"name": "x", "currency": "XYZ", "iban": OTHER_IBAN}, "#/currency"),
        ({"name": "x", "currency": "EUR", "iban": OTHER_IBAN, "cash_account": "4100"},
         "#/cash_account"),
        ({"name": "x", "currency": "EUR", "iban": OTHER_IBAN, "cash_account": "9999"},
         "#/cash_account"),
        ({"name": "x", "currency": "EUR", "iban": OTHER_IBAN, "bic": "1234DEFF"}, "#/bic"),
        ({"name": "x", "currency": "EUR", "iban": OTHER_IBAN, "bic": "DEUTDEFF"}, "#/bic"),
    ]  # fmt: skip
    for body, pointer in cases:
        refused = await api.post(url, json=body, headers=f.admin)
        assert refused.status_code == 422, (body, refused.text)
        assert refused.json()["errors"][0]["pointer"] == pointer
    unknown = await api.post(
        url, json={"name": "x", "currency": "EUR", "colour": 1}, headers=f.admin
    )
    assert unknown.status_code in (400, 422) and "colour" in unknown.text
    again = await api.post(
        url, json={"name": "x", "currency": "EUR", "iban": IBAN}, headers=f.admin
    )
    assert again.status_code == 409
    listed = (await api.get(url, headers=f.admin)).json()["items"]
    assert [a["iban"] for a in listed] == [IBAN]


async def test_a_statement_imports_once_and_the_books_follow_the_bank(
    api: Client, db: Database, settings: Settings
) -> None:
    f = await firm(api, db, settings, "set-import")
    moves = [
        Movement(NOV, 120_000, "Acme GmbH", "INV-1001"),
        Movement(NOV, -4_550, "Stadtwerke", "power november"),
        Movement(NOV + timedelta(days=1), 9_900, "Bolt Ltd", "thanks"),
        Movement(NOV + timedelta(days=1), 9_900, "Bolt Ltd", "thanks", bank_ref="NONREF"),
        Movement(NOV + timedelta(days=1), 9_900, "Bolt Ltd", "thanks", bank_ref="NONREF"),
    ]
    body = camt053(moves, opening=50_000)
    async with running_worker(settings):
        first = await imported(api, f"{f.base}/statements?filename=nov.xml", f.admin, body)
        again = await imported(api, f"{f.base}/statements", f.admin, body)
    assert first["status"] == "done", first
    assert first["lines_imported"] == 5 and first["lines_skipped"] == 0
    assert first["bank_account"] == f.account["id"] and first["filename"] == "nov.xml"
    assert again["status"] == "done" and again["lines_imported"] == 0
    assert again["lines_skipped"] == 5 and again["statements"] == first["statements"]
    [statement_id] = first["statements"]
    statement = (await api.get(f"{f.base}/statements/{statement_id}", headers=f.admin)).json()
    assert statement["opening_balance"] == 50_000 and statement["continuity"] == "first"
    assert statement["closing_balance"] == 50_000 + sum(m.amount for m in moves)
    lines = await lines_of(api, f, statement_id)
    assert [ln["amount"] for ln in lines] == [m.amount for m in moves]
    assert lines[0]["counterparty_name"] == "Acme GmbH" and "INV-1001" in lines[0]["description"]
    # The books: the day's net movement from suspense to cash, through the ledger.
    net = sum(m.amount for m in moves)
    assert await balance(api, "set-import", f.admin, "1110", "2026-11-30") == net
    assert await balance(api, "set-import", f.admin, "1190", "2026-11-30") == -net
    entries = (await api.get("/v1/tenants/set-import/ledger/entries", headers=f.admin)).json()
    assert {e["source"] for e in entries["items"]} == {"settlement"} and len(entries["items"]) == 2
    usage = await db_usage(db, f, "statement_lines")
    assert usage == 5  # the duplicates were not metered


async def db_usage(db: Database, f: Firm, meter: str) -> int:
    async with db.engine.connect() as conn:
        value = await conn.scalar(
            text("SELECT coalesce(sum(quantity), 0) FROM platform.usage_events"
                 " WHERE tenant_id = :t AND meter = :m"),
            {"t": f.tenant.tenant_id, "m": meter},
        )  # fmt: skip
    return int(value or 0)


async def test_continuity_gaps_are_flagged_and_next_statements_follow(
    api: Client, db: Database, settings: Settings
) -> None:
    f = await firm(api, db, settings, "set-continuity")
    first = camt053([Movement(NOV, 1_000, "A", "a")], opening=0, statement_id="S1")
    follows = camt053(
        [Movement(NOV + timedelta(days=2), 500, "B", "b")], opening=1_000, statement_id="S2"
    )
    gap = camt053(
        [Movement(NOV + timedelta(days=5), 700, "C", "c")], opening=9_999, statement_id="S3"
    )
    async with running_worker(settings):
        results = [
            await imported(api, f"{f.base}/statements", f.admin, b) for b in (first, follows, gap)
        ]
    assert [r["status"] for r in results] == ["done"] * 3
    continuity = []
    for r in results:
        got = await api.get(f"{f.base}/statements/{r['statements'][0]}", headers=f.admin)
        continuity.append(got.json()["continuity"])
    assert continuity == ["first", "continuous", "gap"]
    assert results[2]["warnings"][0]["code"] == "continuity-gap"
    assert "9999" in results[2]["warnings"][0]["detail"]


async def test_bad_files_are_refused_naming_the_place_and_import_nothing(
    api: Client, db: Database, settings: Settings
) -> None:
    f = await firm(api, db, settings, "set-refusals")
    other = await api.post(
        f"{f.base}/bank-accounts",
        json={"name": "GBP", "currency": "GBP", "iban": OTHER_IBAN},
        headers=f.admin,
    )
    assert other.status_code == 201
    good = camt053([Movement(NOV, 1_000, "A", "a")])
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">&lol2;</Document>'
    )
    external = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "http://127.0.0.1:9/x">]>'
        b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">&x;</Document>'
    )
    cases = [
        (f"{f.base}/statements", good[: len(good) // 2], "line"),
        (f"{f.base}/statements", laughs, "DOCTYPE"),
        (f"{f.base}/statements", external, "DOCTYPE"),
        (f"{f.base}/statements", camt053([Movement(NOV, 1_000)], closing=5), "off by"),
        (f"{f.base}/statements", good.replace(b">10.00<", b">10.005<"), "decimals"),
        (f"{f.base}/statements", b"hello, world", ""),
        (f"{f.base}/bank-accounts/{other.json()['id']}/statements", good, IBAN),
    ]
    for path, body, words in cases:
        refused = await api.post(
            path, content=body, headers={**f.admin, "Content-Type": "application/xml"}
        )
        assert refused.status_code == 422, (words, refused.text)
        problem = refused.json()
        assert problem["type"].endswith("/statement-refused"), problem
        assert words.lower() in problem["detail"].lower(), (words, problem)
        assert problem["errors"][0]["pointer"] not in ("", "#")
    async with db.engine.connect() as conn:
        schema = f.tenant.schema
        counts = [
            await conn.scalar(text(f'SELECT count(*) FROM "{schema}".settlements_{t}'))
            for t in ("imports", "statements", "lines")
        ]
    assert counts == [0, 0, 0]


async def test_an_unknown_account_is_created_unconfirmed_then_confirmed_and_posted(
    api: Client, db: Database, settings: Settings
) -> None:
    f = await firm(api, db, settings, "set-unknown")
    body = camt053([Movement(NOV, 2_500, "A", "a")], iban=OTHER_IBAN, opening=100)
    async with running_worker(settings):
        result = await imported(api, f"{f.base}/statements", f.admin, body)
        assert result["status"] == "done" and result["lines_imported"] == 1
        account = (
            await api.get(f"{f.base}/bank-accounts/{result['bank_account']}", headers=f.admin)
        ).json()
        assert account["status"] == "unconfirmed" and account["iban"] == OTHER_IBAN
        assert await balance(api, "set-unknown", f.admin, "1110", "2026-11-30") == 0  # not posted
        early = await api.patch(
            f"{f.base}/bank-accounts/{account['id']}", json={"confirm": True}, headers=f.admin
        )
        assert early.status_code == 422 and "cash" in early.text
        confirmed = await api.patch(
            f"{f.base}/bank-accounts/{account['id']}",
            json={"confirm": True, "cash_account": "1110", "suspense_account": "1190"},
            headers=f.admin,
        )
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "active"
    assert await balance(api, "set-unknown", f.admin, "1110", "2026-11-30") == 2_500


async def test_matching_clears_invoices_and_bills_through_the_ledger(
    api: Client, db: Database, settings: Settings
) -> None:
    f = await firm(api, db, settings, "set-match")
    rf = make_rf("4711")
    inv1 = await issued(api, f, "invoices", invoice("INV-1001", 120_000, "Acme GmbH", reference=rf))
    inv2 = await issued(api, f, "invoices", invoice("INV-1002", 30_000, "Bolt Ltd"))
    inv3 = await issued(api, f, "invoices", invoice("INV-1003", 20_000, "Bolt Ltd"))
    bill = await issued(
        api,
        f,
        "bills",
        invoice("B-77", 4_550, "Stadtwerke", control_account="2100", account="6300"),
    )
    partial = await issued(api, f, "invoices", invoice("INV-1004", 80_000, "Cobalt SA"))
    assert await balance(api, "set-match", f.admin, "1200", "2026-10-31") == 250_000
    moves = [
        Movement(NOV, 119_800, "ACME G.M.B.H.", "payment", reference=rf),  # a 2.00 fee
        Movement(NOV + timedelta(days=1), 50_000, "Bolt Limited", "INV-1002 INV-1003"),
        Movement(NOV + timedelta(days=2), -4_550, "Stadtwerke", "B-77"),
        Movement(NOV + timedelta(days=2), 30_000, "Cobalt SA", "INV-1004 first part"),
        Movement(NOV + timedelta(days=3), 777, "Stranger", "no idea"),
    ]
    async with running_worker(settings):
        result = await imported(api, f"{f.base}/statements", f.admin, camt053(moves))
        assert result["status"] == "done"
        run = await api.post(f"{f.base}/matching/run", json={}, headers=f.admin)
    assert run.status_code == 200, run.text
    matches = (await api.get(f"{f.base}/matches?limit=50", headers=f.admin)).json()["items"]
    by_items = {tuple(sorted(p["id"] for p in m["items"])): m for m in matches}
    first = by_items[(inv1["id"],)]
    assert first["status"] == "confirmed" and first["fee"] == 200 and first["auto"]
    assert any(rf in reason for reason in first["reasons"])
    assert by_items[tuple(sorted([inv2["id"], inv3["id"]]))]["lines"][0]["amount"] == 50_000
    assert by_items[(bill["id"],)]["status"] == "confirmed"
    cobalt = by_items[(partial["id"],)]
    if cobalt["status"] == "suggested":
        confirmed = await api.post(f"{f.base}/matches/{cobalt['id']}/confirm", headers=f.admin)
        assert confirmed.status_code == 200 and confirmed.json()["status"] == "confirmed"
    again = await api.post(f"{f.base}/matches/{cobalt['id']}/confirm", headers=f.admin)
    assert again.status_code == 200 and again.json()["entry"] is not None  # posted once
    for m in matches:
        if m["status"] == "suggested" and m["id"] != cobalt["id"]:
            await api.post(f"{f.base}/matches/{m['id']}/confirm", headers=f.admin)
    items = {
        i["number"]: i
        for i in (await api.get(f"{f.base}/invoices", headers=f.admin)).json()["items"]
    }
    assert items["INV-1001"]["status"] == "paid" and items["INV-1003"]["status"] == "paid"
    assert (
        items["INV-1004"]["status"] == "partly_paid" and items["INV-1004"]["open_amount"] == 50_000
    )
    on = "2026-11-30"
    assert await balance(api, "set-match", f.admin, "1200", on) == 50_000  # INV-1004's rest
    assert await balance(api, "set-match", f.admin, "2100", on) == 0
    assert await balance(api, "set-match", f.admin, "6600", on) == 200  # the bank's fee
    assert await balance(api, "set-match", f.admin, "1190", on) == -777  # the stranger
    assert await balance(api, "set-match", f.admin, "1110", on) == sum(m.amount for m in moves)
    report = (
        await api.get(
            f"{f.base}/reconciliation?bank_account={f.account['id']}&as_of={on}", headers=f.admin
        )
    ).json()
    assert report["statement_balance"] == report["ledger_balance"] == sum(m.amount for m in moves)
    assert report["difference"] == 0 and report["explained"]
    assert report["unmatched_in"] == 777 and report["unmatched_count"] == 1
    assert report["receivables"]["days_1_30"] == 50_000
    csv_text = (
        await api.get(
            f"{f.base}/reconciliation/csv?bank_account={f.account['id']}&as_of={on}",
            headers=f.admin,
        )
    ).text
    assert "Stranger" in csv_text and "difference,0" in csv_text


async def test_manual_match_undo_and_write_off(
    api: Client, db: Database, settings: Settings
) -> None:
    f = await firm(api, db, settings, "set-manual")
    inv = await issued(api, f, "invoices", invoice("INV-9", 10_000, "Delta AG"))
    moves = [
        Movement(NOV, 9_000, "Someone", "?"),
        Movement(NOV, 1_000, "Someone", "?"),
        Movement(NOV, 55, "Bank", "interest"),
    ]
    async with running_worker(
        settings,
    ):
        result = await imported(api, f"{f.base}/statements", f.admin, camt53_unmatched(moves))
    [statement_id] = result["statements"]
    lines = await lines_of(api, f, statement_id)
    manual = await api.post(
        f"{f.base}/matches",
        json={
            "lines": [{"id": lines[0]["id"]}, {"id": lines[1]["id"]}],
            "items": [{"id": inv["id"]}],
        },
        headers=f.admin,
    )
    assert manual.status_code == 201, manual.text
    match = manual.json()
    assert match["status"] == "confirmed" and match["rule"] == "manual" and match["fee"] == 0
    assert await balance(api, "set-manual", f.admin, "1200", "2026-11-30") == 0
    twice = await api.post(
        f"{f.base}/matches",
        json={"lines": [{"id": lines[0]["id"]}], "items": [{"id": inv["id"]}]},
        headers=f.admin,
    )
    assert twice.status_code == 409
    undone = await api.post(
        f"{f.base}/matches/{match['id']}/undo", json={"note": "wrong payer"}, headers=f.admin
    )
    assert undone.status_code == 200 and undone.json()["status"] == "undone"
    assert undone.json()["reversal_entry"] is not None
    assert await balance(api, "set-manual", f.admin, "1200", "2026-11-30") == 10_000
    reopened = (await api.get(f"{f.base}/statements/{statement_id}/lines", headers=f.admin)).json()[
        "items"
    ]
    assert [ln["status"] for ln in reopened[:2]] == ["unmatched", "unmatched"]
    undo_again = await api.post(f"{f.base}/matches/{match['id']}/undo", json={}, headers=f.admin)
    assert undo_again.status_code == 409
    off = await api.post(
        f"{f.base}/matches",
        json={"lines": [{"id": lines[2]["id"]}], "write_off_account": "4900", "note": "interest"},
        headers=f.admin,
    )
    assert off.status_code == 201 and off.json()["rule"] == "write_off"
    assert await balance(api, "set-manual", f.admin, "4900", "2026-11-30") == 55
    too_much = await api.post(
        f"{f.base}/matches",
        json={
            "lines": [{"id": lines[0]["id"]}, {"id": lines[1]["id"]}],
            "items": [{"id": inv["id"], "amount": 2_000}],
        },
        headers=f.admin,
    )
    assert too_much.status_code == 422 and "exceed" in too_much.text
    # Across currencies: refused, nothing posted.
    usd = await issued(
        api,
        f,
        "expected-payments",
        {
            "direction": "in",
            "counterparty": "Yankee Inc",
            "expected_on": "2026-11-02",
            "amount": 9_000,
            "currency": "USD",
            "account": "4900",
        },
    )
    mixed = await api.post(
        f"{f.base}/matches",
        json={"lines": [{"id": lines[0]["id"]}], "items": [{"id": usd["id"]}]},
        headers=f.admin,
    )
    assert mixed.status_code == 422 and mixed.json()["type"].endswith("/currency-mismatch")


def camt53_unmatched(moves: list[Movement]) -> bytes:
    return camt053(moves, statement_id="MANUAL")


async def test_open_items_are_checked(api: Client, db: Database, settings: Settings) -> None:
    f = await firm(api, db, settings, "set-items")
    cases = [
        (invoice("I-1", 100, "A", due_date="2026-10-01"), "#/due_date"),
        (invoice("I-2", 100, "A", control_account="4100"), "#/control_account"),
        (invoice("I-3", 100, "A", reference="RF19539007547034"), "#/reference"),
        (invoice("I-4", 100, "A", currency="EURO"), "currency"),
        (invoice("I-5", -5, "A"), "amount"),
    ]
    for body, where in cases:
        refused = await api.post(f"{f.base}/invoices", json=body, headers=f.admin)
        assert refused.status_code in (400, 422), refused.text
        assert where in refused.text
    await issued(api, f, "invoices", invoice("I-6", 100, "A"))
    duplicate = await api.post(f"{f.base}/invoices", json=invoice("I-6", 100, "A"), headers=f.admin)
    assert duplicate.status_code == 409
    bad_range = await api.post(
        f"{f.base}/expected-payments",
        json={
            "direction": "in",
            "counterparty": "X",
            "expected_on": "2026-11-02",
            "amount": 100,
            "amount_min": 200,
            "currency": "EUR",
            "account": "4900",
        },
        headers=f.admin,
    )
    assert bad_range.status_code == 422 and "#/amount_min" in bad_range.text


async def test_scopes_and_a_reconciliation_task(
    api: Client, db: Database, settings: Settings
) -> None:
    f = await firm(api, db, settings, "set-scopes")
    reader = bearer(await client_token(db, settings, f.tenant, ["settlements:read"]))
    assert (await api.get(f"{f.base}/bank-accounts", headers=reader)).status_code == 200
    denied = await api.post(f"{f.base}/invoices", json=invoice("I-1", 100, "A"), headers=reader)
    assert denied.status_code == 403
    writer = bearer(
        await client_token(db, settings, f.tenant, ["settlements:read", "settlements:write"])
    )
    not_admin = await api.post(
        f"{f.base}/bank-accounts",
        json={"name": "x", "currency": "EUR", "iban": OTHER_IBAN},
        headers=writer,
    )
    assert not_admin.status_code == 403
    async with db.sessionmaker.begin() as session:
        await seed_catalog(session)  # the provider's catalog offers "bank-reconciliation"
    task = await api.post(
        f"{f.base}/reconciliation/tasks",
        json={"bank_account": f.account["id"], "period": "2026-11"},
        headers=writer,
    )
    assert task.status_code == 201, task.text
    request = await api.get(
        f"/v1/tenants/set-scopes/work/requests/{task.json()['request_id']}", headers=f.admin
    )
    assert request.status_code == 200 and request.json()["service"] == "bank-reconciliation"


async def test_another_firm_gets_404_and_the_database_refuses(
    api: Client, db: Database, settings: Settings
) -> None:
    a = await firm(api, db, settings, "set-iso-a")
    b = await firm(api, db, settings, "set-iso-b")
    inv = await issued(api, b, "invoices", invoice("INV-B", 1_000, "B's customer"))
    async with running_worker(settings):
        result = await imported(
            api, f"{b.base}/statements", b.admin, camt053([Movement(NOV, 1_000, "X", "INV-B")])
        )
    statement_id = result["statements"][0]
    line_id = (await lines_of(api, b, statement_id))[0]["id"]

    async def unchanged() -> Any:
        got = await api.get(f"{b.base}/invoices", headers=b.admin)
        return got.json()

    mine = a.base
    paths = [
        ("GET", f"{mine}/bank-accounts/{b.account['id']}", {}),
        ("PATCH", f"{mine}/bank-accounts/{b.account['id']}", {"json": {"name": "mine"}}),
        ("POST", f"{mine}/bank-accounts/{b.account['id']}/statements", {"content": b"x"}),
        ("GET", f"{mine}/imports/{result['id']}", {}),
        ("GET", f"{mine}/statements/{statement_id}", {}),
        ("GET", f"{mine}/statements/{statement_id}/lines", {}),
        (
            "POST",
            f"{mine}/matches",
            {"json": {"lines": [{"id": line_id}], "items": [{"id": inv["id"]}]}},
        ),
        ("GET", f"{mine}/reconciliation?bank_account={b.account['id']}&as_of=2026-11-30", {}),
        ("GET", f"{b.base}/invoices", {}),  # B's path with A's token
        ("GET", f"{b.base}/ledger-items", {}),
        ("GET", f"{b.base}/matches", {}),
        ("POST", f"{b.base}/matching/run", {"json": {}}),
    ]
    for method, path, extra in paths:
        await assert_cross_tenant_404(
            api, method, path, unchanged=unchanged, headers=a.admin, **extra
        )
    async with db.engine.connect() as conn:
        await conn.execute(text(f'SET ROLE "{a.tenant.role}"'))
        with pytest.raises(Exception, match="permission denied"):
            await conn.execute(text(f'SELECT * FROM "{b.tenant.schema}".settlements_lines'))
        await conn.rollback()
        await conn.execute(text(f'SET ROLE "{a.tenant.role}"'))
        with pytest.raises(Exception, match="permission denied"):
            await conn.execute(text(f'UPDATE "{b.tenant.schema}".settlements_items SET amount = 1'))
        await conn.rollback()


SAMPLES = Path(__file__).parent / "data" / "statements"
# Real files refused, each naming its place: broken on purpose, balances that do not add up
# in the file itself, a withdrawn currency (DEM), no statement, a CSV without a mapping.
REFUSED = {
    "camt053.v2.minimal.xml": "Stmt[1]", "camt053.v4.xml": "Stmt[1]",
    "camt053.v8.xml": "Stmt[1]", "camt053.v2.wrong.xml": "BkToCstmrStmt",
    "sample.csv": "file", "cmxl-mt940.sta": "line 4", "sepa_snippet.sta": "line 25",
    "sepa_snippet_broken.sta": "line 6", "bank_small.ofx": "file",
    "decimal_error.ofx": "STMTRS 1/STMTTRN 1/TRNAMT",
}  # fmt: skip


async def test_every_real_sample_imports_once_or_is_refused_naming_the_place(
    api: Client, db: Database, settings: Settings
) -> None:
    f = await firm(api, db, settings, "set-samples")
    files = sorted(p for p in SAMPLES.glob("*/*") if p.name not in ("LICENSE", "README.md"))
    assert len(files) >= 17
    async with running_worker(settings):
        for path in files:
            body = path.read_bytes()
            if path.name in REFUSED:
                refused = await api.post(f"{f.base}/statements", content=body, headers=f.admin)
                assert refused.status_code == 422, (path.name, refused.text)
                assert refused.json()["errors"][0]["pointer"] == REFUSED[path.name], path.name
                continue
            first = await imported(api, f"{f.base}/statements", f.admin, body)
            again = await imported(api, f"{f.base}/statements", f.admin, body)
            assert first["status"] == again["status"] == "done", (path.name, first, again)
            assert first["lines_imported"] > 0, path.name
            assert again["lines_imported"] == 0, path.name  # a re-import adds nothing
            assert again["lines_skipped"] == first["lines_imported"], path.name
