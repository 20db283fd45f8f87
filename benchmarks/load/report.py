"""The mixed load's tables: per operation, CPU by role, and the two configurations side by
side (markdown, so they paste into docs as they are)."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

from benchmarks._load import Server
from benchmarks.load.mix import ACTIONS
from benchmarks.load.stats import Recorder
from benchmarks.load.world import Backlog

# Operations (requests) in the order of the mix's actions.
OPS = ("ledger entry", "screening", "work request", "staff claim-next", "staff complete",
       "record upload", "record download", "trial balance", "token",
       "statement import")  # fmt: skip
ROLES = ("api 1", "api 2", "proxy", "worker", "postgres", "redis", "receiver", "client")


@dataclass
class Outcome:
    label: str
    how: str
    rec: Recorder
    cpu: dict[str, float]
    at_end: Backlog
    drained_s: float | None  # None: not drained in time
    after: Backlog
    logs: dict[str, str] = field(default_factory=dict)  # replica -> log lines of its 5xx
    load_average: str = ""  # /proc/loadavg's 1-minute figure when the window closed
    machine_s: float = 0.0  # CPU seconds the whole machine spent (/proc/stat, every process)
    cpu_window: float = 1.0  # wall seconds between the CPU snapshots

    @property
    def rate(self) -> float:
        """Answered as expected, per second."""
        return (self.rec.requests - self.rec.errors) / self.rec.seconds

    def share(self, role: str) -> float:
        """Percent of one core during the window. "other": everything but ours, from the
        machine's own count (/proc/stat), so processes that came and went in the window
        count too (the per-process snapshots miss those)."""
        if role == "other":
            ours = sum(v for k, v in self.cpu.items() if not k.startswith("other:"))
            seen = sum(v for k, v in self.cpu.items() if k.startswith("other:"))
            used = max(self.machine_s - ours, seen)
        elif role == "api":
            used = sum(v for k, v in self.cpu.items() if k.startswith("api "))
        else:
            used = self.cpu.get(role, 0.0)
        return used / self.cpu_window * 100

    @property
    def busy(self) -> float:
        """Percent of the whole machine (every core) that was busy (/proc/stat)."""
        return self.machine_s / self.cpu_window * 100 / (os.cpu_count() or 1)


def mix_lines() -> list[str]:
    return [f"  {a.weight:3d}%  {a.name:<14} {a.what}" for a in ACTIONS]


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def op_table(rec: Recorder) -> list[str]:
    rows = [
        "| operation | count | ok/s | p50 ms | p95 ms | p99 ms | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    names = [n for n in OPS if n in rec.ops] + sorted(set(rec.ops) - set(OPS))
    for name in names:
        s = rec.ops[name]
        empty = f" ({s.empty} empty)" if s.empty else ""
        rows.append(
            f"| {name}{empty} | {s.count:,} | {s.ok / rec.seconds:,.1f} | {_ms(s.ms(0.5))} | "
            f"{_ms(s.ms(0.95))} | {_ms(s.ms(0.99))} | {s.errors:,} |"
        )
    ok = rec.requests - rec.errors
    rows.append(
        f"| **all requests** | {rec.requests:,} | {ok / rec.seconds:,.1f} | | | | {rec.errors:,} |"
    )
    return rows


def recorder_errors(rec: Recorder) -> list[str]:
    out = []
    for name, s in rec.ops.items():
        if s.errors:
            statuses = ", ".join(f"{k}: {v}" for k, v in sorted(s.statuses.items()))
            out.append(f"  !! {name}: {s.errors} errors (statuses {statuses})")
            out += [f"     {sample}" for sample in s.samples]
    return out


def error_lines(o: Outcome) -> list[str]:
    out = recorder_errors(o.rec)
    for replica, lines in o.logs.items():
        out.append(f"  !! {replica}: log lines of its 5xx answers (else its last errors):")
        out += [f"     {line[:800]}" for line in lines.splitlines()]
    return out


def cpu_lines(o: Outcome) -> list[str]:
    shares = [f"{role} {o.share(role):.0f}%" for role in ROLES if o.share(role) >= 0.5]
    others = sorted(
        ((v, k.removeprefix("other:")) for k, v in o.cpu.items() if k.startswith("other:")),
        reverse=True,
    )
    busiest = ", ".join(f"{k} {v / o.cpu_window * 100:.0f}%" for v, k in others[:3])
    return [
        f"  CPU by role, % of one core over the window: {', '.join(shares)}",
        f"  other work on this machine (not ours): {o.share('other'):.0f}%"
        + (f" (of the processes seen: {busiest})" if busiest else ""),
        f"  the whole machine ({os.cpu_count()} cores) was {o.busy:.0f}% busy; load average "
        f"(1 min) {o.load_average} when the window closed",
    ]


def backlog_lines(o: Outcome) -> list[str]:
    b = o.at_end
    drained = (
        f"drained {o.drained_s:.1f} s later"
        if o.drained_s is not None
        else f"NOT drained in time (imports waiting {o.after.imports_waiting}, deliveries "
        f"pending {o.after.deliveries_pending}, outbox due {o.after.outbox_due})"
    )
    lines = [
        f"  worker backlog when the window closed: {b.imports_waiting} statement imports "
        f"queued/running, {b.deliveries_pending} webhook deliveries pending, {b.outbox_due} "
        f"jobs due in the outbox; {drained}"
    ]
    a = o.after
    lines.append(
        f"  webhook delivery attempts since the start (warm-ups, windows, drains): "
        f"{a.attempts:,}, of which not answered 2xx: {a.attempts_failed:,}"
    )
    if a.imports_failed or a.deliveries_failed or a.failed_jobs or a.attempts_failed:
        lines.append(
            f"  !! failed: {a.imports_failed} statement imports, {a.deliveries_failed} webhook "
            f"deliveries, {a.attempts_failed} delivery attempts, {a.failed_jobs} jobs "
            f"(failed_jobs); e.g. {a.failure[:600]}"
        )
    return lines


def summary(outcomes: list[Outcome]) -> list[str]:
    head = "| | " + " | ".join(o.label for o in outcomes) + " |"
    rows = [head, "|---" * (len(outcomes) + 1) + "|"]

    def row(name: str, values: list[str]) -> None:
        rows.append(f"| {name} | " + " | ".join(values) + " |")

    row("requests answered as expected, /s", [f"{o.rate:,.1f}" for o in outcomes])
    row(
        "actions (mix entries) /s",
        [f"{sum(o.rec.actions.values()) / o.rec.seconds:,.1f}" for o in outcomes],
    )
    row("errors", [f"{o.rec.errors:,}" for o in outcomes])
    for name in ("ledger entry", "screening", "work request", "record upload"):
        values = []
        for o in outcomes:
            s = o.rec.ops.get(name)
            values.append(f"{_ms(s.ms(0.5))} / {_ms(s.ms(0.95))}" if s else "-")
        row(f"{name} p50 / p95 ms", values)
    for role, label in (
        ("api", "API replicas"),
        ("proxy", "proxy"),
        ("worker", "worker"),
        ("postgres", "PostgreSQL"),
        ("redis", "Redis"),
        ("client", "load client"),
        ("other", "other work (not ours)"),
    ):
        row(f"CPU {label}, % of a core", [f"{o.share(role):.0f}" for o in outcomes])
    row(f"machine busy ({os.cpu_count()} cores)", [f"{o.busy:.0f}%" for o in outcomes])
    row("load average (1 min) at the end", [o.load_average for o in outcomes])
    return rows


def log_text(server: Server) -> str:
    server.log.flush()
    server.log.seek(0)
    return server.log.read().decode(errors="replace")


def log_lines_of(
    servers: dict[str, Server], request_ids: list[str], since: dict[str, int]
) -> dict[str, str]:
    """The log lines of each process that name one of `request_ids` (its 5xx answers), or
    else its last error lines (after `since` characters); a JSON line shortened to its
    time, event, request id and the end of its exception."""
    found = {}
    for name, server in servers.items():
        text = log_text(server)[since.get(name, 0) :]
        hits = [line for line in text.splitlines() if any(r and r in line for r in request_ids)]
        if hits:
            found[name] = "\n".join(_short(line) for line in hits[:3])
            if len(hits) > 3:
                found[name] += f"\n... and {len(hits) - 3} more"
        elif errors := [line for line in text.splitlines() if '"level": "error"' in line]:
            found[name] = "\n".join(_short(line) for line in errors[-3:])
    return found


def _short(line: str) -> str:
    try:
        entry = json.loads(line)
    except ValueError:
        return line[:800]
    if not isinstance(entry, dict):
        return line[:800]
    where = " | ".join(str(entry.pop(k, "")) for k in ("timestamp", "event", "request_id"))
    return where[:300] + "".join(f"\n        {part}" for part in _raised(entry.get("exception")))


def _raised(exception: object) -> list[str]:
    """The innermost frame of a traceback and the first line of what was raised."""
    lines = str(exception or "").splitlines()
    frames = [n for n, text in enumerate(lines) if text.startswith("  File ")]
    if not frames:
        return [text[:300] for text in lines[-2:]]
    raised = next((t for t in lines[frames[-1] + 1 :] if t and not t[0].isspace()), "")
    return [lines[frames[-1]].strip()[:300], raised[:400]]
