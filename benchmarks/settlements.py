"""Settlements (issue 23): statement parsing speed and memory, and the matching engine's
time, recall and precision on a generated labelled set. Printed, never asserted.

  import    a --lines camt.053 and MT940 file from `formats.generate`, parsed by the
            importer's parser (lxml hardened / mt-940) in a child process that reads the file:
            lines/s and the child's peak RSS; beside it, the baseline of reading the same bytes.
  matching  `synthetic.labelled_set(--items)` (invoices and bills paid with shifted dates,
            typos, splits, merges, fees, partial payments, reversals, noise) through the
            cascade: seconds, recall (true pairs matched or suggested) and precision of the
            automatic confirmations.

What this does not time: the database half of an import (lines written, deduplicated and
posted through the ledger) and of a matching run (matches written, clearing entries posted).

Goals (issue 23): matching 100,000 lines against 100,000 items < 10 s end to end; recall
>= 95%, auto precision >= 99.5%.

Usage: python benchmarks/settlements.py [--lines 100000] [--items 100000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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


def matching_figure(items: int) -> None:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="tiny sizes; not figures to quote")
    a = parser.parse_args()
    if a.quick:
        a.lines, a.items = 2_000, 2_000
        print("(quick mode: tiny sizes, figures not to be quoted)")
    for kind in ("camt053", "mt940"):
        parse_figure(kind, a.lines)
    matching_figure(a.items)


if __name__ == "__main__":
    main()
