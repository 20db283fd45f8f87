"""Business calendars: SLA clock vectors computed by hand, and the add/between laws.

Every expected instant below is a literal worked out from the calendar, not from the code.
2026 facts used: 25 Dec is a Friday and 28 Dec is the Boxing Day substitute (GB/ENG); Good
Friday 3 Apr, Easter Monday 6 Apr, Spring Bank Holiday 25 May (GB/ENG); Thanksgiving 26 Nov
(US); clocks change on 29 Mar and 25 Oct in London, 8 Mar and 1 Nov in New York.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from bpo.work.calendar import BusinessCalendar, CalendarError

LONDON_TZ = ZoneInfo("Europe/London")
NEW_YORK_TZ = ZoneInfo("America/New_York")
LONDON = BusinessCalendar("Europe/London", country="GB", subdivision="ENG")
NEW_YORK = BusinessCalendar("America/New_York", country="US")
# Open 00:00-04:00 local every day: the window itself spans the clock change.
NIGHTS = BusinessCalendar("Europe/London", hours={day: (time(0), time(4)) for day in range(1, 8)})
H = timedelta(hours=1)


def london(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=LONDON_TZ)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, sec: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, sec, us, tzinfo=UTC)


# --- due times ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("calendar", "start", "duration", "due"),
    [
        # Weekend: Fri 9 Jan 16:00 + 4h = 1h Friday + 3h Monday 12 Jan.
        pytest.param(LONDON, london(2026, 1, 9, 16), 4 * H, utc(2026, 1, 12, 12), id="gb-weekend"),
        pytest.param(
            NEW_YORK,
            datetime(2026, 1, 9, 16, tzinfo=NEW_YORK_TZ),
            4 * H,
            utc(2026, 1, 12, 17),  # Monday 12:00 EST
            id="us-weekend",
        ),
        # Christmas: Thu 24 Dec 15:00 + 8h = 2h Thursday; Fri 25, Mon 28 closed; 6h Tue 29.
        pytest.param(LONDON, london(2026, 12, 24, 15), 8 * H, utc(2026, 12, 29, 15), id="gb-xmas"),
        # Easter: Thu 2 Apr 16:00 BST + 2h = 1h Thursday; Good Friday, Easter Monday; Tue 10:00 BST.
        pytest.param(LONDON, london(2026, 4, 2, 16), 2 * H, utc(2026, 4, 7, 9), id="gb-easter"),
        # Thanksgiving: Wed 25 Nov 14:00 EST + 8h = 3h Wednesday; Thu 26 closed; Fri 14:00 EST.
        pytest.param(
            NEW_YORK,
            datetime(2026, 11, 25, 14, tzinfo=NEW_YORK_TZ),
            8 * H,
            utc(2026, 11, 27, 19),
            id="us-thanksgiving",
        ),
        # DST weekends: Fri 15:00 + 4h = 2h Friday + 2h Monday, Monday on the new offset.
        pytest.param(LONDON, london(2026, 3, 27, 15), 4 * H, utc(2026, 3, 30, 10), id="gb-spring"),
        pytest.param(LONDON, london(2026, 10, 23, 15), 4 * H, utc(2026, 10, 26, 11), id="gb-fall"),
        pytest.param(
            NEW_YORK,
            datetime(2026, 3, 6, 15, tzinfo=NEW_YORK_TZ),  # 20:00 UTC (EST)
            4 * H,
            utc(2026, 3, 9, 15),  # Monday 11:00 EDT
            id="us-spring",
        ),
        pytest.param(
            NEW_YORK,
            datetime(2026, 10, 30, 15, tzinfo=NEW_YORK_TZ),  # 19:00 UTC (EDT)
            4 * H,
            utc(2026, 11, 2, 16),  # Monday 11:00 EST
            id="us-fall",
        ),
        # A full 8h day right after the spring change: 09:00-17:00 BST = 08:00-16:00 UTC.
        pytest.param(LONDON, utc(2026, 3, 30, 8), 8 * H, utc(2026, 3, 30, 16), id="gb-bst-day"),
        # Night window on 29 Mar is 00:00 GMT-04:00 BST = 3 real hours; Monday's opens at
        # 00:00 BST = Sun 23:00 UTC, so the 4th hour ends at Monday 00:00 UTC.
        pytest.param(NIGHTS, utc(2026, 3, 29), 4 * H, utc(2026, 3, 30), id="night-spring"),
        # 25 Oct: 00:00 BST (24 Oct 23:00 UTC) to 04:00 GMT = 5 real hours.
        pytest.param(NIGHTS, utc(2026, 10, 24, 23), 5 * H, utc(2026, 10, 25, 4), id="night-fall"),
        # Outside working hours the clock starts at the next opening.
        pytest.param(LONDON, utc(2026, 1, 13, 7), H, utc(2026, 1, 13, 10), id="before-opening"),
        pytest.param(LONDON, utc(2026, 1, 13, 18), H, utc(2026, 1, 14, 10), id="after-closing"),
        pytest.param(LONDON, utc(2026, 1, 17, 12), H, utc(2026, 1, 19, 10), id="saturday"),
        # Zero: inside business time it is the start itself, else the next opening.
        pytest.param(LONDON, utc(2026, 1, 13, 11), 0 * H, utc(2026, 1, 13, 11), id="zero-inside"),
        pytest.param(LONDON, utc(2026, 1, 13, 7), 0 * H, utc(2026, 1, 13, 9), id="zero-before"),
        pytest.param(LONDON, utc(2026, 1, 13, 17), 0 * H, utc(2026, 1, 14, 9), id="zero-closing"),
        # A budget that ends exactly at closing is due at closing, not at the next opening.
        pytest.param(LONDON, utc(2026, 1, 13, 9), 8 * H, utc(2026, 1, 13, 17), id="full-day"),
        pytest.param(
            LONDON,
            utc(2026, 1, 13, 16, 59, 59, 999999),
            timedelta(microseconds=2),
            utc(2026, 1, 14, 9, 0, 0, 1),
            id="microseconds",
        ),
    ],
)
def test_due_times(
    calendar: BusinessCalendar, start: datetime, duration: timedelta, due: datetime
) -> None:
    result = calendar.add(start, duration)
    assert result == due
    assert result.tzinfo is UTC
    assert calendar.between(start, result) == duration


def test_custom_closed_day_and_open_day() -> None:
    # Thu 24 Dec closed by the firm: Wed 23 Dec 16:00 + 2h = 1h Wednesday, then Tue 29 Dec.
    closed = BusinessCalendar(
        "Europe/London",
        country="GB",
        subdivision="ENG",
        closed_days=frozenset({date(2026, 12, 24)}),
    )
    assert closed.add(utc(2026, 12, 23, 16), 2 * H) == utc(2026, 12, 29, 10)
    # Mon 28 Dec (Boxing Day substitute) opened: Thu 24 Dec 16:00 + 2h lands Monday 10:00.
    opened = BusinessCalendar(
        "Europe/London", country="GB", subdivision="ENG", open_days=frozenset({date(2026, 12, 28)})
    )
    assert opened.add(utc(2026, 12, 24, 16), 2 * H) == utc(2026, 12, 28, 10)
    # An open day cannot open a weekday without hours: Sat 26 Dec stays closed.
    saturday = BusinessCalendar("Europe/London", open_days=frozenset({date(2026, 12, 26)}))
    assert not saturday.is_business_time(utc(2026, 12, 26, 10))


def test_time_zones_give_different_due_times() -> None:
    start = utc(2026, 6, 15, 20)  # Monday: 05:00 Tuesday in Tokyo, 13:00 Monday in Los Angeles
    tokyo = BusinessCalendar("Asia/Tokyo")
    los_angeles = BusinessCalendar("America/Los_Angeles")
    assert tokyo.add(start, 4 * H) == utc(2026, 6, 16, 4)  # Tue 09:00-13:00 JST
    assert los_angeles.add(start, 4 * H) == utc(2026, 6, 16, 0)  # Mon 13:00-17:00 PDT


def test_spring_forward_gap_uses_fold_zero() -> None:
    # 01:30 on 29 Mar does not exist in London; fold=0 reads it as GMT (01:30 UTC).
    sundays = BusinessCalendar("Europe/London", hours={7: (time(1, 30), time(5))})
    assert sundays.add(utc(2026, 3, 29), timedelta(0)) == utc(2026, 3, 29, 1, 30)
    assert sundays.between(utc(2026, 3, 29), utc(2026, 3, 30)) == timedelta(hours=2, minutes=30)


# --- elapsed time ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("calendar", "start", "end", "elapsed"),
    [
        # Pause Fri 22 May 15:00 BST, resume Tue 26 May 10:00 BST; Mon 25 May is a holiday.
        pytest.param(LONDON, london(2026, 5, 22, 15), london(2026, 5, 26, 10), 3 * H, id="pause"),
        # Thu 2 Apr 16:00 to Tue 7 Apr 10:00 over Good Friday and Easter Monday: 1h + 1h.
        pytest.param(LONDON, london(2026, 4, 2, 16), london(2026, 4, 7, 10), 2 * H, id="easter"),
        # Fri 27 Mar 09:00 GMT to Mon 30 Mar 17:00 BST: two full 8h days across the change.
        pytest.param(LONDON, utc(2026, 3, 27, 9), utc(2026, 3, 30, 16), 16 * H, id="dst-days"),
        pytest.param(NIGHTS, utc(2026, 3, 29), utc(2026, 3, 29, 23), 3 * H, id="night-spring"),
        pytest.param(NIGHTS, utc(2026, 10, 24, 23), utc(2026, 10, 25, 12), 5 * H, id="night-fall"),
        pytest.param(
            LONDON,
            utc(2026, 1, 13, 10, 15),
            utc(2026, 1, 13, 11, 45),
            timedelta(minutes=90),
            id="same-window",
        ),
        pytest.param(LONDON, utc(2026, 1, 13, 12), utc(2026, 1, 13, 11), 0 * H, id="reversed"),
        pytest.param(LONDON, utc(2026, 1, 17), utc(2026, 1, 19), 0 * H, id="weekend"),
    ],
)
def test_between(
    calendar: BusinessCalendar, start: datetime, end: datetime, elapsed: timedelta
) -> None:
    assert calendar.between(start, end) == elapsed


def test_is_business_time() -> None:
    assert LONDON.is_business_time(london(2026, 7, 1, 9))  # opening is inside
    assert not LONDON.is_business_time(london(2026, 7, 1, 17))  # closing is outside
    assert not LONDON.is_business_time(utc(2026, 7, 1, 16, 30))  # 17:30 BST
    assert not LONDON.is_business_time(utc(2026, 12, 25, 12))  # Christmas Day
    assert NEW_YORK.is_business_time(utc(2026, 7, 1, 13, 30))  # 09:30 EDT


def test_holidays_in() -> None:
    calendar = BusinessCalendar(
        "Europe/London",
        country="GB",
        subdivision="ENG",
        closed_days=frozenset({date(2026, 12, 24), date(2027, 1, 4)}),
        open_days=frozenset({date(2026, 12, 28)}),
    )
    found = calendar.holidays_in(2026)
    assert found[date(2026, 12, 24)] == "closed"
    assert found[date(2026, 12, 25)] == "Christmas Day"
    assert date(2026, 12, 28) not in found
    assert date(2027, 1, 4) not in found
    assert BusinessCalendar(closed_days=frozenset({date(2027, 1, 4)})).holidays_in(2027) == {
        date(2027, 1, 4): "closed"
    }


def test_refusals() -> None:
    with pytest.raises(ValueError, match="negative"):
        LONDON.add(utc(2026, 1, 13), -H)
    with pytest.raises(ValueError, match="aware"):
        LONDON.add(datetime(2026, 1, 13), H)
    never = BusinessCalendar(hours={})
    with pytest.raises(CalendarError, match="no working time"):
        never.add(utc(2026, 1, 13), H)
    assert never.between(utc(2026, 1, 1), utc(2026, 2, 1)) == timedelta(0)
    assert not never.is_business_time(utc(2026, 1, 13, 12))


# --- laws --------------------------------------------------------------------------------

CALENDARS = [
    LONDON,
    NEW_YORK,
    NIGHTS,
    BusinessCalendar("Asia/Tokyo", country="JP"),
    BusinessCalendar(
        "Australia/Sydney", hours={6: (time(10), time(12, 30)), 7: (time(23), time(23, 59))}
    ),
]


@hypothesis_settings(max_examples=150, deadline=None)
@given(
    calendar=st.sampled_from(CALENDARS),
    start=st.datetimes(datetime(2025, 1, 1), datetime(2028, 12, 31), timezones=st.just(UTC)),
    micros=st.lists(st.integers(0, 200 * 3600 * 10**6), min_size=2, max_size=2),
)
def test_between_inverts_add_and_add_is_monotonic(
    calendar: BusinessCalendar, start: datetime, micros: list[int]
) -> None:
    short, long = (timedelta(microseconds=m) for m in sorted(micros))
    due_short, due_long = calendar.add(start, short), calendar.add(start, long)
    assert calendar.between(start, due_short) == short
    assert calendar.between(start, due_long) == long
    assert start <= due_short <= due_long


# --- settings ----------------------------------------------------------------------------

SETTINGS: dict[str, Any] = {
    "time_zone": "Europe/London",
    "working_hours": {"mon": ["09:00", "17:30"], "fri": ["08:15:30", "16:00"]},
    "country": "GB",
    "subdivision": "ENG",
    "closed_days": ["2026-12-24"],
    "open_days": ["2026-12-28"],
}


def test_settings_round_trip() -> None:
    calendar = BusinessCalendar.from_settings(SETTINGS)
    assert calendar.hours == {1: (time(9), time(17, 30)), 5: (time(8, 15, 30), time(16))}
    assert calendar.closed_days == {date(2026, 12, 24)}
    assert calendar.to_settings() == SETTINGS
    assert BusinessCalendar.from_settings(calendar.to_settings()) == calendar
    assert BusinessCalendar.from_settings(BusinessCalendar().to_settings()) == BusinessCalendar()
    # Nulls (as an API schema with optional fields stores them) mean the defaults.
    nulls = {"time_zone": "UTC", "working_hours": None, "country": None, "closed_days": None}
    assert BusinessCalendar.from_settings(nulls) == BusinessCalendar()


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone"),
        ({"time_zone": 5}, "time_zone"),
        ({"country": "XX"}, "country"),
        ({"country": "GB", "subdivision": "ZZZ"}, "subdivision"),
        ({"subdivision": "ENG"}, "subdivision"),
        ({"working_hours": {"mon": ["17:00", "09:00"]}}, "working_hours.mon"),
        ({"working_hours": {"tue": ["09:00", "09:00"]}}, "working_hours.tue"),
        ({"working_hours": {"mon": ["9am", "17:00"]}}, "working_hours.mon"),
        ({"working_hours": {"mon": ["25:00", "26:00"]}}, "working_hours.mon"),
        ({"working_hours": {"mon": ["09:00"]}}, "working_hours.mon"),
        ({"working_hours": {"monday": ["09:00", "17:00"]}}, "working_hours"),
        ({"working_hours": ["09:00", "17:00"]}, "working_hours"),
        ({"timezone": "UTC"}, "timezone"),
        ({"closed_days": ["2026-02-30"]}, "closed_days"),
        ({"closed_days": "2026-12-24"}, "closed_days"),
        ({"open_days": [f"2026-01-{d:02}" for d in range(1, 32)] * 12}, "open_days"),
    ],
)
def test_settings_errors_name_the_field(settings: dict[str, Any], field: str) -> None:
    with pytest.raises(CalendarError, match=re.escape(field)):
        BusinessCalendar.from_settings(settings)


def test_constructor_validates_too() -> None:
    with pytest.raises(CalendarError, match=r"working_hours\.wed"):
        BusinessCalendar(hours={3: (time(17), time(9))})
    with pytest.raises(CalendarError, match="closed_days"):
        BusinessCalendar(closed_days=frozenset(date(2026, 1, 1) + timedelta(d) for d in range(367)))
