"""The obligations calendar: recurrence rules -> deadlines, rolled to business days. Pure.

A `Schedule` is an RFC 5545 RRULE counted from an anchor (its DTSTART). Each occurrence is a
*period* (e.g. a quarter end); the *nominal* due date is the period moved `offset_months`, then
`offset_days`; the *due* date is the nominal one rolled off weekends and the public holidays of
a jurisdiction (the `holidays` package: a country, optionally a subdivision).

Semantics worth knowing:

- Dates that do not exist are skipped, never moved (RFC 5545 3.3.10, as dateutil does):
  BYMONTHDAY=31 skips 30-day months; BYMONTH=2;BYMONTHDAY=29, or FREQ=YEARLY anchored on 29
  February, occurs only in leap years; BYMONTHDAY=-1 is always the month's last day. The anchor
  itself counts only if it matches the rule (dateutil's reading, not RFC 5545's).
- `offset_months` keeps the day of the month, clamped to the target month's end (31 January + 1
  -> 28/29 February), and an occurrence on its month's last day stays on the last day (28
  February 2027 + 1 -> 31 March; 30 June + 1 -> 31 July). `offset_days` are calendar days.
- Rolling: "following"/"preceding" move to the next/previous business day, "modified_following"
  moves forward unless that leaves the month, then backward; "none" never moves. A business day
  is outside the country's weekend (Friday-Saturday where `holidays` says so, China's working
  Saturdays included) and not a public holiday of the jurisdiction.
- `due_at` is exclusive: the first instant after the due day in the local zone; a filing is on
  time iff submitted_at < due_at(due, tz). Exact across daylight-saving changes.

Rules of the commonest shape (MONTHLY/YEARLY with only BYMONTH, BYMONTHDAY, INTERVAL, UNTIL,
WKST: every template's) are expanded here directly, an order of magnitude faster than dateutil
(the tests compare the two); every other rule goes through dateutil.rrule. Holiday calendars
(per jurisdiction and year), business days, rolls, each period's deadline and whole deadline
lists per (schedule, start, end) are memoised in bounded LRU caches; `clear_caches` empties
them. TEMPLATES and Template live in `templates` and are re-exported here.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from operator import attrgetter
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from dateutil.rrule import rrulestr  # type: ignore[import-untyped]

from bpo.compliance.templates import TEMPLATES, Template

__all__ = [
    "MAX_HORIZON_DAYS",
    "ROLLS",
    "TEMPLATES",
    "Deadline",
    "Roll",
    "RuleError",
    "Schedule",
    "Template",
    "check",
    "clear_caches",
    "deadlines",
    "due_at",
    "is_business_day",
    "remind_on",
    "roll",
    "template_schedule",
]

Roll = Literal["following", "preceding", "modified_following", "none"]
ROLLS: tuple[str, ...] = get_args(Roll)
MAX_HORIZON_DAYS = 3653  # ten years of deadlines per call
MAX_OFFSET_DAYS = 366
MAX_OFFSET_MONTHS = 24
MAX_LEAD_DAYS = 366
MAX_RULE_CHARS = 500
MAX_COUNT = 10_000
YEARS = (1900, 2199)  # anchors and windows; `holidays` and dateutil are sane in between
ROLL_LIMIT = 31  # days a roll may search (China's longest closures are ~9 days)
EXISTS_YEARS = 40  # a rule with no occurrence this long after its anchor is refused
_DAY = timedelta(days=1)
_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_LEAP_MONTH_DAYS = (31, 29, *_MONTH_DAYS[2:])
_ALL_MONTHS = frozenset(range(1, 13))
_by_due = attrgetter("due", "period")


class RuleError(ValueError):
    """A schedule or a request is invalid: `field` names the input, `detail` says why (a 422)."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Schedule:
    rrule: str  # RFC 5545 RRULE without DTSTART, e.g. "FREQ=MONTHLY;BYMONTH=3,6,9,12;BYMONTHDAY=-1"
    anchor: date  # DTSTART: the first period the rule counts from
    offset_days: int = 0  # calendar days after each occurrence (after offset_months); may be < 0
    offset_months: int = 0  # months after each occurrence, clamped / kept at month end
    roll: Roll = "following"
    jurisdiction: str = "US"  # "US", "US-NY", "DE-BY", "GB-SCT": a `holidays` country[-subdiv]


@dataclass(frozen=True, slots=True)
class Deadline:
    period: date  # the occurrence of the rule (e.g. the quarter end)
    nominal: date  # period + offsets, before rolling
    due: date  # after rolling to a business day
    rolled: str | None  # why it moved ("Saturday", "Independence Day (observed)"), None if not


# --- the rule ---------------------------------------------------------------------------

_FREQS = ("YEARLY", "MONTHLY", "WEEKLY", "DAILY")
_ALL_FREQS = "SECONDLY, MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY, YEARLY"
_MAX_INTERVAL = {"YEARLY": 10, "MONTHLY": 120, "WEEKLY": 521, "DAILY": 3653}  # <= ten years
_PART_NAMES = "FREQ UNTIL COUNT INTERVAL BYMONTH BYWEEKNO BYYEARDAY BYMONTHDAY BYDAY BYSETPOS WKST"
_PARTS = tuple(_PART_NAMES.split())
_TIME_PARTS = ("BYHOUR", "BYMINUTE", "BYSECOND")
_FAST_PARTS = frozenset({"FREQ", "INTERVAL", "UNTIL", "BYMONTH", "BYMONTHDAY", "WKST"})
_INT_LISTS = {  # part: (largest magnitude, negatives allowed)
    "BYMONTH": (12, False),
    "BYMONTHDAY": (31, True),
    "BYYEARDAY": (366, True),
    "BYWEEKNO": (53, True),
    "BYSETPOS": (366, True),
}
_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_INT = re.compile(r"[+-]?[0-9]{1,4}")
_BYDAY = re.compile(r"([+-]?[0-9]{1,2})?(MO|TU|WE|TH|FR|SA|SU)")
_COUNT = re.compile(r"[0-9]{1,6}")
_UNTIL = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})(T[0-9]{6}Z?)?")


@dataclass(frozen=True, slots=True)
class _Rule:
    text: str  # normalised for dateutil: upper case, UNTIL as a date
    freq: str
    interval: int
    count: int | None
    until: date | None
    months: frozenset[int]  # BYMONTH; empty if not given
    monthdays: tuple[int, ...]  # BYMONTHDAY; empty if not given
    fast: bool  # expanded here rather than by dateutil


def _bad(detail: str) -> RuleError:
    return RuleError("rrule", detail)


@functools.lru_cache(maxsize=1024)
def _parse(text: str) -> _Rule:
    """Validate RRULE text (anchor-independent, so cached by text alone)."""
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[6:]
    if "DTSTART" in body.upper() or "\n" in body:
        raise _bad("give the RRULE alone: DTSTART is the schedule's anchor")
    if not body:
        raise _bad("empty rule; expected e.g. FREQ=MONTHLY;BYMONTHDAY=-1")
    parts: dict[str, str] = {}
    for part in body.split(";"):
        name, sep, value = (piece.strip().upper() for piece in part.partition("="))
        if not sep or not name or not value:
            raise _bad(f"{part!r} is not NAME=VALUE (e.g. FREQ=MONTHLY)")
        if name in parts:
            raise _bad(f"{name} is given twice")
        parts[name] = value
    for name, value in parts.items():
        _check_part(name, value)
    freq = _freq(parts.get("FREQ"))
    _check_combination(freq, parts)
    until = _until(parts["UNTIL"]) if "UNTIL" in parts else None
    if until is not None:
        parts["UNTIL"] = until.strftime("%Y%m%d")
    normal = ";".join(f"{name}={value}" for name, value in parts.items())
    try:  # what dateutil refuses, we refuse (our checks should have caught it first)
        rrulestr(normal, dtstart=datetime(2000, 1, 1))
    except (ValueError, TypeError) as exc:
        raise _bad(f"not a valid RRULE: {exc}") from None
    return _Rule(
        text=normal,
        freq=freq,
        interval=_positive(parts, "INTERVAL", _MAX_INTERVAL[freq]) or 1,
        count=_positive(parts, "COUNT", MAX_COUNT),
        until=until,
        months=frozenset(_ints("BYMONTH", parts.get("BYMONTH"))),
        monthdays=tuple(_ints("BYMONTHDAY", parts.get("BYMONTHDAY"))),
        fast=freq in ("YEARLY", "MONTHLY") and "COUNT" not in parts and parts.keys() <= _FAST_PARTS,
    )


def _check_part(name: str, value: str) -> None:
    if name in _TIME_PARTS:
        raise _bad(f"{name}: a deadline is a day, not a time of day")
    if name not in _PARTS:
        raise _bad(f"{name} is not an RRULE part (RFC 5545: {', '.join(_PARTS)})")
    if name in _INT_LISTS:
        _ints(name, value)
    elif name == "BYDAY":
        _ordinals(value)
    elif name == "WKST" and value not in _WEEKDAYS:
        raise _bad(f"WKST={value} is not a weekday ({', '.join(_WEEKDAYS)})")


def _freq(value: str | None) -> str:
    if value is None:
        raise _bad("FREQ is required (e.g. FREQ=MONTHLY)")
    if value in ("HOURLY", "MINUTELY", "SECONDLY"):
        raise _bad(f"FREQ={value}: a deadline is a day; use DAILY, WEEKLY, MONTHLY or YEARLY")
    if value not in _FREQS:
        raise _bad(f"FREQ={value} is not a frequency (RFC 5545: {_ALL_FREQS})")
    return value


def _check_combination(freq: str, parts: Mapping[str, str]) -> None:
    """RFC 5545 3.3.10's MUST NOTs, which dateutil lets through."""
    if "COUNT" in parts and "UNTIL" in parts:
        raise _bad("COUNT and UNTIL must not both be given")
    if "BYWEEKNO" in parts and freq != "YEARLY":
        raise _bad("BYWEEKNO is only for FREQ=YEARLY")
    if "BYYEARDAY" in parts and freq != "YEARLY":
        raise _bad("BYYEARDAY is only for FREQ=YEARLY")
    if "BYMONTHDAY" in parts and freq == "WEEKLY":
        raise _bad("BYMONTHDAY is not for FREQ=WEEKLY")
    numbered = "BYDAY" in parts and _ordinals(parts["BYDAY"])
    if numbered and (freq not in ("MONTHLY", "YEARLY") or "BYWEEKNO" in parts):
        raise _bad("a numbered BYDAY (e.g. -1FR) is only for MONTHLY, or YEARLY without BYWEEKNO")
    if "BYSETPOS" in parts and not any(n.startswith("BY") and n != "BYSETPOS" for n in parts):
        raise _bad("BYSETPOS needs another BYxxx part to select from")


def _ints(name: str, value: str | None) -> list[int]:
    if value is None:
        return []
    largest, signed = _INT_LISTS[name]
    found = []
    for item in value.split(","):
        if not _INT.fullmatch(item):
            raise _bad(f"{name}={value}: {item!r} is not an integer")
        number = int(item)
        if not 1 <= abs(number) <= largest or (number < 0 and not signed):
            limits = f"1..{largest} or -{largest}..-1" if signed else f"1..{largest}"
            raise _bad(f"{name}={value}: {number} is out of range ({limits})")
        found.append(number)
    return found


def _ordinals(value: str) -> bool:
    """Check a BYDAY list; whether any weekday is numbered (-1FR, 2MO)."""
    numbered = False
    for item in value.split(","):
        match = _BYDAY.fullmatch(item)
        if match is None:
            raise _bad(f"BYDAY={value}: {item!r} is not a weekday such as MO, FR or -1FR")
        if match[1] is not None:
            if not 1 <= abs(int(match[1])) <= 53:
                raise _bad(f"BYDAY={value}: {item} is out of range (1..53 or -53..-1)")
            numbered = True
    return numbered


def _positive(parts: Mapping[str, str], name: str, largest: int) -> int | None:
    value = parts.get(name)
    if value is None:
        return None
    if not _COUNT.fullmatch(value) or not 1 <= int(value) <= largest:
        raise _bad(f"{name}={value}: expected a whole number from 1 to {largest}")
    return int(value)


def _until(value: str) -> date:
    match = _UNTIL.fullmatch(value)
    try:
        if match is None:
            raise ValueError(value)
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise _bad(f"UNTIL={value}: expected a date YYYYMMDD (or YYYYMMDDTHHMMSSZ)") from None


# --- occurrences ------------------------------------------------------------------------


def _month_days(year: int, month: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _MONTH_DAYS[month - 1]


def _expand(rule: _Rule, anchor: date, lo: date, hi: date) -> list[date]:
    """The rule's occurrences in [lo, hi]: none before the anchor, none after UNTIL."""
    if rule.fast:
        return _expand_fast(rule, anchor, lo, hi)
    return _expand_dateutil(rule, anchor, lo, hi)


def _expand_fast(rule: _Rule, anchor: date, lo: date, hi: date) -> list[date]:
    """MONTHLY/YEARLY by month and month day, with dateutil's defaults from the anchor: its
    day when no BYMONTHDAY, and for YEARLY its month when neither BYMONTH nor BYMONTHDAY."""
    first, last = max(lo, anchor), hi if rule.until is None else min(hi, rule.until)
    if rule.months:
        months = sorted(rule.months)
    elif rule.monthdays or rule.freq == "MONTHLY":
        months = list(_ALL_MONTHS)
    else:
        months = [anchor.month]
    wanted = rule.monthdays or (anchor.day,)
    days_of = {  # month length -> the days that exist, in order
        n: sorted({day if day > 0 else n + 1 + day for day in wanted if -n <= day <= n})
        for n in (28, 29, 30, 31)
    }
    base, interval, monthly = (
        anchor.year * 12 + anchor.month - 1,
        rule.interval,
        rule.freq == "MONTHLY",
    )
    found: list[date] = []
    for year in range(first.year, last.year + 1):
        if not monthly and (year - anchor.year) % interval:
            continue
        lengths = _LEAP_MONTH_DAYS if _month_days(year, 2) == 29 else _MONTH_DAYS
        for month in months:
            if monthly and (year * 12 + month - 1 - base) % interval:
                continue
            for day in days_of[lengths[month - 1]]:
                at = date(year, month, day)
                if first <= at <= last:
                    found.append(at)
    return found


@functools.lru_cache(maxsize=4096)
def _dateutil_rule(text: str, anchor: date) -> Any:
    return rrulestr(text, dtstart=datetime.combine(anchor, time()))


def _expand_dateutil(rule: _Rule, anchor: date, lo: date, hi: date) -> list[date]:
    found = _dateutil_rule(rule.text, anchor)
    if rule.count is None:  # stop at hi even if the rule never occurs again
        stop = hi if rule.until is None else min(hi, rule.until)
        found = found.replace(until=datetime.combine(stop, time()))
    lo_at, hi_at = datetime.combine(lo, time()), datetime.combine(hi, time())
    return [at.date() for at in found.between(lo_at, hi_at, inc=True)]


def _occurs(rule: _Rule, anchor: date) -> bool:
    """Whether the rule occurs within EXISTS_YEARS of the anchor (or before UNTIL)."""
    limit = date(anchor.year + EXISTS_YEARS, 1, 1)
    if rule.until is not None:
        limit = min(limit, rule.until)
    if not rule.fast:
        return _occurs_dateutil(rule, anchor, limit)
    for year in range(anchor.year, limit.year + 1):  # year by year: most find one at once
        if _expand_fast(rule, anchor, max(anchor, date(year, 1, 1)), date(year, 12, 31)):
            return True
    return False


def _occurs_dateutil(rule: _Rule, anchor: date, limit: date) -> bool:
    """dateutil walks on to the year 9999 when nothing matches, whatever UNTIL says (7 s for
    a DAILY rule): so look near there, on the same calendar (the Gregorian calendar, weekdays
    included, repeats every 400 years), where the walk is at most ~440 years."""
    shift = (9999 - EXISTS_YEARS - anchor.year) // 400 * 400
    start, stop = (datetime(d.year + shift, d.month, d.day) for d in (anchor, limit))
    walk = rrulestr(rule.text, dtstart=start).replace(count=None, until=stop)
    return walk.after(start, inc=True) is not None


# --- jurisdictions and business days ----------------------------------------------------

_JURISDICTION = re.compile(r"([A-Z]{2})(?:-([A-Z0-9]{1,3}))?")


@dataclass(frozen=True, slots=True)
class _Year:
    names: Mapping[date, str]  # public holidays
    weekend: frozenset[int]  # weekday numbers, Monday = 0
    workdays: frozenset[date]  # weekend days that are working days


@functools.lru_cache(maxsize=1024)
def _region(jurisdiction: str) -> tuple[str, str | None]:
    """(country, subdivision) if `holidays` knows them, else RuleError."""
    match = _JURISDICTION.fullmatch(jurisdiction)
    if match is None:
        raise RuleError(
            "jurisdiction",
            f"{jurisdiction!r} is not an ISO 3166-1 alpha-2 country code with an optional "
            "subdivision (e.g. US, US-NY, GB-SCT, DE-BY)",
        )
    country, subdivision = match[1], match[2]
    known = holidays.list_supported_countries()
    if country not in known:
        raise RuleError("jurisdiction", f"{country} is not a country the holidays package knows")
    if subdivision is not None and subdivision not in known[country]:
        codes = ", ".join(code for code in known[country] if _JURISDICTION.fullmatch(f"XX-{code}"))
        raise RuleError(
            "jurisdiction", f"{subdivision} is not a subdivision of {country} (known: {codes})"
        )
    return country, subdivision


@functools.lru_cache(maxsize=4096)
def _year(jurisdiction: str, year: int) -> _Year:
    country, subdivision = _region(jurisdiction)
    # English names, whatever the process locale (`holidays` follows LANG otherwise).
    found = holidays.country_holidays(country, subdiv=subdivision, years=year, language="en_US")
    workdays = frozenset(day for day in found.weekend_workdays if day.year == year)
    return _Year(dict(found), frozenset(found.weekend), workdays)


@functools.lru_cache(maxsize=1 << 16)
def _closed(day: date, jurisdiction: str) -> str | None:
    """Why `day` is not a business day (a holiday's name, the weekday's), None if it is."""
    known = _year(jurisdiction, day.year)
    name = known.names.get(day)
    if name is not None:
        return name
    if day.weekday() in known.weekend and day not in known.workdays:
        return _DAY_NAMES[day.weekday()]
    return None


@functools.lru_cache(maxsize=1 << 16)
def _roll(day: date, jurisdiction: str, how: str) -> tuple[date, str | None]:
    why = _closed(day, jurisdiction)
    if why is None or how == "none":
        return day, None
    if how == "preceding":
        return _step(day, jurisdiction, -1), why
    ahead = _step(day, jurisdiction, 1)
    if how == "modified_following" and ahead.month != day.month:
        return _step(day, jurisdiction, -1), why
    return ahead, why


def _step(day: date, jurisdiction: str, direction: int) -> date:
    for days in range(1, ROLL_LIMIT + 1):
        at = day + timedelta(days=direction * days)
        if _closed(at, jurisdiction) is None:
            return at
    raise RuleError("roll", f"no business day in {jurisdiction} within {ROLL_LIMIT} days of {day}")


def _check_jurisdiction(jurisdiction: object) -> str:
    if not isinstance(jurisdiction, str):
        raise RuleError("jurisdiction", "expected a string such as US, US-NY or GB-SCT")
    _region(jurisdiction)
    return jurisdiction


def _check_day(field: str, value: object) -> date:
    if not isinstance(value, date) or isinstance(value, datetime):
        raise RuleError(field, f"expected a date, got {type(value).__name__}")
    if not YEARS[0] <= value.year <= YEARS[1]:
        raise RuleError(field, f"{value} is outside the years {YEARS[0]}..{YEARS[1]}")
    return value


def is_business_day(day: date, jurisdiction: str) -> bool:
    """Not a weekend day of the country, not a public holiday of the jurisdiction."""
    return _closed(_check_day("day", day), _check_jurisdiction(jurisdiction)) is None


def roll(day: date, jurisdiction: str, how: Roll) -> tuple[date, str | None]:
    """`day` moved to a business day per `how`, and why (None if it did not move)."""
    if how not in ROLLS:
        raise RuleError("roll", f"{how!r} is not one of {', '.join(ROLLS)}")
    return _roll(_check_day("day", day), _check_jurisdiction(jurisdiction), how)


# --- schedules and deadlines ------------------------------------------------------------


def _add_months(day: date, months: int) -> date:
    """Same day `months` later, clamped to the month's end; a month's last day stays last."""
    year, month = divmod(day.year * 12 + day.month - 1 + months, 12)
    length = _month_days(year, month + 1)
    if day.day == _month_days(day.year, day.month):
        return date(year, month + 1, length)
    return date(year, month + 1, min(day.day, length))


def _bounded(field: str, value: object, largest: int, smallest: int | None = None) -> None:
    low = -largest if smallest is None else smallest
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= largest:
        raise RuleError(field, f"expected a whole number from {low} to {largest}, got {value!r}")


def check(schedule: Schedule) -> None:
    """Raise RuleError (field, detail) unless the schedule can be expanded."""
    if not isinstance(schedule.rrule, str) or len(schedule.rrule) > MAX_RULE_CHARS:
        raise RuleError("rrule", f"expected RRULE text of at most {MAX_RULE_CHARS} characters")
    _check_day("anchor", schedule.anchor)
    _bounded("offset_days", schedule.offset_days, MAX_OFFSET_DAYS)
    _bounded("offset_months", schedule.offset_months, MAX_OFFSET_MONTHS)
    if schedule.roll not in ROLLS:
        raise RuleError("roll", f"{schedule.roll!r} is not one of {', '.join(ROLLS)}")
    _check_jurisdiction(schedule.jurisdiction)
    _checked(schedule)  # hashable now: the rule itself, cached per schedule


@functools.lru_cache(maxsize=1 << 14)
def _checked(schedule: Schedule) -> _Rule:
    rule = _parse(schedule.rrule)
    if rule.until is not None and rule.until < schedule.anchor:
        raise _bad(f"UNTIL {rule.until} is before the anchor {schedule.anchor}: it never occurs")
    if not _occurs(rule, schedule.anchor):
        raise _bad(f"the rule never occurs in the {EXISTS_YEARS} years after {schedule.anchor}")
    return rule


def _check_window(start: date, end: date) -> None:
    _check_day("horizon", start)
    _check_day("horizon", end)
    if end < start:
        raise RuleError("horizon", f"end {end} is before start {start}")
    if (end - start).days > MAX_HORIZON_DAYS:
        raise RuleError(
            "horizon",
            f"{start}..{end} is {(end - start).days} days; at most {MAX_HORIZON_DAYS} at a time",
        )


def deadlines(schedule: Schedule, start: date, end: date) -> list[Deadline]:
    """The deadlines due in [start, end] (after rolling), by due date then period."""
    _check_window(start, end)
    check(schedule)
    return list(_deadlines(schedule, start, end))


@functools.lru_cache(maxsize=1 << 14)  # firms share templates: the same schedule, many times
def _deadlines(schedule: Schedule, start: date, end: date) -> tuple[Deadline, ...]:
    rule = _checked(schedule)
    # Periods whose due date may land in the window: the offsets undone, with room for
    # month-end clamping (a few days) and rolling (ROLL_LIMIT); the exact test is below.
    slack = timedelta(days=ROLL_LIMIT + 7)
    offset = timedelta(days=schedule.offset_days)
    lo = _add_months(start - offset, -schedule.offset_months) - slack
    hi = _add_months(end - offset, -schedule.offset_months) + slack
    found = []
    days, months = schedule.offset_days, schedule.offset_months
    where, how = schedule.jurisdiction, schedule.roll
    for period in _expand(rule, schedule.anchor, lo, hi):
        deadline = _deadline(period, days, months, where, how)
        if start <= deadline.due <= end:
            found.append(deadline)
    found.sort(key=_by_due)  # in order already (every step is monotonic): O(n)
    return tuple(found)


@functools.lru_cache(maxsize=1 << 17)
def _deadline(period: date, days: int, months: int, where: str, how: str) -> Deadline:
    """One period's deadline, whatever the rule: firms' periods coincide (month ends), so
    even distinct schedules share these (immutable) results."""
    nominal = (_add_months(period, months) if months else period) + timedelta(days=days)
    due, why = _roll(nominal, where, how)
    return Deadline(period, nominal, due, why)


@functools.lru_cache(maxsize=512)
def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise RuleError("tz", f"{tz!r} is not an IANA time zone (e.g. Europe/London)") from None


def due_at(day: date, tz: str) -> datetime:
    """The exclusive end of `day` in the IANA zone `tz`, as an aware UTC datetime: the start
    of the next local day (where local midnight is skipped, the instant the clocks jump)."""
    if not isinstance(tz, str):
        raise RuleError("tz", "expected an IANA time zone name")
    next_day = _check_day("day", day) + _DAY
    return datetime.combine(next_day, time(), tzinfo=_zone(tz)).astimezone(UTC)


def remind_on(deadline: Deadline, lead_days: int) -> date:
    """`lead_days` calendar days before the (rolled) due date; not itself rolled."""
    _bounded("lead_days", lead_days, MAX_LEAD_DAYS, smallest=0)
    return deadline.due - timedelta(days=lead_days)


def template_schedule(
    template: Template, anchor: date, jurisdiction: str | None = None
) -> Schedule:
    """A template's schedule from `anchor`, optionally in another jurisdiction (e.g. DE-BY)."""
    return Schedule(
        rrule=template.rrule,
        anchor=anchor,
        offset_days=template.offset_days,
        offset_months=template.offset_months,
        roll=template.roll,
        jurisdiction=jurisdiction or template.jurisdiction,
    )


def clear_caches() -> None:
    """Forget every memoised rule, holiday calendar and deadline list (tests, benchmarks)."""
    for cached in (_parse, _dateutil_rule, _region, _year, _closed, _roll, _checked):
        cached.cache_clear()
    _deadline.cache_clear()
    _deadlines.cache_clear()
