"""Business calendars: when SLA clocks run.

A calendar is a time zone, working hours per ISO weekday in local wall-clock time, and closed
days (public holidays of a country/subdivision from the `holidays` package plus the firm's own),
with open days cancelling a closure. Each local day's window is converted to UTC on its own, so
daylight-saving changes are exact; clocks then walk those UTC windows day by day. Instants are
compared in UTC and `add` returns UTC, so `between(s, add(s, d)) == d` to the microsecond.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # ISO weekday - 1
SETTINGS_KEYS = frozenset(
    {"time_zone", "working_hours", "country", "subdivision", "closed_days", "open_days"}
)
MAX_CUSTOM_DAYS = 366
SEARCH_DAYS = 3 * 366  # days without any working time before a calendar is declared empty
_TIME = re.compile(r"\d{2}:\d{2}(:\d{2}(\.\d{6})?)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DAY = timedelta(days=1)
_T = TypeVar("_T")


class CalendarError(ValueError):
    """A calendar setting is invalid, or the calendar never opens."""


def _default_hours() -> Mapping[int, tuple[time, time]]:
    return MappingProxyType({day: (time(9), time(17)) for day in range(1, 6)})


@functools.lru_cache(maxsize=256)
def _public_holidays(country: str, subdivision: str | None, year: int) -> Mapping[date, str]:
    found = holidays.country_holidays(country, subdiv=subdivision, years=year)
    return MappingProxyType(dict(found))


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    time_zone: str = "UTC"
    # ISO weekday (1 = Monday) -> local (start, end); a missing weekday is closed.
    hours: Mapping[int, tuple[time, time]] = field(default_factory=_default_hours, hash=False)
    country: str | None = None
    subdivision: str | None = None
    closed_days: frozenset[date] = frozenset()
    # An open day cancels a holiday or closed day; a weekday without hours stays closed.
    open_days: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        _check_zone(self.time_zone)
        _check_hours(self.hours)
        _check_region(self.country, self.subdivision)
        for name in ("closed_days", "open_days"):
            days = frozenset(getattr(self, name))
            if len(days) > MAX_CUSTOM_DAYS:
                raise CalendarError(f"{name}: at most {MAX_CUSTOM_DAYS} days, got {len(days)}")
            object.__setattr__(self, name, days)
        # A private read-only copy: the caller's dict may change, the calendar must not.
        object.__setattr__(self, "hours", MappingProxyType(dict(self.hours)))

    @classmethod
    def from_settings(cls, data: Mapping[str, Any]) -> BusinessCalendar:
        """Build from stored JSON; a null value means the key's default."""
        unknown = sorted(set(data) - SETTINGS_KEYS)
        if unknown:
            raise CalendarError(f"unknown calendar settings: {', '.join(unknown)}")
        given = {key: value for key, value in data.items() if value is not None}
        hours = given.get("working_hours")
        return cls(
            time_zone=_text(given.get("time_zone", "UTC"), "time_zone"),
            hours=_default_hours() if hours is None else _parse_hours(hours),
            country=_text(given.get("country"), "country"),
            subdivision=_text(given.get("subdivision"), "subdivision"),
            closed_days=_parse_days(given.get("closed_days", []), "closed_days"),
            open_days=_parse_days(given.get("open_days", []), "open_days"),
        )

    def to_settings(self) -> dict[str, Any]:
        return {
            "time_zone": self.time_zone,
            "working_hours": {
                WEEKDAYS[day - 1]: [_format_time(start), _format_time(end)]
                for day, (start, end) in sorted(self.hours.items())
            },
            "country": self.country,
            "subdivision": self.subdivision,
            "closed_days": sorted(day.isoformat() for day in self.closed_days),
            "open_days": sorted(day.isoformat() for day in self.open_days),
        }

    def holidays_in(self, year: int) -> dict[date, str]:
        found = dict(self._holidays(year))
        for day in self.closed_days:
            if day.year == year:
                found.setdefault(day, "closed")
        return {day: name for day, name in sorted(found.items()) if day not in self.open_days}

    def is_business_time(self, moment: datetime) -> bool:
        moment = _utc(moment)
        # Windows are clipped to start no earlier than `moment`: inside one, it opens at moment.
        window = next(self._windows(moment, until=moment), None)
        return window is not None and window[0] == moment

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The UTC instant when `duration` of business time has run from `start`."""
        if duration < timedelta(0):
            raise ValueError("duration must not be negative")
        remaining = duration
        for opens, closes in self._windows(_utc(start)):
            if remaining <= closes - opens:  # ends at a closing time rather than the next opening
                return opens + remaining
            remaining -= closes - opens
        raise AssertionError("unreachable: an unbounded walk ends by raising")

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Business time in [start, end); zero if end <= start."""
        start, end = _utc(start), _utc(end)
        elapsed = timedelta(0)
        if end <= start:
            return elapsed
        for opens, closes in self._windows(start, until=end):
            if opens >= end:
                break
            elapsed += min(closes, end) - opens
        return elapsed

    def _closed(self, day: date) -> bool:
        if day in self.open_days:
            return False
        return day in self.closed_days or day in self._holidays(day.year)

    def _holidays(self, year: int) -> Mapping[date, str]:
        return _public_holidays(self.country, self.subdivision, year) if self.country else {}

    def _window(self, day: date) -> tuple[datetime, datetime] | None:
        """The day's open interval in UTC, or None when closed."""
        hours = self.hours.get(day.isoweekday())
        if hours is None or self._closed(day):
            return None
        zone = ZoneInfo(self.time_zone)
        # Real elapsed time between the two converted instants, so a window across a DST
        # change is shorter or longer. A local time in a spring-forward gap keeps zoneinfo's
        # fold=0 reading (the offset before the change); if that puts the end before the start,
        # the window is empty.
        opens = datetime.combine(day, hours[0], zone).astimezone(UTC)
        closes = datetime.combine(day, hours[1], zone).astimezone(UTC)
        return (opens, closes) if closes > opens else None

    def _windows(
        self, start: datetime, until: datetime | None = None
    ) -> Iterator[tuple[datetime, datetime]]:
        """Open windows from `start` on, clipped so they are disjoint and never before `start`.

        Starts a day early: in zones whose clocks fall back at midnight the local date of an
        instant can run backwards. Unbounded walks give up after SEARCH_DAYS idle days.
        """
        zone = ZoneInfo(self.time_zone)
        day = start.astimezone(zone).date() - _DAY
        last = until.astimezone(zone).date() + _DAY if until else None
        cursor, idle = start, 0
        while last is None or day <= last:
            window = self._window(day)
            if window and window[1] > cursor:
                yield max(window[0], cursor), window[1]
                cursor, idle = window[1], 0
            else:
                idle += 1
                if last is None and idle > SEARCH_DAYS:
                    raise CalendarError(f"the calendar has no working time in {SEARCH_DAYS} days")
            day += _DAY


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("an aware datetime is required")
    return moment.astimezone(UTC)


def _check_zone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        raise CalendarError(f"time_zone: unknown time zone {name!r}") from None


def _check_hours(hours: Mapping[int, tuple[time, time]]) -> None:
    for day, (start, end) in hours.items():
        if day not in range(1, 8):
            raise CalendarError(f"working_hours: weekday {day!r} is not 1 (Monday) to 7 (Sunday)")
        label = f"working_hours.{WEEKDAYS[day - 1]}"
        if start.tzinfo is not None or end.tzinfo is not None:
            raise CalendarError(f"{label}: times are local, without a time zone")
        if end <= start:
            raise CalendarError(f"{label}: end {end} must be after start {start}")


def _check_region(country: str | None, subdivision: str | None) -> None:
    if country is None:
        if subdivision is not None:
            raise CalendarError("subdivision: needs a country")
        return
    for subdiv, error in (
        (None, f"country: {country!r} is not known to the holidays package"),
        (subdivision, f"subdivision: {subdivision!r} is not a subdivision of {country}"),
    ):
        try:
            holidays.country_holidays(country, subdiv=subdiv)
        except NotImplementedError:
            raise CalendarError(error) from None


def _text(value: Any, name: str) -> Any:
    """The value if it is a string or None (absent)."""
    if value is not None and not isinstance(value, str):
        raise CalendarError(f"{name}: expected a string")
    return value


def _parse_hours(value: Any) -> dict[int, tuple[time, time]]:
    if not isinstance(value, Mapping):
        raise CalendarError("working_hours: expected an object of weekday -> [start, end]")
    hours: dict[int, tuple[time, time]] = {}
    for key, pair in value.items():
        if key not in WEEKDAYS:
            raise CalendarError(
                f"working_hours: unknown weekday {key!r} (use {', '.join(WEEKDAYS)})"
            )
        label = f"working_hours.{key}"
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise CalendarError(f"{label}: expected [start, end] such as ['09:00', '17:00']")
        start, end = (
            _parse(t, _TIME, time.fromisoformat, f"{label}: {t!r} is not HH:MM") for t in pair
        )
        hours[WEEKDAYS.index(key) + 1] = (start, end)
    return hours


def _parse_days(value: Any, name: str) -> frozenset[date]:
    if not isinstance(value, list | tuple):
        raise CalendarError(f"{name}: expected a list of dates YYYY-MM-DD")
    if len(value) > MAX_CUSTOM_DAYS:
        raise CalendarError(f"{name}: at most {MAX_CUSTOM_DAYS} days, got {len(value)}")
    return frozenset(
        _parse(day, _DATE, date.fromisoformat, f"{name}: {day!r} is not a date YYYY-MM-DD")
        for day in value
    )


def _parse(value: Any, pattern: re.Pattern[str], parse: Callable[[str], _T], error: str) -> _T:
    try:
        if isinstance(value, str) and pattern.fullmatch(value):
            return parse(value)
    except ValueError:  # matches the pattern but out of range, e.g. 25:00 or 2026-02-30
        pass
    raise CalendarError(error)


def _format_time(value: time) -> str:
    return value.isoformat("minutes" if not (value.second or value.microsecond) else "auto")
