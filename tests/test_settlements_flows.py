"""Settlements end to end: lines on reconcilable ledger accounts as open items, a bank's CSV
export uploaded as a browser would (multipart) through its saved mapping, and a generated
set of thousands of items and payments matched through the API and the ledger, after which
the books agree with the bank."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from bpo.core.db import Database
from bpo.core.tenancy import tenant_session
from bpo.settings import Settings
from bpo.settlements import items as item_service
from bpo.settlements.matching import OpenItem
from bpo.settlements.schemas import ExpectedIn, InvoiceIn
from bpo.settlements.synthetic import labelled_set
from tests.conftest import build_app
from tests.support.jobs import running_worker
from tests.support.settlements import Firm, Movement, balance, camt053, firm, imported

Client = AsyncTestClient[Litestar]
NOV = date(2026, 11, 2)


@pytest.fixture
async def api(settings: Settings, db: Database) -> AsyncIterator[Client]:
    async with AsyncTestClient(app=build_app(settings)) as client:
        yield client


async def every(api: Client, f: Firm, path: str) -> list[dict[str, Any]]:
    """Every row of a paginated list."""
    rows: list[dict[str, Any]] = []
    cursor = ""
    while True:
        got = await api.get(f"{f.base}/{path}?limit=500{cursor}", headers=f.admin)
        assert got.status_code == 200, got.text
        page = got.json()
        rows += page["items"]
        if not page["next_cursor"]:
            return rows
        cursor = f"&cursor={page['next_cursor']}"


async def test_lines_on_a_reconcilable_account_are_settled_by_the_bank(
    api: Client, db: Database, settings: Settings
) -> None:
    f = await firm(api, db, settings, "set-ledger-items")
    ledger = "/v1/tenants/set-ledger-items/ledger"
    made = await api.post(
        f"{ledger}/accounts",
        json={"code": "1160", "name": "Money in transit", "type": "asset", "reconcilable": True},
        headers=f.admin,
    )
    assert made.status_code == 201 and made.json()["reconcilable"] is True, made.text

    async def booked(amount: int, reference: str) -> dict[str, Any]:
        entry = {
            "effective_on": "2026-10-30", "description": f"Transfer {reference}",
            "reference": reference, "lines": [
                {"account": "1160", "currency": "EUR", "debit": amount,
                 "counterparty": "Acme Treasury"},
                {"account": "4100", "currency": "EUR", "credit": amount},
            ],
        }  # fmt: skip
        posted = await api.post(f"{ledger}/entries", json=entry, headers=f.admin)
        assert posted.status_code == 201, posted.text
        return dict(posted.json())

    await booked(30_000, "TRF-77")
    undone = await booked(12_345, "TRF-78")
    back = await api.post(f"{ledger}/entries/{undone['id']}/reverse", json={}, headers=f.admin)
    assert back.status_code in (200, 201), back.text
    statement = camt053([Movement(NOV, 30_000, "ACME TREASURY", "TRF-77 transfer")])
    async with running_worker(settings):
        done = await imported(api, f"{f.base}/bank-accounts/{f.account['id']}/statements",
                              f.admin, statement)  # fmt: skip
    assert done["lines_imported"] == 1, done
    # The import queued a matching run of its own; this one finds what that one left.
    run = await api.post(f"{f.base}/matching/run", json={}, headers=f.admin)
    assert run.status_code == 200, run.text
    for m in await every(api, f, "matches"):
        if m["status"] == "suggested":
            ok = await api.post(f"{f.base}/matches/{m['id']}/confirm", json={}, headers=f.admin)
            assert ok.status_code == 200, ok.text
    [match] = await every(api, f, "matches")
    assert match["status"] == "confirmed" and len(match["items"]) == 1, match
    pulled = {i["number"].split("/")[0]: i for i in await every(api, f, "ledger-items")}
    assert sorted(i["status"] for i in pulled.values()) == ["cancelled", "paid"], pulled
    assert [i["amount"] for i in pulled.values() if i["status"] == "paid"] == [30_000]
    assert await balance(api, "set-ledger-items", f.admin, "1160", "2026-11-30") == 0
    assert await balance(api, "set-ledger-items", f.admin, "1190", "2026-11-30") == 0
    again = await api.post(f"{f.base}/matching/run", json={}, headers=f.admin)
    assert again.json()["items_considered"] == 0  # each ledger line is pulled once
    flag_off = await api.patch(
        f"{ledger}/accounts/1160", json={"reconcilable": False}, headers=f.admin
    )
    assert flag_off.status_code == 200 and flag_off.json()["reconcilable"] is False


CSV_MAPPING = {
    "date": "Buchungstag", "amount": "Betrag", "description": "Verwendungszweck",
    "counterparty": "Auftraggeber", "date_format": "%d.%m.%Y", "decimal": ",",
    "delimiter": ";",
}  # fmt: skip
CSV = (
    "Buchungstag;Betrag;Verwendungszweck;Auftraggeber\n"
    "02.11.2026;1.234,56;Rechnung 4711;Müller Logistik GmbH\n"
    "03.11.2026;-45,10;Strom Oktober;Stadtwerke\n"
).encode()


async def test_a_csv_export_uploaded_as_a_form_goes_through_the_saved_mapping(
    api: Client, db: Database, settings: Settings
) -> None:
    f = await firm(api, db, settings, "set-csv", csv_mapping=CSV_MAPPING)
    path = f"{f.base}/bank-accounts/{f.account['id']}/statements"
    async with running_worker(settings):
        form = {"file": ("umsaetze.csv", CSV, "text/csv")}
        first = await imported(api, path, f.admin, CSV, files=form)
        assert first["status"] == "done" and first["lines_imported"] == 2, first
        done = await imported(api, path, f.admin, CSV)  # the same lines again, as a raw body
    assert done["status"] == "done" and done["lines_imported"] == 0, done
    assert done["lines_skipped"] == 2, done
    [statement] = done["statements"]
    lines = await every(api, f, f"statements/{statement}/lines")
    assert [(ln["amount"], ln["counterparty_name"]) for ln in lines] == [
        (123_456, "Müller Logistik GmbH"),
        (-4_510, "Stadtwerke"),
    ]
    assert await balance(api, "set-csv", f.admin, "1110", "2026-11-30") == 123_456 - 4_510
    wrong = {**CSV_MAPPING, "reference": "Kundenreferenz"}
    patched = await api.patch(
        f"{f.base}/bank-accounts/{f.account['id']}", json={"csv_mapping": wrong}, headers=f.admin
    )
    assert patched.status_code == 200, patched.text
    refused = await api.post(path, files={"file": ("x.csv", CSV, "text/csv")}, headers=f.admin)
    assert refused.status_code == 422, refused.text
    assert "Kundenreferenz" in refused.json()["detail"]
    no_file = await api.post(path, files={"other": ("x.csv", CSV, "text/csv")}, headers=f.admin)
    assert no_file.status_code in (400, 422) and "file" in no_file.json()["detail"]
    async with db.engine.connect() as conn:
        count = await conn.scalar(
            text(f'SELECT count(*) FROM "{f.tenant.schema}".settlements_lines')
        )
    assert count == 2


def _invoice(item: OpenItem, kind: str) -> InvoiceIn:
    control, account = ("1200", "4100") if kind == "invoice" else ("2100", "6300")
    return InvoiceIn(
        number=item.id, counterparty=str(item.counterparty_name),
        issue_date=item.due_on - timedelta(days=14), due_date=item.due_on,
        amount=abs(item.amount), currency=item.currency, control_account=control,
        account=account, reference=item.reference,
    )  # fmt: skip


def _expected(item: OpenItem) -> ExpectedIn:
    low, high = sorted(
        abs(a) for a in (item.amount_min or item.amount, item.amount_max or item.amount)
    )
    return ExpectedIn(
        direction="in" if item.amount > 0 else "out", number=item.id,
        counterparty=str(item.counterparty_name), expected_on=item.due_on,
        amount=abs(item.amount), amount_min=low, amount_max=high,
        window_days=item.window_days, currency=item.currency,
        account="4100" if item.amount > 0 else "6300", reference=item.reference,
        end_to_end_id=item.end_to_end_id,
    )  # fmt: skip


async def test_a_generated_set_is_matched_and_the_books_agree_with_the_bank(
    api: Client, db: Database, settings: Settings
) -> None:
    lines, open_items, truth = labelled_set(2_000, seed=7)
    f = await firm(api, db, settings, "set-generated")
    async with tenant_session(db.engine, f.tenant) as session:
        for item in open_items:
            if item.kind == "expected":
                await item_service.expect(session, f.tenant, "user:test", _expected(item))
            else:
                await item_service.issue(session, f.tenant, "user:test", item.kind,
                                         _invoice(item, item.kind))  # fmt: skip
    moves = [
        Movement(ln.booked_on, ln.amount, ln.counterparty_name or "", ln.description,
                 reference=ln.creditor_reference, reversal=ln.reversal,
                 end_to_end=ln.end_to_end_id, bank_ref=ln.id)
        for ln in lines
    ]  # fmt: skip
    path = f"{f.base}/bank-accounts/{f.account['id']}/statements"
    async with running_worker(settings):
        done = await imported(api, path, f.admin, camt053(moves))
    assert done["status"] == "done" and done["lines_imported"] == len(lines), done
    run = await api.post(f"{f.base}/matching/run", json={}, headers=f.admin)
    assert run.status_code == 200, run.text

    [statement] = done["statements"]
    bank_lines = await every(api, f, f"statements/{statement}/lines")
    line_of = {ln["id"]: ln["bank_reference"] for ln in bank_lines}
    every_item = [
        i for kind in ("invoices", "bills", "expected-payments") for i in await every(api, f, kind)
    ]
    item_of = {i["id"]: i["number"] for i in every_item}
    matches = await every(api, f, "matches")
    pairs = {
        m["id"]: (
            frozenset(line_of[p["id"]] for p in m["lines"]),
            frozenset(item_of[p["id"]] for p in m["items"]),
        )
        for m in matches
    }
    recall = len(truth & set(pairs.values())) / len(truth)
    auto = [pairs[m["id"]] for m in matches if m["auto"]]
    precision = sum(p in truth for p in auto) / len(auto)
    print(f"generated set through the API: recall {recall:.4f}, auto precision {precision:.4f}")
    assert recall >= 0.95 and precision >= 0.995
    assert all(m["status"] == ("confirmed" if m["auto"] else "suggested") for m in matches)

    # The books agree with the bank: cash is the statement's closing balance, suspense holds
    # the lines still open, the control accounts the items still open.
    on = max(ln.booked_on for ln in lines).isoformat()
    assert await balance(api, "set-generated", f.admin, "1110", on) == sum(
        ln.amount for ln in lines
    )
    assert await balance(api, "set-generated", f.admin, "1190", on) == -sum(
        ln["open_amount"] for ln in bank_lines
    )
    owed = {
        kind: sum(i["open_amount"] for i in await every(api, f, kind))
        for kind in ("invoices", "bills")
    }
    assert await balance(api, "set-generated", f.admin, "1200", on) == owed["invoices"]
    assert await balance(api, "set-generated", f.admin, "2100", on) == owed["bills"]
    assert sum(1 for ln in bank_lines if ln["open_amount"] == 0) >= 0.8 * len(bank_lines)
