"""Settlements (issue 23): statement imports and matching runs, the parser and the engine
alone and then end to end through the database. Printed, never asserted.

  import    a --lines camt.053 and MT940 file from `formats.generate`, parsed by the
            importer's parser (lxml hardened / mt-940) in a child process that reads the file:
            lines/s and the child's peak RSS; beside it, the baseline of reading the same bytes.
  matching  `synthetic.labelled_set(--items)` (invoices and bills paid with shifted dates,
            typos, splits, merges, fees, partial payments, reversals, noise) through the
            cascade: seconds, recall (true pairs matched or suggested) and precision of the
            automatic confirmations.

The database half (skipped by --no-db): a fresh database (benchmarks/_services.py: migrated,
dropped at the end), one tenant with the starter chart and two confirmed EUR bank accounts
(1110 cash, 1190 suspense, 6600 bank charges). All in this process through the domain's
services on real tenant sessions, no HTTP and no broker (benchmarks/_settlements_db.py):

  db import    the --lines camt.053 (then the same file again: every line a duplicate) and
               MT940 files, and the labelled set's statement as a camt.053: the upload
               (imports.start, as the route calls it) and the job's body (imports.run, as
               jobs.import_statement calls it: parse, lines written and deduplicated, each
               day posted to the ledger), lines/s end to end and by phase.
  db items     the labelled set's --items open items: the first --one-by-one through
               items.issue / items.expect (one transaction each, as one request each), the
               rest in batches (issue entries through the ledger's posting, rows inserted).
  db matching  runs.run for the labelled account in one transaction (as jobs.match_account):
               load lines and items, the engine, the automatic matches cleared through the
               ledger, match rows written, commit; by phase, as a ratio to the engine, and
               recall / precision against the labels (mapped back by bank reference, number).

Where src/ fails at these sizes (a statement over asyncpg's 32,767 bind parameters; an
expected payment paid within its range but above its amount), the script works around it
in its own process only, and prints a NOTE saying what and why.

Goals (issue 23): matching 100,000 lines against 100,000 items < 10 s end to end; recall
>= 95%, auto precision >= 99.5%; import: lines/s of a 100,000-line camt.053 and MT940 file.

Usage: python benchmarks/settlements.py [--lines 100000] [--items 100000] [--one-by-one 1000]
       [--database-url URL] [--no-db] [--profile] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _cli

_CHILD = """
import json, sys, time
from bpo.settlements.formats import parse_statements
def hwm():  # VmHWM: this process's own peak (ru_maxrss keeps the parent's across exec)
    for row in open("/proc/self/status"):
        if row.startswith("VmHWM:"):
            return int(row.split()[1])
base = hwm()
with open(sys.argv[1], "rb") as file:
    data = file.read()
t = time.perf_counter(); bytes(data).count(b"\\n"); baseline = time.perf_counter() - t
t = time.perf_counter(); statements = parse_statements(data); took = time.perf_counter() - t
peak = hwm()
print(json.dumps({"bytes": len(data), "lines": sum(len(s.lines) for s in statements),
                  "seconds": took, "baseline": baseline, "peak_kb": peak, "before_kb": base}))
"""


def parse_figure(kind: str, lines: int) -> None:
    from bpo.settlements.formats import generate

    with tempfile.NamedTemporaryFile(suffix=f".{kind}") as file:
        file.write(getattr(generate, kind)(lines))
        file.flush()
        argv = [sys.executable, "-c", _CHILD, file.name]
        r = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
    print(
        f"import {kind:7s} {r['lines']:>7,} lines ({r['bytes'] / 1e6:.1f} MB): "
        f"{r['lines'] / r['seconds']:,.0f} lines/s ({r['seconds']:.1f} s; reading the bytes "
        f"{r['baseline'] * 1000:.1f} ms); peak RSS {r['peak_kb'] / 1024:.0f} MB "
        f"({r['before_kb'] / 1024:.0f} MB after start-up, before reading the file)"
    )


def matching_figure(items: int) -> float:
    from bpo.settlements.matching import Rules, match
    from bpo.settlements.synthetic import FEE_TOLERANCE, labelled_set

    lines, open_items, truth = labelled_set(items, seed=1)
    started = time.perf_counter()
    found = match(lines, open_items, Rules(fee_tolerance=FEE_TOLERANCE))
    took = time.perf_counter() - started
    pairs = {(frozenset(m.line_ids), frozenset(m.item_ids)) for m in found}
    auto = [(frozenset(m.line_ids), frozenset(m.item_ids)) for m in found if m.auto]
    recall = len(truth & pairs) / len(truth)
    precision = sum(1 for p in auto if p in truth) / max(1, len(auto))
    print(
        f"matching {len(lines):,} lines x {len(open_items):,} items: {took:.2f} s (goal < 10); "
        f"recall {recall:.4f} (goal >= 0.95), auto precision {precision:.4f} (goal >= 0.995), "
        f"{len(auto):,} automatic of {len(found):,} matches"
    )
    return took


def db_figures(args: argparse.Namespace, engine_alone: float) -> None:
    from benchmarks import _settlements_db
    from benchmarks._services import services

    from bpo.models import load_all_models

    load_all_models()
    if args.database_url:  # where benchmarks/_services.py looks
        os.environ["BPO_TEST_DATABASE_URL"] = args.database_url
    with services() as found:
        print(
            f"database half ({'embedded' if found.embedded else 'external'} PostgreSQL; "
            "this process runs the services, PostgreSQL does the rest, both on this machine):",
            flush=True,
        )
        figures = _settlements_db.figures(
            found.database_url, args.lines, args.items, args.one_by_one, engine_alone, args.profile
        )
        asyncio.run(figures)


def main() -> None:
    parser = _cli.parser(__doc__)
    parser.add_argument("--lines", type=int, default=100_000, help="lines per generated file")
    parser.add_argument("--items", type=int, default=100_000, help="open items (labelled set)")
    parser.add_argument(
        "--one-by-one",
        type=int,
        default=1_000,
        help="open items made through items.issue/expect one at a time (the rest in batches)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BPO_BENCH_DATABASE_URL")
        or os.environ.get("BPO_TEST_DATABASE_URL", ""),
        help="PostgreSQL server to make the throwaway database on (default: "
        "$BPO_BENCH_DATABASE_URL, else $BPO_TEST_DATABASE_URL, else an embedded one)",
    )
    parser.add_argument("--no-db", action="store_true", help="parser and engine figures only")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the matching run (slows it down)"
    )
    args = _cli.parse(parser, {"lines": 2_000, "items": 2_000, "one_by_one": 50})
    for kind in ("camt053", "mt940"):
        parse_figure(kind, args.lines)
    engine_alone = matching_figure(args.items)
    if not args.no_db:
        db_figures(args, engine_alone)


if __name__ == "__main__":
    main()
