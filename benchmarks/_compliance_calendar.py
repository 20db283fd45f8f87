"""The compliance calendar alone (bpo.compliance.calendar): deadlines generated for --firms
firms x --obligations obligations over --years years, in this process, no database. Printed,
never asserted. Each case starts with every cache empty (holiday calendars included).

  shared    every firm has the same --obligations schedules (the templates applied with the
            same anchors, as `apply_template` does): the first firm computes, the others hit
            the (schedule, start, end) cache. What a cache is worth, not what the rules cost.
  distinct  no two schedules alike: each firm's obligations are the templates' rules with the
            firm's own anchor and offset, half in one of 20 jurisdictions (countries and
            subdivisions) and half in the template's own, so no deadline list is shared; one
            period's deadline (period, offsets, jurisdiction, roll) still is, as month ends
            coincide across firms. The honest figure.
  uncached  distinct again with that per-period cache bypassed: every deadline computed
            (only holiday calendars and rolled days still cached).
  general   as distinct, with rules only dateutil expands (numbered BYDAY, BYSETPOS, WEEKLY,
            COUNT: last Friday, second Tuesday, fortnightly payroll), on --general-firms firms:
            the cost outside the direct MONTHLY/YEARLY path the templates take.

Each line: schedules (how many distinct), deadlines generated, seconds, deadlines/s, the time
scaled to the goal's 50,000 schedules, and the share of (period, offsets, jurisdiction, roll)
deadlines found in that cache (distinct schedules still share month ends and calendars).
Goal: 5 years x 1,000 firms x 50 obligations < 10 s.

Usage: python benchmarks/_compliance_calendar.py [--firms 1000] [--obligations 50] [--years 5]
       [--general-firms 100] [--quick]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _cli

from bpo.compliance import calendar
from bpo.compliance.calendar import TEMPLATES, Schedule

FIRST_YEAR = 2026
JURISDICTIONS = (
    "US", "US-NY", "US-CA", "US-TX", "GB-ENG", "GB-SCT", "DE", "DE-BY", "DE-NW", "FR",
    "JP", "CA-ON", "AU-NSW", "NL", "IE", "LU", "CH-ZH", "SG", "ES-MD", "IT",
)  # fmt: skip
GENERAL_RULES = (
    "FREQ=MONTHLY;BYDAY=-1FR",
    "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
    "FREQ=WEEKLY;INTERVAL=2;BYDAY=FR",
    "FREQ=MONTHLY;BYDAY=2TU",
    "FREQ=YEARLY;BYMONTH=1;BYDAY=-1FR",
    "FREQ=MONTHLY;BYMONTH=3,6,9,12;BYDAY=3FR",
    "FREQ=MONTHLY;BYMONTHDAY=15;COUNT=240",
)
Firms = list[list[Schedule]]


def shared(firms: int, obligations: int) -> Firms:
    """The same schedules for every firm: templates, then variants of them by offset."""
    templates = list(TEMPLATES.values())
    same = [
        calendar.template_schedule(templates[k % len(templates)], date(FIRST_YEAR - 1, 1, 1))
        for k in range(obligations)
    ]
    same = [
        Schedule(s.rrule, s.anchor, s.offset_days + k // len(templates), s.offset_months, s.roll,
                 s.jurisdiction)
        for k, s in enumerate(same)
    ]  # fmt: skip
    return [same for _ in range(firms)]


def distinct(firms: int, obligations: int, rules: tuple[str, ...] | None = None) -> Firms:
    """Every firm's own schedules: its anchor (a day in the three years before), its
    jurisdiction for half, and an offset a day later whenever a schedule would repeat one
    already made (templates such as W-2 and 1099-NEC share a rule); with `rules`, those rules
    instead of the templates'."""
    templates = list(TEMPLATES.values())
    made, seen = [], set()
    for firm in range(firms):
        home = JURISDICTIONS[firm % len(JURISDICTIONS)]
        schedules = []
        for k in range(obligations):
            template = templates[(firm + k) % len(templates)]
            days = (firm * obligations + k) % 1095
            schedule = Schedule(
                rrule=rules[(firm + k) % len(rules)] if rules else template.rrule,
                anchor=date(FIRST_YEAR - 3, 1, 1) + timedelta(days=days),
                offset_days=template.offset_days,
                offset_months=template.offset_months,
                roll=template.roll,
                jurisdiction=home if k % 2 == 0 else template.jurisdiction,
            )
            while schedule in seen:
                schedule = replace(schedule, offset_days=schedule.offset_days + 1)
            seen.add(schedule)
            schedules.append(schedule)
        made.append(schedules)
    return made


def generate(firms: Firms, start: date, end: date) -> int:
    """Every firm's deadlines in [start, end], the way the sweep asks (one call each)."""
    return sum(len(calendar.deadlines(s, start, end)) for schedules in firms for s in schedules)


def timed(
    label: str, make: Callable[[], Firms], start: date, end: date, goal: int, periods: bool = True
) -> None:
    """One line; without `periods`, each period's deadline is computed every time (the cache
    that distinct schedules still share is bypassed)."""
    firms = make()
    schedules = sum(len(s) for s in firms)
    unique = len({s for schedules_ in firms for s in schedules_})
    calendar.clear_caches()
    cached = calendar._deadline
    if not periods:
        calendar._deadline = cached.__wrapped__  # type: ignore[attr-defined]
    try:
        began = time.perf_counter()
        count = generate(firms, start, end)
        seconds = time.perf_counter() - began
    finally:
        calendar._deadline = cached
    hits = cached.cache_info()
    shared_periods = f"{hits.hits / max(1, hits.hits + hits.misses):.0%}" if periods else "off"
    print(
        f"  {label:<9} {schedules:>7,} schedules ({unique:,} distinct) {count:>10,} deadlines "
        f"{seconds:6.2f} s {count / seconds:>10,.0f} deadlines/s "
        f"{seconds * goal / schedules:6.2f} s per {goal:,} schedules; "
        f"periods' deadlines from cache {shared_periods}",
        flush=True,
    )


def figure(firms: int, obligations: int, years: int, general_firms: int | None = None) -> None:
    """Print the shared, distinct and general figures for firms x obligations x years."""
    start = date(FIRST_YEAR, 1, 1)
    end = date(FIRST_YEAR + years, 1, 1) - timedelta(days=1)
    if (end - start).days > calendar.MAX_HORIZON_DAYS:
        raise SystemExit(f"--years: at most {calendar.MAX_HORIZON_DAYS // 366} years per call")
    goal = 1_000 * 50
    general = max(1, firms // 10) if general_firms is None else general_firms
    print(f"compliance calendar: {firms:,} firms x {obligations} obligations, {start}..{end}")
    timed("shared", lambda: shared(firms, obligations), start, end, goal)
    timed("distinct", lambda: distinct(firms, obligations), start, end, goal)
    timed("uncached", lambda: distinct(firms, obligations), start, end, goal, periods=False)
    timed("general", lambda: distinct(general, obligations, GENERAL_RULES), start, end, goal)


def main(argv: list[str] | None = None) -> None:
    parser = _cli.parser(__doc__)
    parser.add_argument("--firms", type=int, default=1_000)
    parser.add_argument("--obligations", type=int, default=50)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument(
        "--general-firms", type=int, default=100, help="firms for the general case (dateutil)"
    )
    args = _cli.parse(
        parser, {"firms": 20, "obligations": 10, "years": 1, "general_firms": 5}, argv
    )
    figure(args.firms, args.obligations, args.years, args.general_firms)


if __name__ == "__main__":
    main()
