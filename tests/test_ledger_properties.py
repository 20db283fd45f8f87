"""Properties of the books under any interleaving (Hypothesis): post, reverse, lock, retry
with an Idempotency-Key, bulk batches (one bad entry refuses all) and spending from an
account that must not go below zero.

After every operation the API's balances equal a model kept here, and after every example
the trial balance's debits equal its credits per currency and `verify` recomputes every
maintained balance from the lines without a difference.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import AsyncTestClient

from bpo.core.db import Database
from bpo.settings import Settings
from tests.conftest import build_app
from tests.support.auth import admin_of
from tests.support.tenants import make_tenant

Client = AsyncTestClient[Litestar]
BASE = "/v1/tenants/ledger-props/ledger"
START = date(2026, 11, 1)
PAIRS = [("1200", "4100"), ("1110", "2100"), ("6200", "1110"), ("1300", "3100")]
GUARDED = "1120"  # petty cash: must not go below zero
CURRENCIES = ["EUR", "USD"]


@dataclass
class Books:
    api: Client
    admin: dict[str, str]


@pytest.fixture
async def books(settings: Settings, db: Database) -> AsyncIterator[Books]:
    async with AsyncTestClient(app=build_app(settings)) as api:
        tenant = await make_tenant(db, "ledger-props")
        admin = await admin_of(db, settings, tenant)
        assert (await api.post(f"{BASE}/chart/apply", json={}, headers=admin)).status_code == 200
        rates = {"rates": [{"currency": "USD", "on": "2026-01-01", "rate": "0.9137"}]}
        assert (await api.put(f"{BASE}/rates", json=rates, headers=admin)).status_code == 200
        etag = (await api.get(f"{BASE}/accounts/{GUARDED}", headers=admin)).headers["etag"]
        guarded = await api.patch(
            f"{BASE}/accounts/{GUARDED}",
            json={"min_balance": 0},
            headers={**admin, "If-Match": etag},
        )
        assert guarded.status_code == 200
        yield Books(api, admin)


@dataclass
class Model:
    """What the balances must be: natural-sign balance per (account, currency)."""

    balances: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    posted: list[dict[str, Any]] = field(default_factory=list)  # entries that can be reversed
    reversed: set[str] = field(default_factory=set)
    lock: date | None = None
    sent: list[tuple[str, dict[str, Any], dict[str, Any]]] = field(default_factory=list)


SIGN = {"1": 1, "2": -1, "3": -1, "4": -1, "5": 1, "6": 1}  # debit-normal: assets, expenses


def effect(lines: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = defaultdict(int)
    for ln in lines:
        amount = ln.get("debit") or -ln.get("credit", 0)
        out[(ln["account"], ln["currency"])] += SIGN[ln["account"][0]] * amount
    return out


def body(day: int, pair: tuple[str, str], amount: int, currency: str) -> dict[str, Any]:
    debit, credit = pair
    return {
        "effective_on": (START + timedelta(days=day)).isoformat(),
        "description": "property",
        "lines": [
            {"account": debit, "debit": amount, "currency": currency},
            {"account": credit, "credit": amount, "currency": currency},
        ],
    }


def allowed(model: Model, entry: dict[str, Any]) -> bool:
    """Would the books accept it: after the lock date, petty cash not below zero."""
    if model.lock is not None and date.fromisoformat(entry["effective_on"]) <= model.lock:
        return False
    change = effect(entry["lines"])
    return all(
        model.balances[key] + delta >= 0 for key, delta in change.items() if key[0] == GUARDED
    )


def apply(model: Model, entry: dict[str, Any], answer: dict[str, Any]) -> None:
    for key, delta in effect(entry["lines"]).items():
        model.balances[key] += delta
    model.posted.append({"id": answer["id"], "entry": entry})


async def post(books: Books, model: Model, entry: dict[str, Any], key: str | None) -> None:
    headers = {**books.admin, **({"Idempotency-Key": key} if key else {})}
    reply = await books.api.post(f"{BASE}/entries", json=entry, headers=headers)
    if allowed(model, entry):
        assert reply.status_code == 201, reply.text
        apply(model, entry, reply.json())
        if key:
            model.sent.append((key, entry, reply.json()))
    else:
        assert reply.status_code == 422, reply.text
        assert reply.json()["type"].rsplit("/", 1)[1] in ("period-locked", "balance-condition")


async def retry(books: Books, model: Model, index: int) -> None:
    if not model.sent:
        return
    key, entry, first = model.sent[index % len(model.sent)]
    again = await books.api.post(
        f"{BASE}/entries", json=entry, headers={**books.admin, "Idempotency-Key": key}
    )
    assert again.status_code == 201 and again.json()["id"] == first["id"]  # one effect


async def reverse(books: Books, model: Model, index: int) -> None:
    if not model.posted:
        return
    target = model.posted[index % len(model.posted)]
    mirror = {
        "effective_on": target["entry"]["effective_on"],
        "lines": [
            {
                "account": ln["account"],
                "currency": ln["currency"],
                **({"credit": ln["debit"]} if "debit" in ln else {"debit": ln["credit"]}),
            }
            for ln in target["entry"]["lines"]
        ],
    }
    reply = await books.api.post(
        f"{BASE}/entries/{target['id']}/reverse", json={}, headers=books.admin
    )
    if target["id"] in model.reversed:
        assert reply.status_code == 409, reply.text
    elif allowed(model, mirror):
        assert reply.status_code == 201, reply.text
        model.reversed.add(target["id"])
        for key, delta in effect(mirror["lines"]).items():
            model.balances[key] += delta
    else:
        assert reply.status_code == 422, reply.text


async def bulk(books: Books, model: Model, entries: list[dict[str, Any]], bad: bool) -> None:
    batch = [*entries, body(27, PAIRS[0], 1, "EUR")]
    if bad:  # one unbalanced entry refuses the whole batch
        batch[-1]["lines"][1]["credit"] = 2
    reply = await books.api.post(
        f"{BASE}/entries/batch", json={"entries": batch}, headers=books.admin
    )
    # A batch is one change of the books: the lock date applies to each entry, the balance
    # condition to the balances the whole batch ends with (no other state is ever seen).
    net = {"effective_on": "2999-12-31", "lines": [ln for e in batch for ln in e["lines"]]}
    ok = not bad and _after_lock(model, batch) and allowed(Model(model.balances), net)
    if ok:
        assert reply.status_code == 201, reply.text
        for entry, answer in zip(batch, reply.json()["entries"], strict=True):
            apply(model, entry, answer)
    else:
        assert reply.status_code == 422, reply.text


def _after_lock(model: Model, batch: list[dict[str, Any]]) -> bool:
    return model.lock is None or all(
        date.fromisoformat(e["effective_on"]) > model.lock for e in batch
    )


async def lock(books: Books, model: Model, day: int | None) -> None:
    target = None if day is None else START + timedelta(days=day)
    reply = await books.api.put(
        f"{BASE}/lock-date", json={"lock_date": target and target.isoformat()}, headers=books.admin
    )
    assert reply.status_code == 200, reply.text
    model.lock = target


async def check_balances(books: Books, model: Model) -> None:
    for code in {code for code, _ in model.balances}:
        shown = (await books.api.get(f"{BASE}/accounts/{code}", headers=books.admin)).json()
        got = {b["currency"]: b["balance"] for b in shown["balances"]}
        for (account, currency), want in model.balances.items():
            if account == code:
                assert got.get(currency, 0) == want, (code, currency, got, want)


ENTRY = st.builds(
    body,
    day=st.integers(0, 27),
    pair=st.sampled_from([*PAIRS, ("1120", "3100"), ("6900", "1120")]),
    amount=st.integers(1, 50_000),
    currency=st.sampled_from(CURRENCIES),
)
OPERATION = st.one_of(
    st.tuples(st.just("post"), ENTRY, st.booleans()),
    st.tuples(st.just("retry"), st.integers(0, 20)),
    st.tuples(st.just("reverse"), st.integers(0, 20)),
    st.tuples(st.just("bulk"), st.lists(ENTRY, min_size=1, max_size=4), st.booleans()),
    st.tuples(st.just("lock"), st.one_of(st.none(), st.integers(0, 27))),
)


@hypothesis_settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=st.lists(OPERATION, min_size=1, max_size=14))
async def test_any_interleaving_keeps_the_books_balanced(
    books: Books, operations: list[tuple[Any, ...]]
) -> None:
    await lock(books, Model(), None)
    model = Model()
    for code in {c for pair in [*PAIRS, ("1120", "6900")] for c in pair} | {"3100"}:
        shown = (await books.api.get(f"{BASE}/accounts/{code}", headers=books.admin)).json()
        for b in shown["balances"]:
            model.balances[(code, b["currency"])] = b["balance"]
    for op in operations:
        kind = op[0]
        if kind == "post":
            await post(books, model, op[1], uuid.uuid4().hex if op[2] else None)
        elif kind == "retry":
            await retry(books, model, op[1])
        elif kind == "reverse":
            await reverse(books, model, op[1])
        elif kind == "bulk":
            await bulk(books, model, op[1], op[2])
        else:
            await lock(books, model, op[1])
        await check_balances(books, model)
    trial = (
        await books.api.get(f"{BASE}/trial-balance?as_of=2026-12-31", headers=books.admin)
    ).json()
    for total in trial["totals"]:
        assert total["debit"] == total["credit"], total
    assert trial["functional_totals"]["debit"] == trial["functional_totals"]["credit"]
    verified = (await books.api.get(f"{BASE}/verify", headers=books.admin)).json()
    assert verified["ok"] is True, verified
