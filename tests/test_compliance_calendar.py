"""The obligations calendar (bpo.compliance.calendar): recurrence rules expanded to deadlines,
rolled off weekends and public holidays, due instants across daylight-saving changes, and the
template library against real due dates. Pure: no database, no web."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from bpo.compliance import calendar, templates
from bpo.compliance.calendar import (
    MAX_HORIZON_DAYS,
    TEMPLATES,
    Deadline,
    RuleError,
    Schedule,
    check,
    deadlines,
    due_at,
    is_business_day,
    remind_on,
    roll,
    template_schedule,
)

QUARTER_ENDS = "FREQ=MONTHLY;BYMONTH=3,6,9,12;BYMONTHDAY=-1"


def dues(schedule: Schedule, start: date, end: date) -> list[date]:
    return [d.due for d in deadlines(schedule, start, end)]


def periods(schedule: Schedule, start: date, end: date) -> list[date]:
    return [d.period for d in deadlines(schedule, start, end)]


# --- recurrences and offsets ------------------------------------------------------------


def test_quarterly_30_days_after_quarter_end_over_four_years() -> None:
    rule = Schedule(QUARTER_ENDS, date(2024, 1, 1), offset_days=30, roll="none")
    found = deadlines(rule, date(2024, 1, 1), date(2027, 12, 31))
    expected = [date(2024, 4, 30), date(2024, 7, 30), date(2024, 10, 30)]
    for year in (2025, 2026, 2027):
        expected += [date(year, 1, 30), date(year, 4, 30), date(year, 7, 30), date(year, 10, 30)]
    assert [d.due for d in found] == sorted(expected)
    assert all(d.nominal == d.due and d.rolled is None for d in found)
    assert found[0] == Deadline(date(2024, 3, 31), date(2024, 4, 30), date(2024, 4, 30), None)

    rolled = {d.nominal: (d.due, d.rolled) for d in deadlines(
        Schedule(QUARTER_ENDS, date(2024, 1, 1), offset_days=30), date(2024, 1, 1),
        date(2027, 12, 31),
    ) if d.rolled}  # fmt: skip
    assert rolled == {
        date(2027, 1, 30): (date(2027, 2, 1), "Saturday"),
        date(2027, 10, 30): (date(2027, 11, 1), "Saturday"),
    }


def test_the_window_is_by_due_date_and_nothing_precedes_the_anchor() -> None:
    rule = Schedule(QUARTER_ENDS, date(2026, 1, 1), offset_months=1)
    # Q4 2025 is before the anchor: its 2 Feb 2026 deadline is not generated.
    assert periods(rule, date(2026, 1, 1), date(2026, 12, 31)) == [
        date(2026, 3, 31), date(2026, 6, 30), date(2026, 9, 30),
    ]  # fmt: skip
    # A deadline due in the window whose period is before it is included.
    assert periods(rule, date(2026, 4, 1), date(2026, 5, 31)) == [date(2026, 3, 31)]


def test_any_window_is_a_slice_of_a_wider_one() -> None:
    """The periods looked at are derived from the window by undoing the offsets: check it
    against the deadlines of a wider window, for many offsets, rolls and windows."""
    rng = random.Random(7)
    rules = [QUARTER_ENDS, "FREQ=MONTHLY;BYMONTHDAY=-1", "FREQ=MONTHLY;BYMONTHDAY=5,20",
             "FREQ=YEARLY", "FREQ=WEEKLY;BYDAY=FR", "FREQ=MONTHLY;BYDAY=-1FR"]  # fmt: skip
    for _ in range(150):
        schedule = Schedule(
            rng.choice(rules),
            date(2024, 1, 1) + timedelta(days=rng.randrange(400)),
            offset_days=rng.randrange(-40, 60),
            offset_months=rng.randrange(-3, 4),
            roll=rng.choice(calendar.ROLLS),  # type: ignore[arg-type]
            jurisdiction=rng.choice(["US", "GB-SCT", "DE-BY", "JP", "CN"]),
        )
        start = date(2025, 1, 1) + timedelta(days=rng.randrange(500))
        end = start + timedelta(days=rng.randrange(120))
        wide = deadlines(schedule, date(2024, 6, 1), date(2027, 6, 1))
        assert deadlines(schedule, start, end) == [d for d in wide if start <= d.due <= end]
        assert [(d.due, d.period) for d in wide] == sorted((d.due, d.period) for d in wide)


def test_fast_expansion_matches_dateutil() -> None:
    """MONTHLY/YEARLY by month and month day are expanded without dateutil: same dates."""
    rng = random.Random(11)
    days = [1, 5, 15, 28, 29, 30, 31, -1, -2, -3, -31]
    anchors = [date(2024, 2, 29), date(2025, 1, 31), date(2025, 8, 30), date(2023, 12, 31)]
    for _ in range(300):
        parts = [rng.choice(["FREQ=MONTHLY", "FREQ=YEARLY"])]
        if rng.random() < 0.4:
            parts.append(f"INTERVAL={rng.randint(1, 5)}")
        if rng.random() < 0.5:
            months = rng.sample(range(1, 13), rng.randint(1, 4))
            parts.append("BYMONTH=" + ",".join(map(str, months)))
        if rng.random() < 0.7:
            parts.append("BYMONTHDAY=" + ",".join(map(str, rng.sample(days, rng.randint(1, 3)))))
        if rng.random() < 0.2:
            parts.append(f"UNTIL=2027{rng.randint(1, 12):02d}15")
        rule = calendar._parse(";".join(parts))
        assert rule.fast
        anchor = rng.choice(anchors) + timedelta(days=rng.choice([0, 0, 1, 17]))
        if not calendar._occurs(rule, anchor):
            continue  # check() refuses it; dateutil would walk to the year 9999
        lo = date(2023, 6, 1) + timedelta(days=rng.randrange(900))
        hi = lo + timedelta(days=rng.randrange(1, 1500))
        assert calendar._expand_fast(rule, anchor, lo, hi) == calendar._expand_dateutil(
            rule, anchor, lo, hi
        ), (parts, anchor, lo, hi)


def test_count_until_and_dateutil_rules() -> None:
    month_ends = "FREQ=MONTHLY;BYMONTHDAY=-1"
    window = (date(2026, 1, 1), date(2027, 12, 31))
    counted = Schedule(month_ends + ";COUNT=3", date(2026, 1, 1), roll="none")
    assert periods(counted, *window) == [date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31)]
    until = Schedule(month_ends + ";UNTIL=20260430", date(2026, 1, 1), roll="none")
    assert periods(until, *window)[-1] == date(2026, 4, 30)
    assert len(periods(until, *window)) == 4
    last_friday = Schedule("FREQ=MONTHLY;BYDAY=-1FR", date(2026, 1, 1))
    assert periods(last_friday, date(2026, 1, 1), date(2026, 3, 31)) == [
        date(2026, 1, 30), date(2026, 2, 27), date(2026, 3, 27),
    ]  # fmt: skip
    fortnightly = Schedule("FREQ=WEEKLY;INTERVAL=2;BYDAY=FR", date(2026, 1, 2))
    assert periods(fortnightly, date(2026, 1, 1), date(2026, 2, 1)) == [
        date(2026, 1, 2), date(2026, 1, 16), date(2026, 1, 30),
    ]  # fmt: skip
    lower = Schedule("rrule:freq=monthly;bymonthday=-1", date(2026, 1, 1), roll="none")
    assert periods(lower, date(2026, 1, 1), date(2026, 2, 28)) == [
        date(2026, 1, 31), date(2026, 2, 28),
    ]  # fmt: skip


def test_results_are_copies_of_the_cache() -> None:
    rule = Schedule(QUARTER_ENDS, date(2026, 1, 1))
    first = deadlines(rule, date(2026, 1, 1), date(2026, 12, 31))
    first.clear()
    assert len(deadlines(rule, date(2026, 1, 1), date(2026, 12, 31))) == 4


# --- rolling ----------------------------------------------------------------------------


def test_weekends_roll_forward_backward_and_within_the_month() -> None:
    saturday, sunday = date(2026, 8, 15), date(2026, 8, 16)
    assert roll(saturday, "US", "following") == (date(2026, 8, 17), "Saturday")
    assert roll(sunday, "US", "following") == (date(2026, 8, 17), "Sunday")
    assert roll(saturday, "US", "preceding") == (date(2026, 8, 14), "Saturday")
    assert roll(saturday, "US", "modified_following") == (date(2026, 8, 17), "Saturday")
    assert roll(saturday, "US", "none") == (saturday, None)
    assert roll(date(2026, 8, 14), "US", "following") == (date(2026, 8, 14), None)
    # Saturday 30 May 2026: Monday is in June, so modified following goes back to Friday.
    assert roll(date(2026, 5, 30), "US", "modified_following") == (date(2026, 5, 29), "Saturday")
    assert roll(date(2026, 5, 30), "US", "following") == (date(2026, 6, 1), "Saturday")


def test_us_holidays_and_the_district_of_columbia() -> None:
    assert roll(date(2026, 7, 3), "US", "following") == (
        date(2026, 7, 6), "Independence Day (observed)",
    )  # fmt: skip
    assert roll(date(2026, 7, 4), "US", "preceding") == (date(2026, 7, 2), "Independence Day")
    # Emancipation Day (16 April, observed Friday 15 April 2022) is DC's, not federal.
    assert roll(date(2022, 4, 15), "US-DC", "following") == (
        date(2022, 4, 18), "Emancipation Day (observed)",
    )  # fmt: skip
    assert is_business_day(date(2022, 4, 15), "US")
    # An observed day in the year before the holiday: New Year 2022 on Friday 31 Dec 2021.
    assert not is_business_day(date(2021, 12, 31), "US")


def test_irs_tax_day_moves_for_emancipation_day() -> None:
    """Form 1120's 15 April for calendar years: the known moves to the 17th and 18th."""
    schedule = template_schedule(TEMPLATES["us-irs-1120"], date(2015, 1, 1))
    assert dues(schedule, date(2016, 1, 1), date(2023, 12, 31)) == [
        date(2016, 4, 18), date(2017, 4, 18), date(2018, 4, 17), date(2019, 4, 15),
        date(2020, 4, 15), date(2021, 4, 15), date(2022, 4, 18), date(2023, 4, 18),
    ]  # fmt: skip
    federal = template_schedule(TEMPLATES["us-irs-1120"], date(2015, 1, 1), jurisdiction="US")
    assert dues(federal, date(2022, 1, 1), date(2022, 12, 31)) == [date(2022, 4, 15)]


def test_uk_subdivisions() -> None:
    assert not is_business_day(date(2026, 1, 2), "GB-SCT")  # 2 January: Scotland only
    assert is_business_day(date(2026, 1, 2), "GB-ENG")
    assert not is_business_day(date(2026, 8, 3), "GB-SCT")  # summer bank holidays differ
    assert is_business_day(date(2026, 8, 3), "GB-ENG")
    assert roll(date(2026, 8, 31), "GB-ENG", "following") == (
        date(2026, 9, 1), "Late Summer Bank Holiday",
    )  # fmt: skip
    assert is_business_day(date(2026, 8, 31), "GB-SCT")


def test_germany_france_japan() -> None:
    assert roll(date(2026, 1, 6), "DE-BY", "following") == (date(2026, 1, 7), "Epiphany")
    assert is_business_day(date(2026, 1, 6), "DE-BE")
    assert is_business_day(date(2026, 1, 6), "DE")
    assert roll(date(2026, 7, 14), "FR", "following") == (date(2026, 7, 15), "National Day")
    # Golden Week 2026: Sat 2, Sun 3 (Constitution Day), Mon 4, Tue 5, Wed 6 (substitute).
    assert roll(date(2026, 5, 2), "JP", "following") == (date(2026, 5, 7), "Saturday")
    assert roll(date(2026, 5, 4), "JP", "preceding") == (date(2026, 5, 1), "Greenery Day")
    assert [d for d in (date(2026, 5, 1) + timedelta(days=n) for n in range(7))
            if is_business_day(d, "JP")] == [date(2026, 5, 1), date(2026, 5, 7)]  # fmt: skip


def test_other_weekends_and_working_saturdays() -> None:
    assert not is_business_day(date(2026, 1, 9), "SA")  # Friday: the Saudi weekend
    assert is_business_day(date(2026, 1, 11), "SA")  # Sunday: a working day
    assert is_business_day(date(2026, 2, 14), "CN")  # a make-up working Saturday
    assert not is_business_day(date(2026, 2, 7), "CN")
    assert roll(date(2026, 2, 16), "CN", "following") == (
        date(2026, 2, 24), "Chinese New Year's Eve",
    )  # fmt: skip


# --- leap years -------------------------------------------------------------------------


def test_last_day_of_february_and_the_29th() -> None:
    last = Schedule("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=-1", date(2027, 1, 1), roll="none")
    assert periods(last, date(2027, 1, 1), date(2029, 12, 31)) == [
        date(2027, 2, 28), date(2028, 2, 29), date(2029, 2, 28),
    ]  # fmt: skip
    # A date that does not exist is skipped (RFC 5545, dateutil): leap years only.
    leap = Schedule("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", date(2027, 1, 1), roll="none")
    assert periods(leap, date(2027, 1, 1), date(2033, 12, 31)) == [
        date(2028, 2, 29), date(2032, 2, 29),
    ]  # fmt: skip
    anchored = Schedule("FREQ=YEARLY", date(2024, 2, 29), roll="none")
    assert periods(anchored, date(2024, 1, 1), date(2033, 12, 31)) == [
        date(2024, 2, 29), date(2028, 2, 29), date(2032, 2, 29),
    ]  # fmt: skip


def test_offset_months_clamp_and_keep_the_month_end() -> None:
    def nominal(rule: str, months: int) -> list[date]:
        schedule = Schedule(rule, date(2027, 1, 1), offset_months=months, roll="none")
        return [d.nominal for d in deadlines(schedule, date(2027, 1, 1), date(2028, 12, 31))]

    assert nominal("FREQ=YEARLY;BYMONTH=1;BYMONTHDAY=31", 1) == [
        date(2027, 2, 28), date(2028, 2, 29),
    ]  # fmt: skip
    # 28 February 2027 is its month's end, so it stays one; in 2028 it is not.
    assert nominal("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=28", 1) == [
        date(2027, 3, 31), date(2028, 3, 28),
    ]  # fmt: skip
    assert nominal("FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=31", -1) == [
        date(2027, 2, 28), date(2028, 2, 29),
    ]  # fmt: skip
    assert nominal("FREQ=YEARLY;BYMONTH=8;BYMONTHDAY=31", 1) == [
        date(2027, 9, 30), date(2028, 9, 30),
    ]  # fmt: skip


# --- due instants across daylight-saving changes ----------------------------------------


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("day", "zone", "instant"),
    [
        (date(2026, 3, 7), "America/New_York", utc(2026, 3, 8, 5)),  # midnight EST
        (date(2026, 3, 8), "America/New_York", utc(2026, 3, 9, 4)),  # the 23-hour day
        (date(2026, 10, 31), "America/New_York", utc(2026, 11, 1, 4)),
        (date(2026, 11, 1), "America/New_York", utc(2026, 11, 2, 5)),  # the 25-hour day
        (date(2026, 3, 28), "Europe/London", utc(2026, 3, 29, 0)),
        (date(2026, 3, 29), "Europe/London", utc(2026, 3, 29, 23)),  # BST from 01:00 GMT
        (date(2026, 10, 24), "Europe/London", utc(2026, 10, 24, 23)),
        (date(2026, 10, 25), "Europe/London", utc(2026, 10, 26, 0)),
        (date(2026, 6, 30), "UTC", utc(2026, 7, 1, 0)),
        # Midnight skipped (Santiago, 6 Sep 2026 00:00 -> 01:00): the day ends when it jumps.
        (date(2026, 9, 5), "America/Santiago", utc(2026, 9, 6, 4)),
        # Midnight twice (Havana, 1 Nov 2026 01:00 -> 00:00): the day ends at the first.
        (date(2026, 10, 31), "America/Havana", utc(2026, 11, 1, 4)),
    ],
)
def test_due_at_is_the_end_of_the_local_day(day: date, zone: str, instant: datetime) -> None:
    found = due_at(day, zone)
    assert found == instant
    assert found.utcoffset() == timedelta(0)


def test_days_around_the_switch_are_neither_lost_nor_doubled() -> None:
    daily = Schedule("FREQ=DAILY", date(2026, 3, 1), roll="none")
    found = deadlines(daily, date(2026, 3, 6), date(2026, 3, 10))
    assert [d.due for d in found] == [date(2026, 3, 6) + timedelta(days=n) for n in range(5)]
    ends = [due_at(d.due, "America/New_York") for d in found]
    hours = [(b - a) / timedelta(hours=1) for a, b in itertools.pairwise(ends)]
    assert hours == [24, 23, 24, 24]  # 8 March 2026: the 23-hour day
    on_switch = Schedule("FREQ=MONTHLY;BYMONTHDAY=8", date(2026, 1, 1), roll="none")
    assert dues(on_switch, date(2026, 3, 1), date(2026, 3, 31)) == [date(2026, 3, 8)]
    autumn = Schedule("FREQ=MONTHLY;BYMONTHDAY=1", date(2026, 1, 1), roll="none")
    assert dues(autumn, date(2026, 11, 1), date(2026, 11, 1)) == [date(2026, 11, 1)]


def test_remind_on() -> None:
    deadline = Deadline(date(2026, 3, 31), date(2026, 4, 30), date(2026, 4, 30), None)
    assert remind_on(deadline, 14) == date(2026, 4, 16)
    assert remind_on(deadline, 0) == date(2026, 4, 30)
    assert remind_on(deadline, 5) == date(2026, 4, 25)  # a Saturday: reminders do not roll


# --- invalid input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rrule", "fragment"),
    [
        ("garbage", "'garbage' is not NAME=VALUE"),
        ("", "empty rule"),
        ("FREQ=FORTNIGHTLY", "FREQ=FORTNIGHTLY is not a frequency (RFC 5545: SECONDLY"),
        ("FREQ=HOURLY", "FREQ=HOURLY: a deadline is a day"),
        ("FREQ=MINUTELY;INTERVAL=15", "FREQ=MINUTELY: a deadline is a day"),
        ("FREQ=DAILY;BYHOUR=9", "BYHOUR: a deadline is a day, not a time of day"),
        ("FREQ=MONTHLY;BYFOO=1", "BYFOO is not an RRULE part"),
        ("FREQ=MONTHLY;BYEASTER=0", "BYEASTER is not an RRULE part"),
        ("FREQ=MONTHLY;INTERVAL=0", "INTERVAL=0: expected a whole number from 1 to 120"),
        ("FREQ=YEARLY;INTERVAL=11", "INTERVAL=11: expected a whole number from 1 to 10"),
        ("FREQ=MONTHLY;BYMONTH=13", "BYMONTH=13: 13 is out of range (1..12)"),
        ("FREQ=MONTHLY;BYMONTHDAY=0", "BYMONTHDAY=0: 0 is out of range"),
        ("FREQ=MONTHLY;BYMONTHDAY=x", "'X' is not an integer"),
        ("FREQ=MONTHLY;BYDAY=XX", "BYDAY=XX: 'XX' is not a weekday"),
        ("FREQ=WEEKLY;BYDAY=-1FR", "a numbered BYDAY (e.g. -1FR) is only for MONTHLY"),
        ("FREQ=MONTHLY;BYWEEKNO=1", "BYWEEKNO is only for FREQ=YEARLY"),
        ("FREQ=MONTHLY;BYSETPOS=-1", "BYSETPOS needs another BYxxx part"),
        ("BYMONTHDAY=1", "FREQ is required"),
        ("FREQ=MONTHLY;FREQ=YEARLY", "FREQ is given twice"),
        ("DTSTART:20260101\nRRULE:FREQ=MONTHLY", "DTSTART is the schedule's anchor"),
        ("FREQ=MONTHLY;COUNT=2;UNTIL=20261231", "COUNT and UNTIL must not both be given"),
        ("FREQ=MONTHLY;UNTIL=2026-12-31", "UNTIL=2026-12-31: expected a date YYYYMMDD"),
        ("FREQ=MONTHLY;UNTIL=20251231", "UNTIL 2025-12-31 is before the anchor 2026-01-01"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "the rule never occurs in the 40 years"),
        ("FREQ=DAILY;BYMONTH=4;BYMONTHDAY=31", "the rule never occurs"),
        ("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=6", "the rule never occurs"),
        ("FREQ=YEARLY;INTERVAL=4;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO", "the rule never occurs"),
        ("FREQ=MONTHLY;COUNT=0", "COUNT=0: expected a whole number from 1 to 10000"),
    ],
)
def test_invalid_rules(rrule: str, fragment: str) -> None:
    with pytest.raises(RuleError) as caught:
        check(Schedule(rrule, date(2026, 1, 1)))
    assert caught.value.field == "rrule"
    assert fragment in caught.value.detail
    assert isinstance(caught.value, ValueError)
    assert str(caught.value).startswith("rrule: ")


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"jurisdiction": "XX"}, "jurisdiction", "XX is not a country the holidays package"),
        ({"jurisdiction": "US-ZZ"}, "jurisdiction", "ZZ is not a subdivision of US (known: AK"),
        ({"jurisdiction": "us"}, "jurisdiction", "'us' is not an ISO 3166-1 alpha-2"),
        ({"jurisdiction": "GB-XYZ"}, "jurisdiction", "XYZ is not a subdivision of GB"),
        ({"offset_days": 367}, "offset_days", "from -366 to 366, got 367"),
        ({"offset_months": -25}, "offset_months", "from -24 to 24, got -25"),
        ({"offset_days": True}, "offset_days", "expected a whole number"),
        ({"roll": "nearest"}, "roll", "'nearest' is not one of following, preceding"),
        ({"anchor": datetime(2026, 1, 1)}, "anchor", "expected a date, got datetime"),
        ({"anchor": date(1800, 1, 1)}, "anchor", "outside the years 1900..2199"),
        ({"rrule": "FREQ=MONTHLY;" + "BYMONTHDAY=1;" * 40}, "rrule", "at most 500 characters"),
    ],
)
def test_invalid_schedules(changes: dict[str, object], field: str, fragment: str) -> None:
    fields: dict[str, object] = {"rrule": QUARTER_ENDS, "anchor": date(2026, 1, 1)} | changes
    with pytest.raises(RuleError) as caught:
        check(Schedule(**fields))  # type: ignore[arg-type]
    assert (caught.value.field, fragment in caught.value.detail) == (field, True)


def test_invalid_windows_zones_and_leads() -> None:
    rule = Schedule(QUARTER_ENDS, date(2026, 1, 1))
    with pytest.raises(RuleError, match=r"horizon: end 2025-12-31 is before start 2026-01-01"):
        deadlines(rule, date(2026, 1, 1), date(2025, 12, 31))
    far = date(2026, 1, 1) + timedelta(days=MAX_HORIZON_DAYS + 1)
    with pytest.raises(RuleError, match=rf"horizon: .* is {MAX_HORIZON_DAYS + 1} days; at most"):
        deadlines(rule, date(2026, 1, 1), far)
    assert deadlines(rule, date(2026, 1, 1), far - timedelta(days=1))  # exactly the maximum
    with pytest.raises(RuleError, match=r"tz: 'Mars/Olympus' is not an IANA time zone"):
        due_at(date(2026, 1, 1), "Mars/Olympus")
    with pytest.raises(RuleError, match=r"tz: '\.\./etc' is not"):
        due_at(date(2026, 1, 1), "../etc")
    deadline = deadlines(rule, date(2026, 1, 1), date(2026, 12, 31))[0]
    with pytest.raises(RuleError, match=r"lead_days: expected a whole number from 0 to 366"):
        remind_on(deadline, -1)
    with pytest.raises(RuleError, match=r"jurisdiction: "):
        is_business_day(date(2026, 1, 1), "Narnia")
    with pytest.raises(RuleError, match=r"roll: 'sideways' is not one of"):
        roll(date(2026, 1, 1), "US", "sideways")  # type: ignore[arg-type]


# --- templates --------------------------------------------------------------------------

PER_YEAR = {
    "us-irs-941": 4, "us-irs-940": 1, "us-ssa-w2": 1, "us-irs-1099-nec": 1, "us-irs-1120": 1,
    "us-ny-st100": 4, "gb-hmrc-vat": 4, "gb-hmrc-paye": 12, "gb-hmrc-ct": 1, "gb-ch-cs01": 1,
    "gb-ch-accounts": 1, "de-ustva": 12, "de-lsta": 12, "fr-dgfip-ca3": 12,
    "jp-nta-withholding": 12, "eu-aifmd-annex-iv": 4,
}  # fmt: skip


def test_every_template_checks_and_recurs_as_often_as_expected() -> None:
    assert set(TEMPLATES) == set(PER_YEAR)
    assert calendar.TEMPLATES is templates.TEMPLATES and calendar.Template is templates.Template
    for key, template in TEMPLATES.items():
        assert template.key == key
        assert template.evidence and template.basis and 0 <= template.lead_days <= 366
        schedule = template_schedule(template, date(2024, 1, 1))
        check(schedule)
        for year in (2026, 2027, 2028):
            found = deadlines(schedule, date(year, 1, 1), date(year, 12, 31))
            assert len(found) == PER_YEAR[key], (key, year)
            assert all(is_business_day(d.due, template.jurisdiction) for d in found
                       if template.roll != "none"), key  # fmt: skip


def deadline_of(key: str, period: date, rrule: str | None = None) -> Deadline:
    """The deadline of one period of a template (with another rule, e.g. another year end)."""
    schedule = template_schedule(TEMPLATES[key], date(2024, 1, 1))
    if rrule is not None:
        schedule = replace(schedule, rrule=rrule)
    found = deadlines(schedule, period, period + timedelta(days=400))
    return next(d for d in found if d.period == period)


def test_real_due_dates() -> None:
    assert deadline_of("us-irs-941", date(2026, 3, 31)).due == date(2026, 4, 30)
    assert deadline_of("us-irs-941", date(2026, 6, 30)).due == date(2026, 7, 31)
    q3 = deadline_of("us-irs-941", date(2026, 9, 30))  # 31 October 2026 is a Saturday
    assert (q3.nominal, q3.due, q3.rolled) == (date(2026, 10, 31), date(2026, 11, 2), "Saturday")
    assert deadline_of("us-irs-940", date(2026, 12, 31)).due == date(2027, 2, 1)  # Sun 31 Jan
    assert deadline_of("us-ssa-w2", date(2025, 12, 31)).due == date(2026, 2, 2)  # Sat 31 Jan
    assert deadline_of("us-ny-st100", date(2028, 2, 29)).due == date(2028, 3, 20)
    assert deadline_of("us-ny-st100", date(2026, 5, 31)).due == date(2026, 6, 22)  # Sat 20 Jun
    assert deadline_of("gb-hmrc-vat", date(2026, 3, 31)).due == date(2026, 5, 7)
    vat = deadline_of("gb-hmrc-vat", date(2026, 12, 31))  # Sunday 7 Feb 2027: pay by Friday
    assert (vat.nominal, vat.due) == (date(2027, 2, 7), date(2027, 2, 5))
    assert deadline_of("gb-hmrc-paye", date(2026, 2, 5)).due == date(2026, 2, 20)  # Sun 22nd
    march = deadline_of(
        "gb-hmrc-ct", date(2026, 3, 31), rrule="FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=31"
    )
    assert (march.nominal, march.due, march.rolled) == (
        date(2027, 1, 1), date(2026, 12, 31), "New Year's Day",
    )  # fmt: skip
    assert deadline_of("gb-ch-accounts", date(2026, 12, 31)).due == date(2027, 9, 30)
    feb = deadline_of(
        "gb-ch-accounts", date(2027, 2, 28), rrule="FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=-1"
    )
    assert feb.due == date(2027, 11, 30)  # an ARD at a month end: the month end
    cs01 = template_schedule(TEMPLATES["gb-ch-cs01"], date(2024, 6, 12))
    assert dues(cs01, date(2026, 1, 1), date(2026, 12, 31)) == [date(2026, 6, 26)]
    assert deadline_of("de-ustva", date(2025, 12, 31)).due == date(2026, 1, 12)  # Sat 10 Jan
    assert deadline_of("de-lsta", date(2026, 4, 30)).due == date(2026, 5, 11)  # Sun 10 May
    assert deadline_of("jp-nta-withholding", date(2025, 12, 31)).due == date(2026, 1, 13)
    assert deadline_of("fr-dgfip-ca3", date(2026, 4, 30)).due == date(2026, 5, 15)
    assert deadline_of("eu-aifmd-annex-iv", date(2026, 6, 30)).due == date(2026, 7, 30)


def test_templates_in_another_jurisdiction() -> None:
    sixth = replace(template_schedule(TEMPLATES["de-ustva"], date(2024, 1, 1)), offset_days=6)
    bavaria = template_schedule(TEMPLATES["de-ustva"], date(2024, 1, 1), jurisdiction="DE-BY")
    assert bavaria.jurisdiction == "DE-BY"
    window = (date(2026, 1, 1), date(2026, 1, 31))
    assert dues(sixth, *window) == [date(2026, 1, 6)]
    assert dues(replace(sixth, jurisdiction="DE-BY"), *window) == [date(2026, 1, 7)]
