"""The database half of benchmarks/settlements.py: imports through the real path, open items
written, and a matching run end to end, in a fresh database (benchmarks/_services.py).

Everything runs in this process against PostgreSQL, through the domain's services with real
tenant sessions (the role, schema and statement timeout a request or a job has): no HTTP and
no broker, so the figures are the domain's cost. The phases inside each figure are timed by
wrapping the module functions the services call (`_phases`), which adds nothing measurable.
Bills are written without their end-to-end id (items.issue takes none), so the engine sees
slightly less than in the engine-alone figure.
"""

from __future__ import annotations

import cProfile
import inspect
import io
import pstats
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from types import ModuleType
from typing import Any
from xml.sax.saxutils import escape

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from bpo import audit
from bpo.core.db import Database
from bpo.core.tenancy import Purpose, TenantContext, issue_tenant_context, tenant_session
from bpo.ledger import accounts as ledger_accounts
from bpo.ledger import service as ledger
from bpo.platform.tenants.service import create_tenant
from bpo.settlements import accounts, books, clearing, imports, items, matching, runs
from bpo.settlements.formats import generate
from bpo.settlements.models import BankAccount, BankLine, Match, OpenItem, StatementImport
from bpo.settlements.schemas import BankAccountIn, ExpectedIn, InvoiceIn, RulesIn, RunOut
from bpo.settlements.synthetic import FEE_TOLERANCE, Truth, labelled_set

WHO = "system:bench"
SLUG = "settlements-bench"
LABELLED_IBAN = "DE89370400440532013000"  # the labelled set's statement: matched
FILES_IBAN = "GB29NWBK60161331926819"  # generated camt.053 / MT940 files: imported only
# Ledger accounts of the starter chart: (control, counter) per kind; expected: in, out.
INVOICE, BILL, EXPECTED = ("1200", "4100"), ("2100", "6300"), ("4900", "6900")
ITEM_BATCH = 10_000  # open items per transaction when written in bulk
MAX_PARAMETERS = 32_767  # asyncpg's (the wire protocol's) bind parameters per statement
LINE_VALUES = 19  # the values imports._lines binds per bank line
SLICE = 30_000  # matched lines per runs._keep call, when it has to be sliced

Phase = tuple[ModuleType, str, str]  # module, function name, label
IMPORT_PHASES: list[Phase] = [
    (imports, "parse", "parse"),
    (imports, "_statement", "statement row"),
    (imports, "_lines", "insert lines (dedup)"),
    (imports, "_progress", "progress"),
    (books, "post_lines", "post lines"),
    (books, "post", "ledger posting"),
    (imports, "reserve_usage", "usage"),
    (imports, "record_events", "events"),
    (imports, "_finish", "finish"),
]
RUN_PHASES: list[Phase] = [
    (runs, "_proposed", "suggestions"),
    (matching, "match", "engine"),
    (runs, "_keep", "keep"),
    (clearing, "clear", "clear"),
    (books, "post", "ledger posting"),
    (audit, "record", "audit"),
    (runs, "_announce", "events"),
]


@contextmanager
def _phases(spent: dict[str, float], targets: list[Phase]) -> Iterator[None]:
    """Add the seconds spent in each target function to spent[label] while inside."""
    saved = []
    for module, name, label in targets:
        original = getattr(module, name)
        saved.append((module, name, original))
        setattr(module, name, _timed(original, label, spent))
    try:
        yield
    finally:
        for module, name, original in reversed(saved):
            setattr(module, name, original)


def _timed(original: Callable[..., Any], label: str, spent: dict[str, float]) -> Any:
    if inspect.iscoroutinefunction(original):

        async def waited(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - started

        return waited

    def called(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[label] += time.perf_counter() - started

    return called


@dataclass(frozen=True)
class Firm:
    db: Database
    tenant: TenantContext
    labelled: uuid.UUID  # the bank account the labelled statement goes to
    files: uuid.UUID  # the one the generated files go to

    def session(self, purpose: Purpose = "worker") -> AbstractAsyncContextManager[AsyncSession]:
        made: AbstractAsyncContextManager[AsyncSession]
        made = tenant_session(self.db.engine, self.tenant, purpose)
        return made


async def make_firm(url: str) -> Firm:
    """A tenant with the starter chart and two confirmed EUR bank accounts (1110 cash,
    1190 suspense, 6600 bank charges, fees up to 5.00)."""
    db = Database(url)
    try:
        async with db.sessionmaker.begin() as session:
            tenant_id = (await create_tenant(session, SLUG, "Settlements bench")).tenant.id
        tenant = issue_tenant_context(tenant_id, SLUG)
        made = []
        async with tenant_session(db.engine, tenant, "worker") as session:
            await ledger_accounts.apply_chart(session, tenant, WHO, "small-business")
            for name, iban in (("Labelled", LABELLED_IBAN), ("Files", FILES_IBAN)):
                data = BankAccountIn(
                    name=name, currency="EUR", iban=iban, cash_account="1110",
                    suspense_account="1190", fee_account="6600",
                    rules=RulesIn(fee_tolerance=FEE_TOLERANCE),
                )  # fmt: skip
                made.append((await accounts.create(session, tenant, WHO, data)).id)
    except BaseException:
        await db.dispose()
        raise
    return Firm(db, tenant, made[0], made[1])


# The labelled set's bank lines as a camt.053 (the shape of tests/support/settlements.py).


def _money(cents: int) -> str:
    return f"{abs(cents) // 100}.{abs(cents) % 100:02d}"


def _entry(n: int, line: matching.BankLine) -> str:
    side, party = ("CRDT", "Dbtr") if line.amount > 0 else ("DBIT", "Cdtr")
    ref = line.creditor_reference
    strd = f"<Strd><CdtrRefInf><Ref>{escape(ref)}</Ref></CdtrRefInf></Strd>" if ref else ""
    name = line.counterparty_name
    parties = f"<RltdPties><{party}><Nm>{escape(name)}</Nm></{party}></RltdPties>" if name else ""
    return (
        f'<Ntry><NtryRef>{n}</NtryRef><Amt Ccy="{line.currency}">{_money(line.amount)}</Amt>'
        f"<CdtDbtInd>{side}</CdtDbtInd><RvslInd>{str(line.reversal).lower()}</RvslInd>"
        f"<Sts>BOOK</Sts><BookgDt><Dt>{line.booked_on}</Dt></BookgDt>"
        f"<ValDt><Dt>{line.booked_on}</Dt></ValDt><AcctSvcrRef>{line.id}</AcctSvcrRef>"
        "<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly>"
        "</Domn></BkTxCd><NtryDtls><TxDtls>"
        f"<Refs><EndToEndId>{escape(line.end_to_end_id or 'NOTPROVIDED')}</EndToEndId></Refs>"
        f"{parties}<RmtInf><Ustrd>{escape(line.description)}</Ustrd>{strd}</RmtInf>"
        "</TxDtls></NtryDtls></Ntry>\n"
    )


def _balance(code: str, cents: int, day: date) -> str:
    side = "CRDT" if cents >= 0 else "DBIT"
    return (
        f"<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp>"
        f'<Amt Ccy="EUR">{_money(cents)}</Amt><CdtDbtInd>{side}</CdtDbtInd>'
        f"<Dt><Dt>{day}</Dt></Dt></Bal>\n"
    )


def labelled_camt(lines: Sequence[matching.BankLine]) -> bytes:
    """One camt.053.001.02 statement of `lines` (bank reference = the line's label id)."""
    first = min(line.booked_on for line in lines)
    last = max(line.booked_on for line in lines)
    closing = sum(line.amount for line in lines)
    return "".join(
        [
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>'
            f"<GrpHdr><MsgId>LABELLED</MsgId><CreDtTm>{last}T18:00:00</CreDtTm></GrpHdr>"
            f"<Stmt><Id>LABELLED-{len(lines)}</Id><CreDtTm>{last}T18:00:00</CreDtTm>"
            f"<Acct><Id><IBAN>{LABELLED_IBAN}</IBAN></Id><Ccy>EUR</Ccy></Acct>\n",
            _balance("OPBD", 0, first),
            _balance("CLBD", closing, last),
            *(_entry(n, line) for n, line in enumerate(lines, start=1)),
            "</Stmt></BkToCstmrStmt></Document>\n",
        ]
    ).encode()


# Imports.


@contextmanager
def _import_batch_that_fits() -> Iterator[None]:
    """imports._lines inserts BATCH lines per multi-row VALUES statement, LINE_VALUES bind
    parameters each: above MAX_PARAMETERS asyncpg refuses the statement, and the import of
    any file with more lines than that fails. Lowered here (and said so) to time the rest."""
    fits, was = MAX_PARAMETERS // LINE_VALUES, imports.BATCH
    if was > fits:
        imports.BATCH = fits
        print(
            f"  NOTE: imports.BATCH ({was:,} lines x {LINE_VALUES} values = "
            f"{was * LINE_VALUES:,} bind parameters) is over asyncpg's {MAX_PARAMETERS:,}: "
            f"every import of more than {fits:,} lines fails. Lowered to {fits:,} in this "
            "process to time the rest.",
            flush=True,
        )
    try:
        yield
    finally:
        imports.BATCH = was


async def import_figure(firm: Firm, account_id: uuid.UUID, label: str, body: bytes) -> None:
    """Upload (imports.start, as the route calls it, in an API transaction), then the job's
    body (imports.run, as jobs.import_statement calls it): timed, by phase."""
    spent: dict[str, float] = defaultdict(float)
    with _phases(spent, IMPORT_PHASES):
        started = time.perf_counter()
        async with firm.session("api") as session:
            account = await accounts.get(session, account_id)
            import_id = (await imports.start(session, firm.tenant, WHO, body, label, account)).id
        upload, upload_parse = time.perf_counter() - started, spent["parse"]
        started = time.perf_counter()
        await imports.run(firm.session, firm.tenant, import_id, WHO)
        job = time.perf_counter() - started
    async with firm.session() as session:
        row = await session.get(StatementImport, import_id)
        assert row is not None
    if row.status != "done":
        raise RuntimeError(f"the import of {label} {row.status}: {row.errors}")
    total = upload + job
    job_parse = spent["parse"] - upload_parse
    marked = spent["post lines"] - spent["ledger posting"]
    small = spent["statement row"] + spent["progress"] + spent["finish"]
    inner = ("insert lines (dedup)", "post lines", "usage", "events")
    rest = job - job_parse - sum(spent[k] for k in inner) - small
    print(
        f"  {label:<24} {row.lines_total:>7,} lines, {len(body) / 1e6:5.1f} MB: {total:6.1f} s "
        f"= {row.lines_total / total:,.0f} lines/s end to end "
        f"(imported {row.lines_imported:,}, skipped {row.lines_skipped:,})\n"
        f"    upload {upload:5.1f} s: parse {upload_parse:.1f}, account check, file stored, job "
        f"queued, audit, commit {upload - upload_parse:.1f}\n"
        f"    job    {job:5.1f} s: parse {job_parse:.1f}, insert lines (dedup) "
        f"{spent['insert lines (dedup)']:.1f}, ledger posting {spent['ledger posting']:.1f}, "
        f"lines marked posted {marked:.1f}, usage {spent['usage']:.2f}, events "
        f"{spent['events']:.2f}, statement row/progress/finish {small:.2f}, commit and the "
        f"rest {rest:.1f}",
        flush=True,
    )


# Open items.


def _invoice_in(item: matching.OpenItem) -> InvoiceIn:
    control, counter = INVOICE if item.kind == "invoice" else BILL
    return InvoiceIn(
        number=item.id, counterparty=str(item.counterparty_name), due_date=item.due_on,
        issue_date=item.due_on - timedelta(days=30), amount=abs(item.amount), currency="EUR",
        control_account=control, account=counter, reference=item.reference,
    )  # fmt: skip


def _expected_in(item: matching.OpenItem) -> ExpectedIn:
    low, high = item.amount_min, item.amount_max
    if low is not None and high is not None and item.amount < 0:
        low, high = high, low  # the service takes magnitudes
    return ExpectedIn(
        direction="in" if item.amount > 0 else "out", counterparty=str(item.counterparty_name),
        expected_on=item.due_on, amount=abs(item.amount), currency="EUR",
        account=EXPECTED[0] if item.amount > 0 else EXPECTED[1], number=item.id,
        amount_min=abs(low) if low is not None else None,
        amount_max=abs(high) if high is not None else None,
        window_days=item.window_days, reference=item.reference, end_to_end_id=item.end_to_end_id,
    )  # fmt: skip


async def _one_by_one(firm: Firm, chosen: Sequence[matching.OpenItem]) -> float:
    """items.issue / items.expect, one transaction each (as one API request each)."""
    started = time.perf_counter()
    for item in chosen:
        async with firm.session("api") as session:
            if item.kind == "expected":
                await items.expect(session, firm.tenant, WHO, _expected_in(item))
            else:
                await items.issue(session, firm.tenant, WHO, item.kind, _invoice_in(item))
    return time.perf_counter() - started


async def _bulk(firm: Firm, chosen: Sequence[matching.OpenItem]) -> tuple[float, float]:
    """The same rows in batches: the invoices' and bills' issue entries posted through the
    ledger (books.post, 1,000 per call) and the rows inserted in one statement per batch.
    No audit record per item. Returns (seconds, of which ledger posting)."""
    started, posting = time.perf_counter(), 0.0
    async with firm.session() as session:
        named = await ledger.accounts_named(session, [*INVOICE, *BILL, *EXPECTED])
    ids = {code: account.id for code, account in named.items()}
    for at in range(0, len(chosen), ITEM_BATCH):
        batch = chosen[at : at + ITEM_BATCH]
        async with firm.session() as session:
            issued = [item for item in batch if item.kind != "expected"]
            entries = []
            for item in issued:
                control, counter = INVOICE if item.kind == "invoice" else BILL
                what = "Invoice" if item.kind == "invoice" else "Bill"
                legs = [(ids[control], item.amount), (ids[counter], -item.amount)]
                day, text = item.due_on - timedelta(days=30), f"{what} {item.id}"
                entries.append(
                    books.entry(day, f"{text} {item.counterparty_name}", item.id, "EUR", legs)
                )
            t = time.perf_counter()
            posted = await books.post(session, firm.tenant, WHO, entries)
            entry_ids = dict(zip((i.id for i in issued), posted, strict=True))
            posting += time.perf_counter() - t
            await session.execute(insert(OpenItem), [_row(item, ids, entry_ids) for item in batch])
    return time.perf_counter() - started, posting


def _row(item: matching.OpenItem, ids: dict[str, Any], entries: dict[str, str]) -> dict[str, Any]:
    """The row items.issue / items.expect would write for `item`."""
    expected = item.kind == "expected"
    control, issued_to = INVOICE if item.kind == "invoice" else BILL
    counter: str | None = None if expected else issued_to
    if expected:
        control = EXPECTED[0] if item.amount > 0 else EXPECTED[1]
    return {
        "kind": item.kind, "number": item.id, "counterparty": item.counterparty_name,
        "reference": item.reference, "end_to_end_id": item.end_to_end_id if expected else None,
        "issue_date": item.due_on if expected else item.due_on - timedelta(days=30),
        "due_date": item.due_on, "amount": item.amount, "currency": "EUR",
        "amount_min": (item.amount_min or item.amount) if expected else None,
        "amount_max": (item.amount_max or item.amount) if expected else None,
        "window_days": item.window_days, "open_amount": item.amount,
        "control_account_id": ids[control], "counter_account_id": ids[counter] if counter else None,
        "entry_id": None if expected else uuid.UUID(entries[item.id]), "created_by": WHO,
    }  # fmt: skip


async def items_figure(firm: Firm, open_items: Sequence[matching.OpenItem], one: int) -> None:
    one = min(one, len(open_items))
    alone = await _one_by_one(firm, open_items[:one])
    rest = open_items[one:]
    bulk, posting = await _bulk(firm, rest) if rest else (0.0, 0.0)
    posted = sum(1 for item in rest if item.kind != "expected")
    print(
        f"  open items: {one:,} through items.issue/expect one transaction each: {alone:.1f} s "
        f"= {one / max(alone, 1e-9):,.0f} items/s ({alone / max(one, 1) * 1000:.1f} ms each; "
        f"all {len(open_items):,} that way would take ~{alone / max(one, 1) * len(open_items):,.0f}"
        f" s)\n  open items: the other {len(rest):,} in batches of {ITEM_BATCH:,} (issue entries "
        f"of {posted:,} invoices and bills through books.post, rows by one INSERT a batch, no "
        f"audit record each): {bulk:.1f} s = {len(rest) / max(bulk, 1e-9):,.0f} items/s "
        f"(ledger posting {posting:.1f} s)",
        flush=True,
    )


# The matching run.
#
# Two ways runs.run has failed at these sizes, each worked around in this process only, and
# only once the real path failed that way (then said so, and the run timed again):
#   "in_"  runs._keep reads the matched lines' amounts with `BankLine.id.in_(ids)`, one bind
#          parameter per line: past MAX_PARAMETERS asyncpg refuses it. Called on slices of
#          the matches instead (the same work; an audit record and an events check a slice).
#   "cap"  an expected payment paid within its range but above its amount: the engine gives
#          it the line's amount and clearing._posting refused it ("has only N open", 409).
#          Capped at what the item owes (the surplus posts as a bank difference).
WORKAROUNDS = {
    "in_": "the matched lines' amounts read with one bind parameter per line (runs._keep, "
    "BankLine.id.in_) are over asyncpg's 32,767: runs._keep called on slices of the matches "
    f"(at most {SLICE:,} lines each)",
    "cap": "an expected payment paid within its range but above its amount is refused by "
    "clearing._posting (409): those allocations capped at the amount owed",
}


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "detail", "") or exc)
    return text.split("\n", 1)[0].removeprefix("(sqlalchemy.dialects.postgresql.asyncpg.")[:160]


def _failure(exc: BaseException) -> str | None:
    """Which known failure `exc` is (a key of WORKAROUNDS), if any."""
    text = f"{getattr(exc, 'detail', '') or ''} {exc}"
    if "query arguments cannot exceed" in text:
        return "in_"
    if "has only" in text and "open" in text:
        return "cap"
    return None


@contextmanager
def _keep_in_slices(on: bool, counts: dict[str, int]) -> Iterator[None]:
    original = runs._keep

    async def keep(
        session: AsyncSession,
        tenant: TenantContext,
        who: Any,
        account: BankAccount,
        found: list[matching.Match],
        owed: dict[str, int],
        out: RunOut,
    ) -> None:
        part: list[matching.Match] = []
        size = 0
        for m in [*found, None]:
            if m is None or size + len(m.line_ids) > SLICE:
                counts["slices"] += 1
                await original(session, tenant, who, account, part, owed, out)
                part, size = [], 0
            if m is not None:
                part.append(m)
                size += len(m.line_ids)

    if on:
        runs._keep = keep
    try:
        yield
    finally:
        runs._keep = original


@contextmanager
def _allocations_capped(on: bool, counts: dict[str, int]) -> Iterator[None]:
    original = runs._settled

    def settled(m: matching.Match, owed: dict[str, int]) -> list[tuple[str, int]]:
        out = []
        for item_id, amount in original(m, owed):
            if abs(amount) > abs(owed[item_id]):
                counts["capped"] += 1
                amount = owed[item_id]
            out.append((item_id, amount))
        return out

    if on:
        runs._settled = settled
    try:
        yield
    finally:
        runs._settled = original


@dataclass
class _Run:
    out: RunOut
    ran: float  # runs.run
    total: float  # and the commit
    spent: dict[str, float]
    counts: dict[str, int]


async def _one_run(
    firm: Firm, on: set[str], profiler: cProfile.Profile | None
) -> tuple[_Run | None, BaseException | None]:
    spent: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    phases = [*RUN_PHASES]
    if hasattr(items, "pull_ledger_lines"):
        phases.append((items, "pull_ledger_lines", "pull ledger lines"))
    try:
        with (
            _allocations_capped("cap" in on, counts),
            _keep_in_slices("in_" in on, counts),
            _phases(spent, phases),
        ):
            started = time.perf_counter()
            async with firm.session() as session:
                if profiler:
                    profiler.enable()
                try:
                    out = await runs.run(session, firm.tenant, WHO, str(firm.labelled))
                finally:
                    if profiler:
                        profiler.disable()
                ran = time.perf_counter() - started
            total = time.perf_counter() - started
    except Exception as exc:  # rolled back: nothing was kept
        return None, exc
    return _Run(out, ran, total, spent, counts), None


async def run_figure(firm: Firm, truth: Truth, engine_alone: float | None, profile: bool) -> None:
    """runs.run for the labelled account in one worker transaction (as jobs.match_account),
    commit included; then recall and precision against the labels."""
    profiler = cProfile.Profile() if profile else None
    on: set[str] = set()
    while True:
        started = time.perf_counter()
        done, exc = await _one_run(firm, on, profiler)
        if done is not None:
            break
        assert exc is not None
        failure = _failure(exc)
        if failure is None or failure in on:
            raise exc
        on.add(failure)
        print(
            f"  NOTE: runs.run FAILED after {time.perf_counter() - started:.1f} s "
            f"({type(exc).__name__}: {_first_line(exc)}): "
            f"{WORKAROUNDS[failure]} in this process, and the run timed again.",
            flush=True,
        )
    out, spent, total, ran = done.out, done.spent, done.total, done.ran
    if done.counts:
        print(f"  (workarounds applied: {dict(done.counts)})", flush=True)
    engine, keep, clear = spent["engine"], spent["keep"], spent["clear"]
    rows = keep - clear - spent["audit"] - spent["events"]
    pull = spent["pull ledger lines"]
    print(
        f"  matching run {out.lines_considered:,} lines x {out.items_considered:,} items: "
        f"{total:.1f} s end to end (goal < 10): {out.confirmed:,} confirmed, "
        f"{out.suggested:,} suggested\n"
        f"    load lines and items {ran - engine - keep - pull:.1f} s (of which open "
        f"suggestions {spent['suggestions']:.2f}), ledger lines pulled {pull:.2f}, engine "
        f"{engine:.1f}, clearing {clear:.1f} (ledger posting {spent['ledger posting']:.1f}, "
        f"lock, check and settle lines and items {clear - spent['ledger posting']:.1f}), "
        f"match rows {rows:.1f}, audit {spent['audit']:.2f}, events {spent['events']:.1f}, "
        f"commit {total - ran:.1f}",
        flush=True,
    )
    ratio = f"{total / engine:.1f}x the engine inside the run"
    if engine_alone:
        ratio += f", {total / engine_alone:.1f}x the engine alone on the synthetic set above"
    print(f"    end to end = {ratio}", flush=True)
    await _quality(firm, truth)
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
        print("  cProfile of runs.run (inflates the times above), top 25 by own time:")
        print("\n".join("    " + row for row in text.getvalue().splitlines()[:60]), flush=True)


async def _quality(firm: Firm, truth: Truth) -> None:
    async with firm.session() as session:
        query = select(BankLine.id, BankLine.bank_reference)
        query = query.where(BankLine.bank_account_id == firm.labelled)
        lines: dict[uuid.UUID, str | None] = dict((await session.execute(query)).tuples().all())
        by_number = select(OpenItem.id, OpenItem.number)
        numbers: dict[uuid.UUID, str] = dict((await session.execute(by_number)).tuples().all())
        found = (
            await session.execute(
                select(Match.status, Match.lines, Match.items).where(
                    Match.bank_account_id == firm.labelled
                )
            )
        ).all()
    pairs, auto = set(), []
    for status, line_parts, item_parts in found:
        pair = (
            frozenset(str(lines[uuid.UUID(str(p["id"]))]) for p in line_parts),
            frozenset(numbers[uuid.UUID(str(p["id"]))] for p in item_parts),
        )
        pairs.add(pair)
        if status == "confirmed":
            auto.append(pair)
    recall = len(truth & pairs) / max(1, len(truth))
    precision = sum(1 for p in auto if p in truth) / max(1, len(auto))
    print(
        f"    recall {recall:.4f} (goal >= 0.95), auto precision {precision:.4f} "
        f"(goal >= 0.995), the matches mapped back to the labels by bank reference and number",
        flush=True,
    )


async def figures(
    url: str, lines: int, n_items: int, one_by_one: int, engine_alone: float | None, profile: bool
) -> None:
    started = time.perf_counter()
    firm = await make_firm(url)
    stack = ExitStack()
    try:
        print(f"  set-up (tenant, chart, two bank accounts): {time.perf_counter() - started:.1f} s")
        stack.enter_context(_import_batch_that_fits())
        camt = generate.camt053(lines, iban=FILES_IBAN)
        mt940 = generate.mt940(lines, account=FILES_IBAN, seed=1)
        await import_figure(firm, firm.files, "camt053 (generated)", camt)
        await import_figure(firm, firm.files, "camt053 again (dups)", camt)
        await import_figure(firm, firm.files, "mt940 (generated)", mt940)
        del camt, mt940
        bank_lines, open_items, truth = labelled_set(n_items, seed=1)
        print(f"  labelled set: {len(bank_lines):,} lines, {len(open_items):,} items", flush=True)
        await items_figure(firm, open_items, one_by_one)
        await import_figure(
            firm, firm.labelled, "camt053 (labelled set)", labelled_camt(bank_lines)
        )
        await run_figure(firm, truth, engine_alone, profile)
    finally:
        stack.close()
        await firm.db.dispose()
