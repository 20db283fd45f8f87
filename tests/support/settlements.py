"""Settlement test helpers: a firm with its books and a confirmed bank account, camt.053
statements written for a test (balances that add up), and an import awaited to its end."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape

from litestar import Litestar
from litestar.testing import AsyncTestClient

from bpo.core.db import Database
from bpo.core.tenancy import TenantContext
from bpo.settings import Settings
from tests.support.auth import admin_of
from tests.support.jobs import wait_for
from tests.support.tenants import make_tenant

Client = AsyncTestClient[Litestar]
IBAN = "DE89370400440532013000"
OTHER_IBAN = "GB29NWBK60161331926819"


@dataclass(frozen=True)
class Firm:
    tenant: TenantContext
    admin: dict[str, str]
    base: str
    account: dict[str, Any]


async def firm(api: Client, db: Database, settings: Settings, slug: str, **account: Any) -> Firm:
    """A firm with the starter chart, and a confirmed EUR bank account (1110 cash, 1190
    suspense, 6600 bank charges; fees up to 5.00 EUR)."""
    tenant = await make_tenant(db, slug)
    admin = await admin_of(db, settings, tenant)
    applied = await api.post(f"/v1/tenants/{slug}/ledger/chart/apply", json={}, headers=admin)
    assert applied.status_code == 200, applied.text
    base = f"/v1/tenants/{slug}/settlements"
    body = {
        "name": "Main account", "currency": "EUR", "iban": IBAN, "bic": "COBADEFFXXX",
        "cash_account": "1110", "suspense_account": "1190", "fee_account": "6600",
        "rules": {"fee_tolerance": 500},
    } | account  # fmt: skip
    made = await api.post(f"{base}/bank-accounts", json=body, headers=admin)
    assert made.status_code == 201, made.text
    return Firm(tenant, admin, base, made.json())


@dataclass(frozen=True)
class Movement:
    """A statement line: amount in EUR cents (money in > 0)."""

    day: date
    amount: int
    name: str = ""
    text: str = ""
    reference: str | None = None  # a structured creditor reference
    bank_ref: str | None = None
    reversal: bool = False
    end_to_end: str | None = None


def _money(cents: int) -> str:
    return str(Decimal(abs(cents)).scaleb(-2).quantize(Decimal("0.01")))


def _entry(n: int, m: Movement, currency: str) -> str:
    side = "CRDT" if m.amount > 0 else "DBIT"
    party = "Dbtr" if m.amount > 0 else "Cdtr"
    strd = f"<Strd><CdtrRefInf><Ref>{m.reference}</Ref></CdtrRefInf></Strd>" if m.reference else ""
    reversal = "<RvslInd>true</RvslInd>" if m.reversal else ""
    return (
        f'<Ntry><NtryRef>{n}</NtryRef><Amt Ccy="{currency}">{_money(m.amount)}</Amt>'
        f"<CdtDbtInd>{side}</CdtDbtInd>{reversal}<Sts>BOOK</Sts>"
        f"<BookgDt><Dt>{m.day}</Dt></BookgDt><ValDt><Dt>{m.day}</Dt></ValDt>"
        f"<AcctSvcrRef>{m.bank_ref or f'BANK-{m.day:%Y%m%d}-{n:05d}'}</AcctSvcrRef>"
        "<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly>"
        "</Domn></BkTxCd><NtryDtls><TxDtls>"
        f"<Refs><EndToEndId>{escape(m.end_to_end or 'NOTPROVIDED')}</EndToEndId></Refs>"
        f"<RltdPties><{party}><Nm>{escape(m.name)}</Nm></{party}></RltdPties>"
        f"<RmtInf><Ustrd>{escape(m.text)}</Ustrd>{strd}</RmtInf></TxDtls></NtryDtls></Ntry>"
    )


def camt053(
    movements: list[Movement],
    *,
    opening: int = 0,
    iban: str = IBAN,
    currency: str = "EUR",
    statement_id: str = "STMT-1",
    closing: int | None = None,
) -> bytes:
    """A camt.053.001.02 statement of `movements`; the closing balance adds up unless given."""
    first = min(m.day for m in movements)
    last = max(m.day for m in movements)
    close = opening + sum(m.amount for m in movements) if closing is None else closing

    def balance(code: str, cents: int, day: date) -> str:
        side = "CRDT" if cents >= 0 else "DBIT"
        return (
            f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp>"
            f'<Amt Ccy="{currency}">{_money(cents)}</Amt><CdtDbtInd>{side}</CdtDbtInd>'
            f"<Dt><Dt>{day}</Dt></Dt></Bal>"
        )

    entries = "".join(_entry(n, m, currency) for n, m in enumerate(movements, start=1))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>'
        f"<GrpHdr><MsgId>MSG-{statement_id}</MsgId><CreDtTm>{last}T18:00:00</CreDtTm></GrpHdr>"
        f"<Stmt><Id>{statement_id}</Id><CreDtTm>{last}T18:00:00</CreDtTm>"
        f"<Acct><Id><IBAN>{iban}</IBAN></Id><Ccy>{currency}</Ccy></Acct>"
        f"{balance('OPBD', opening, first)}{balance('CLBD', close, last)}{entries}"
        "</Stmt></BkToCstmrStmt></Document>"
    ).encode()


async def imported(
    api: Client, path: str, headers: dict[str, str], body: bytes, **extra: Any
) -> dict[str, Any]:
    """Upload a statement file and wait for its import to finish; the import's result."""
    if "files" in extra:  # a multipart form, as a browser sends it
        started = await api.post(path, headers=headers, **extra)
    else:
        raw = {**headers, "Content-Type": "application/octet-stream"}
        started = await api.post(path, content=body, headers=raw, **extra)
    assert started.status_code == 202, started.text
    location = started.headers["location"]
    result: dict[str, Any] = {}

    async def finished() -> bool:
        result.update((await api.get(location, headers=headers)).json())
        return result["status"] in ("done", "failed")

    await wait_for(finished, timeout=60)
    return result


async def balance(api: Client, slug: str, headers: dict[str, str], code: str, on: str) -> int:
    got = await api.get(
        f"/v1/tenants/{slug}/ledger/accounts/{code}/balance?as_of={on}", headers=headers
    )
    assert got.status_code == 200, got.text
    return sum(b["balance"] for b in got.json()["balances"])
