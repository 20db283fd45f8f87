"""The weighted mix: what firms and staff do, and the connections that do it.

Each connection is one keep-alive HTTP/1.1 connection (benchmarks/load/client.py) that
loops until the time is up: it draws an action by weight, for a firm drawn at random (or a
staff member), and runs it; some actions are two requests (an upload then its download;
a claim then the task's completion). Closed loop: the next action starts when the last one
has its answer, so the offered load follows what the system serves.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import date, timedelta
from xml.sax.saxutils import escape

from benchmarks.load.client import Connection, Reply, basic, bearer, json_body, multipart
from benchmarks.load.stats import Recorder
from benchmarks.load.world import IBAN, RECORD_CLASS, SERVICE, Firm, World

# Listed names (OFAC SDN) and names that are not, as a firm's counterparties spell them.
NAMES = ("Abu Zubaydah", "Banco Nacional de Cuba", "Maria Schneider", "Acme Trading GmbH",
         "Hassan Nasrallah", "Kim Jong Un", "Johann Müller", "Aerocaribbean Airlines",
         "Northwind Traders Ltd", "Contoso Pharmaceuticals", "Erik Lindqvist AB",
         "Grupo Industrial Saltillo")  # fmt: skip
PAIRS = (("1200", "4100"), ("1110", "1200"), ("6200", "1110"), ("6400", "2100"),
         ("2100", "1110"), ("5100", "2100"), ("6100", "2300"), ("1300", "1110"))  # fmt: skip
DOCUMENT_BYTES = 16 * 1024
STATEMENT_LINES = 3


class Ctx:
    """One connection's state: its socket, the shared world and recorder, its own dice."""

    def __init__(self, port: int, world: World, rec: Recorder, rng: random.Random) -> None:
        self.conn = Connection("127.0.0.1", port)
        self.world, self.rec, self.rng = world, rec, rng

    def firm(self) -> Firm:
        return self.rng.choice(self.world.firms)

    async def call(
        self,
        op: str,
        method: str,
        path: str,
        expect: Collection[int],
        headers: dict[str, str],
        body: bytes = b"",
        check: Callable[[Reply], str] | None = None,
    ) -> Reply | None:
        """One request, recorded under `op`; the reply when its status is expected (and
        `check`, if any, found nothing wrong: it returns what is wrong), else None."""
        started = time.perf_counter()
        try:
            reply = await self.conn.request(method, path, headers, body)
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            took = time.perf_counter() - started
            self.rec.record(op, f"{method} {path}", 0, took, error=True, why=repr(exc))
            return None
        took = time.perf_counter() - started
        wrong = "" if reply.status not in expect else (check(reply) if check else "")
        error = reply.status not in expect or bool(wrong)
        self.rec.record(
            op, f"{method} {path}", reply.status, took, error=error, body=reply.body, why=wrong
        )
        return None if error else reply


def _day(rng: random.Random) -> date:
    return date.today() - timedelta(days=rng.randint(0, 27))


# --- the actions --------------------------------------------------------------------------


async def token(ctx: Ctx, firm: Firm | None = None) -> None:
    """A firm's integration gets a new access token (client credentials, HTTP Basic)."""
    firm = firm or ctx.firm()
    headers = {
        "Authorization": basic(firm.client_id, firm.secret),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    reply = await ctx.call(
        "token", "POST", "/oauth/token", (200,), headers, b"grant_type=client_credentials"
    )
    if reply is not None:
        firm.token = str(_field(reply, "access_token"))


async def work_request(ctx: Ctx) -> None:
    firm = ctx.firm()
    head, body = json_body(
        {
            "service": SERVICE,
            "payload": {"period": f"{_day(ctx.rng):%Y-%m}"},
            "priority": ctx.rng.randint(0, 100),
        }
    )
    path = f"/v1/tenants/{firm.slug}/work/requests"
    await ctx.call("work request", "POST", path, (201,), bearer(firm.token) | head, body)


async def staff_task(ctx: Ctx) -> None:
    """A staff member claims the most urgent task they may take and completes it."""
    staff = ctx.rng.choice(ctx.world.staff_tokens)
    head, body = json_body({})
    claimed = await ctx.call(
        "staff claim-next", "POST", "/v1/staff/inbox/claim", (200, 204), bearer(staff) | head, body
    )
    if claimed is None:
        return
    if claimed.status == 204:
        ctx.rec.op("staff claim-next").empty += 1
        return
    task = claimed.json()
    assert isinstance(task, dict)
    head, body = json_body({"result": {"note": "done under load"}})
    path = f"/v1/tenants/{task['tenant']}/work/tasks/{task['id']}/complete"
    await ctx.call("staff complete", "POST", path, (200,), bearer(staff) | head, body)


async def ledger_entry(ctx: Ctx) -> None:
    firm, rng = ctx.firm(), ctx.rng
    debit, credit = rng.choice(PAIRS)
    amount = rng.randint(100, 500_000)
    head, body = json_body(
        {
            "effective_on": _day(rng).isoformat(),
            "description": "load posting",
            "reference": f"L-{rng.getrandbits(40):x}",
            "lines": [
                {"account": debit, "debit": amount, "currency": "EUR"},
                {"account": credit, "credit": amount, "currency": "EUR"},
            ],
        }
    )
    path = f"/v1/tenants/{firm.slug}/ledger/entries"
    await ctx.call("ledger entry", "POST", path, (201,), bearer(firm.token) | head, body)


async def trial_balance(ctx: Ctx) -> None:
    firm = ctx.firm()
    path = f"/v1/tenants/{firm.slug}/ledger/trial-balance?as_of={date.today()}"
    await ctx.call("trial balance", "GET", path, (200,), bearer(firm.token))


async def statement(ctx: Ctx) -> None:
    """A small camt.053 statement of the firm's account: 202, imported by a job."""
    firm = ctx.firm()
    firm.statements += 1
    amounts = [
        ctx.rng.choice((1, -1)) * ctx.rng.randint(500, 200_000) for _ in range(STATEMENT_LINES)
    ]
    opening, firm.balance = firm.balance, firm.balance + sum(amounts)
    camt = camt053(firm, firm.statements, amounts, opening, date.today() - timedelta(days=1))
    path = f"/v1/tenants/{firm.slug}/settlements/bank-accounts/{firm.bank_account}/statements"
    headers = bearer(firm.token) | {"Content-Type": "application/xml"}
    await ctx.call("statement import", "POST", path, (202,), headers, camt)


async def record(ctx: Ctx) -> None:
    """A document filed with its file (one multipart request), then downloaded."""
    firm = ctx.firm()
    content = os.urandom(DOCUMENT_BYTES)
    meta = {
        "record_class": RECORD_CLASS,
        "title": "Supplier invoice",
        "document_date": _day(ctx.rng).isoformat(),
        "counterparty": ctx.rng.choice(NAMES),
    }
    head, body = multipart(
        [
            ("metadata", None, "application/json", json.dumps(meta).encode()),
            ("file", "invoice.pdf", "application/octet-stream", content),
        ]
    )
    base = f"/v1/tenants/{firm.slug}/records/documents"
    filed = await ctx.call("record upload", "POST", base, (201,), bearer(firm.token) | head, body)
    if filed is None:
        return

    def same(reply: Reply) -> str:
        return "" if reply.body == content else f"{len(reply.body)} bytes, not those uploaded"

    path = f"{base}/{_field(filed, 'id')}/content"
    await ctx.call("record download", "GET", path, (200,), bearer(firm.token), check=same)


async def screening(ctx: Ctx) -> None:
    firm = ctx.firm()
    head, body = json_body({"name": ctx.rng.choice(NAMES)})
    path = f"/v1/tenants/{firm.slug}/compliance/screenings"
    await ctx.call("screening", "POST", path, (200,), bearer(firm.token) | head, body)


@dataclass(frozen=True)
class Action:
    name: str
    weight: int  # per 100 actions
    run: Callable[[Ctx], Awaitable[None]]
    what: str


ACTIONS = (
    Action("ledger entry", 30, ledger_entry, "POST /ledger/entries (2 lines, EUR minor units)"),
    Action("screening", 15, screening, "POST /compliance/screenings (one name)"),
    Action("work request", 14, work_request, "POST /work/requests (bookkeeping)"),
    Action("staff task", 10, staff_task, "staff: POST /v1/staff/inbox/claim, then .../complete"),
    Action("record", 10, record, "POST /records/documents (multipart, 16 KiB), GET its content"),
    Action("trial balance", 8, trial_balance, "GET /ledger/trial-balance"),
    Action("token", 7, token, "POST /oauth/token (client credentials)"),
    Action("statement", 6, statement, "POST .../statements (camt.053, 3 lines; a job imports it)"),
)
assert sum(a.weight for a in ACTIONS) == 100


async def run_mix(port: int, world: World, connections: int, seconds: float, seed: int) -> Recorder:
    """`connections` connections run the mix for `seconds` (the actions under way then end)."""
    rec = Recorder()
    cumulative = list(itertools.accumulate(a.weight for a in ACTIONS))
    until = time.perf_counter() + seconds

    async def connection(n: int) -> None:
        ctx = Ctx(port, world, rec, random.Random(seed * 1_000 + n))
        try:
            while time.perf_counter() < until:
                action = ctx.rng.choices(ACTIONS, cum_weights=cumulative)[0]
                rec.actions[action.name] += 1
                await action.run(ctx)
        finally:
            ctx.conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection(n) for n in range(connections)))
    rec.seconds = time.perf_counter() - started
    return rec


async def first_tokens(port: int, world: World) -> Recorder:
    """Every firm's first access token, a few at a time (the mix then renews them)."""
    rec = Recorder()
    queue = list(world.firms)

    async def connection() -> None:
        ctx = Ctx(port, world, rec, random.Random(0))
        try:
            while queue:
                await token(ctx, queue.pop())
        finally:
            ctx.conn.close()

    await asyncio.gather(*(connection() for _ in range(4)))
    return rec


def _field(reply: Reply, name: str) -> object:
    answer = reply.json()
    assert isinstance(answer, dict), answer
    return answer[name]


# --- a camt.053 statement ----------------------------------------------------------------


def _money(cents: int) -> str:
    return f"{abs(cents) // 100}.{abs(cents) % 100:02d}"


def _balance(code: str, cents: int, day: date) -> str:
    side = "CRDT" if cents >= 0 else "DBIT"
    return (
        f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp>"
        f'<Amt Ccy="EUR">{_money(cents)}</Amt><CdtDbtInd>{side}</CdtDbtInd>'
        f"<Dt><Dt>{day}</Dt></Dt></Bal>"
    )


def camt053(firm: Firm, number: int, amounts: list[int], opening: int, day: date) -> bytes:
    """One camt.053.001.02 statement of the firm's account; bank references are unique."""
    entries = []
    for n, cents in enumerate(amounts, start=1):
        side, party = ("CRDT", "Dbtr") if cents > 0 else ("DBIT", "Cdtr")
        entries.append(
            f'<Ntry><NtryRef>{n}</NtryRef><Amt Ccy="EUR">{_money(cents)}</Amt>'
            f"<CdtDbtInd>{side}</CdtDbtInd><Sts>BOOK</Sts><BookgDt><Dt>{day}</Dt></BookgDt>"
            f"<ValDt><Dt>{day}</Dt></ValDt><AcctSvcrRef>{firm.slug}-{number}-{n}</AcctSvcrRef>"
            "<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly>"
            "</Domn></BkTxCd><NtryDtls><TxDtls><Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs>"
            f"<RltdPties><{party}><Nm>{escape(NAMES[n % len(NAMES)])}</Nm></{party}></RltdPties>"
            f"<RmtInf><Ustrd>Invoice {number}-{n}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>"
        )
    statement_id = f"{firm.slug}-{number}"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>'
        f"<GrpHdr><MsgId>MSG-{statement_id}</MsgId><CreDtTm>{day}T18:00:00</CreDtTm></GrpHdr>"
        f"<Stmt><Id>{statement_id}</Id><CreDtTm>{day}T18:00:00</CreDtTm>"
        f"<Acct><Id><IBAN>{IBAN}</IBAN></Id><Ccy>EUR</Ccy></Acct>"
        f"{_balance('OPBD', opening, day)}{_balance('CLBD', opening + sum(amounts), day)}"
        f"{''.join(entries)}</Stmt></BkToCstmrStmt></Document>"
    ).encode()
