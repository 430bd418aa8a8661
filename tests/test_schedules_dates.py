"""The dates a schedule fires on: pure functions, no database.

Expected instants are written out by hand, in local time and in UTC, rather
than computed with the code under test.
"""

import datetime

import pytest

from billruns.models import Schedule
from billruns.schedules import (
    bill_cycle_days_for,
    describe_repeats,
    next_occurrences,
    occurrence_key,
    run_date,
)

UTC = datetime.UTC


def rule(**fields):
    values = {
        "name": "test",
        "repeats": Schedule.Repeats.MONTHLY,
        "weekdays": [],
        "day_of_month": 1,
        "last_day_of_month": False,
        "run_time": datetime.time(6, 0),
        "time_zone": "UTC",
        "start_date": datetime.date(2026, 1, 1),
        "end_date": None,
        "skipped_occurrences": [],
        "bill_cycle_day": Schedule.BCD_ALL,
    } | fields
    return Schedule(**values)


def utc(*args):
    return datetime.datetime(*args, tzinfo=UTC)


def dates(occurrences):
    return [at.date() for at in occurrences]


def d(text):
    return datetime.date.fromisoformat(text)


# --- daily -----------------------------------------------------------------------


def test_daily_runs_every_day_across_the_end_of_february():
    schedule = rule(repeats="daily")

    occurrences = next_occurrences(schedule, after=utc(2026, 2, 27), count=3)

    assert occurrences == [utc(2026, 2, 27, 6), utc(2026, 2, 28, 6), utc(2026, 3, 1, 6)]


def test_daily_runs_on_the_29th_of_february_in_a_leap_year():
    schedule = rule(repeats="daily", start_date=d("2028-01-01"))

    occurrences = next_occurrences(schedule, after=utc(2028, 2, 27, 12), count=3)

    assert dates(occurrences) == [d("2028-02-28"), d("2028-02-29"), d("2028-03-01")]


def test_an_occurrence_exactly_at_after_is_not_next():
    schedule = rule(repeats="daily")

    assert next_occurrences(schedule, after=utc(2026, 3, 1, 6), count=1) == [utc(2026, 3, 2, 6)]


def test_no_occurrence_before_the_start_date():
    schedule = rule(repeats="daily", start_date=d("2026-05-10"))

    assert next_occurrences(schedule, after=utc(2026, 1, 1), count=1) == [utc(2026, 5, 10, 6)]


def test_the_end_date_is_the_last_possible_run_date():
    schedule = rule(repeats="daily", end_date=d("2026-03-03"))

    occurrences = next_occurrences(schedule, after=utc(2026, 3, 1), count=15)

    assert dates(occurrences) == [d("2026-03-01"), d("2026-03-02"), d("2026-03-03")]


# --- weekly ----------------------------------------------------------------------


def test_weekly_runs_on_the_chosen_weekdays_only():
    # 0 = Monday, 3 = Thursday; 2026-02-23 is a Monday.
    schedule = rule(repeats="weekly", weekdays=[3, 0])

    occurrences = next_occurrences(schedule, after=utc(2026, 2, 23), count=5)

    assert dates(occurrences) == [
        d("2026-02-23"),
        d("2026-02-26"),
        d("2026-03-02"),
        d("2026-03-05"),
        d("2026-03-09"),
    ]
    assert {at.weekday() for at in occurrences} == {0, 3}


def test_weekly_on_sunday_reaches_the_29th_of_february():
    # 2032-02-29 is a Sunday.
    schedule = rule(repeats="weekly", weekdays=[6], start_date=d("2032-01-01"))

    occurrences = next_occurrences(schedule, after=utc(2032, 2, 25), count=2)

    assert dates(occurrences) == [d("2032-02-29"), d("2032-03-07")]


def test_weekly_without_a_weekday_has_no_occurrence():
    assert next_occurrences(rule(repeats="weekly", weekdays=[]), after=utc(2026, 1, 1)) == []


# --- monthly ---------------------------------------------------------------------


def test_monthly_on_the_31st_falls_on_the_last_day_of_shorter_months():
    schedule = rule(day_of_month=31)

    occurrences = next_occurrences(schedule, after=utc(2026, 1, 1), count=5)

    assert dates(occurrences) == [
        d("2026-01-31"),
        d("2026-02-28"),
        d("2026-03-31"),
        d("2026-04-30"),
        d("2026-05-31"),
    ]


@pytest.mark.parametrize(
    ("day", "year", "february"),
    [
        (29, 2026, "2026-02-28"),
        (29, 2028, "2028-02-29"),
        (30, 2026, "2026-02-28"),
        (30, 2028, "2028-02-29"),
        (31, 2099, "2099-02-28"),  # the last year the product bills
        (28, 2028, "2028-02-28"),
    ],
)
def test_monthly_on_days_29_to_31_in_february(day, year, february):
    schedule = rule(day_of_month=day, start_date=datetime.date(year, 1, 1))

    occurrences = next_occurrences(schedule, after=utc(year, 2, 1), count=2)

    assert dates(occurrences) == [d(february), datetime.date(year, 3, day)]


def test_monthly_on_the_30th_keeps_its_day_after_february():
    schedule = rule(day_of_month=30)

    occurrences = next_occurrences(schedule, after=utc(2026, 2, 1), count=3)

    assert dates(occurrences) == [d("2026-02-28"), d("2026-03-30"), d("2026-04-30")]


def test_monthly_on_the_last_day_of_the_month():
    schedule = rule(last_day_of_month=True, day_of_month=None, start_date=d("2027-11-01"))

    occurrences = next_occurrences(schedule, after=utc(2027, 11, 1), count=6)

    assert dates(occurrences) == [
        d("2027-11-30"),
        d("2027-12-31"),
        d("2028-01-31"),
        d("2028-02-29"),
        d("2028-03-31"),
        d("2028-04-30"),
    ]


def test_monthly_starting_after_this_months_day_begins_next_month():
    schedule = rule(day_of_month=15, start_date=d("2026-03-16"))

    assert dates(next_occurrences(schedule, after=utc(2026, 1, 1), count=1)) == [d("2026-04-15")]


def test_a_long_preview_has_fifteen_increasing_runs():
    schedule = rule(day_of_month=31, time_zone="Europe/Berlin")

    occurrences = next_occurrences(schedule, after=utc(2026, 1, 1))

    assert len(occurrences) == 15
    assert occurrences == sorted(set(occurrences))


# --- once ------------------------------------------------------------------------


def test_once_runs_on_its_start_date_only():
    schedule = rule(repeats="once", start_date=d("2026-02-28"), run_time=datetime.time(22, 15))

    assert next_occurrences(schedule, after=utc(2026, 1, 1)) == [utc(2026, 2, 28, 22, 15)]
    assert next_occurrences(schedule, after=utc(2026, 2, 28, 22, 15)) == []


# --- time zones and daylight saving time -----------------------------------------


def test_the_run_time_is_local_so_the_utc_instant_moves_with_daylight_saving():
    # Berlin leaves winter time (UTC+1) for summer time (UTC+2) on 2026-03-29.
    schedule = rule(repeats="daily", time_zone="Europe/Berlin")

    occurrences = next_occurrences(schedule, after=utc(2026, 3, 28), count=2)

    assert occurrences == [utc(2026, 3, 28, 5), utc(2026, 3, 29, 4)]


def test_a_run_time_skipped_by_spring_forward_fires_an_hour_later_local():
    # New York jumps from 02:00 to 03:00 on 2026-03-08: 02:30 does not exist.
    # Read with the offset from before the jump (EST, UTC-5): 07:30 UTC, 03:30 EDT.
    schedule = rule(repeats="daily", time_zone="America/New_York", run_time=datetime.time(2, 30))

    occurrences = next_occurrences(schedule, after=utc(2026, 3, 7), count=3)

    assert occurrences == [utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7, 30), utc(2026, 3, 9, 6, 30)]


def test_a_run_time_repeated_by_fall_back_fires_once_at_its_first_instance():
    # New York falls back from 02:00 EDT to 01:00 EST on 2026-11-01: 01:30
    # happens twice; the first (EDT, UTC-4) is 05:30 UTC.
    schedule = rule(repeats="daily", time_zone="America/New_York", run_time=datetime.time(1, 30))

    occurrences = next_occurrences(schedule, after=utc(2026, 10, 31), count=3)

    assert occurrences == [
        utc(2026, 10, 31, 5, 30),
        utc(2026, 11, 1, 5, 30),
        utc(2026, 11, 2, 6, 30),
    ]


def test_east_of_utc_the_run_date_is_the_local_date():
    # 06:00 in Auckland (UTC+13 in summer) on the 1st is 17:00 UTC the day before.
    schedule = rule(day_of_month=1, time_zone="Pacific/Auckland")

    occurrence = next_occurrences(schedule, after=utc(2026, 2, 1), count=1)[0]

    assert occurrence == utc(2026, 2, 28, 17)
    assert run_date(schedule, occurrence) == d("2026-03-01")


def test_west_of_utc_the_last_day_of_february_is_local():
    # 22:00 on 28 February in Los Angeles (UTC-8) is 1 March, 06:00 UTC.
    schedule = rule(
        last_day_of_month=True,
        day_of_month=None,
        time_zone="America/Los_Angeles",
        run_time=datetime.time(22, 0),
    )

    occurrence = next_occurrences(schedule, after=utc(2026, 2, 2), count=1)[0]

    assert occurrence == utc(2026, 3, 1, 6)
    assert run_date(schedule, occurrence) == d("2026-02-28")


def test_a_leap_day_run_in_a_time_zone():
    schedule = rule(day_of_month=31, time_zone="Asia/Tokyo", start_date=d("2028-01-01"))

    occurrence = next_occurrences(schedule, after=utc(2028, 2, 1), count=1)[0]

    assert occurrence == utc(2028, 2, 28, 21)  # 06:00 JST on 29 February
    assert run_date(schedule, occurrence) == d("2028-02-29")


# --- skipped occurrences ---------------------------------------------------------


def test_a_skipped_occurrence_is_left_out():
    schedule = rule(repeats="daily", skipped_occurrences=[occurrence_key(utc(2026, 3, 2, 6))])

    occurrences = next_occurrences(schedule, after=utc(2026, 3, 1), count=3)

    assert occurrences == [utc(2026, 3, 1, 6), utc(2026, 3, 3, 6), utc(2026, 3, 4, 6)]


# --- bill cycle day "as run day" -------------------------------------------------


@pytest.mark.parametrize(
    ("on", "expected"),
    [
        ("2026-03-15", (15,)),
        ("2026-01-31", (31,)),
        ("2026-02-28", (28, 29, 30, 31)),
        ("2028-02-28", (28,)),
        ("2028-02-29", (29, 30, 31)),
        ("2026-04-30", (30, 31)),
        ("2026-04-29", (29,)),
        ("2026-06-01", (1,)),
    ],
)
def test_as_run_day_selects_the_run_day_and_on_a_last_day_every_bcd_up_to_31(on, expected):
    schedule = rule(bill_cycle_day=Schedule.BCD_AS_RUN_DAY)

    assert bill_cycle_days_for(schedule, d(on)) == expected


def test_a_fixed_bill_cycle_day_and_all():
    assert bill_cycle_days_for(rule(bill_cycle_day="7"), d("2026-02-28")) == (7,)
    assert bill_cycle_days_for(rule(bill_cycle_day="all"), d("2026-02-28")) == ()


def test_as_run_day_uses_the_local_run_date_not_the_utc_one():
    # The last-day run in Los Angeles at 22:00 is already 1 March in UTC.
    schedule = rule(
        last_day_of_month=True,
        day_of_month=None,
        time_zone="America/Los_Angeles",
        run_time=datetime.time(22, 0),
        bill_cycle_day=Schedule.BCD_AS_RUN_DAY,
    )
    occurrence = next_occurrences(schedule, after=utc(2026, 2, 2), count=1)[0]

    assert bill_cycle_days_for(schedule, run_date(schedule, occurrence)) == (28, 29, 30, 31)


# --- in words --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"repeats": "once", "start_date": d("2026-03-01")}, "Once on 2026-03-01 at 06:00 UTC"),
        ({"repeats": "daily", "time_zone": "Europe/Berlin"}, "Daily at 06:00 Europe/Berlin"),
        ({"repeats": "weekly", "weekdays": [4, 0]}, "Weekly on Monday, Friday at 06:00 UTC"),
        ({"day_of_month": 15}, "Monthly on day 15 at 06:00 UTC"),
        (
            {"day_of_month": 30},
            "Monthly on day 30 (the last day in shorter months) at 06:00 UTC",
        ),
        ({"last_day_of_month": True}, "Monthly on the last day at 06:00 UTC"),
    ],
)
def test_repeats_in_words(fields, words):
    assert describe_repeats(rule(**fields)) == words


def test_a_schedule_without_an_end_date_has_no_run_after_2099():
    schedule = rule(repeats=Schedule.Repeats.DAILY, start_date=datetime.date(2099, 12, 29))

    occurrences = next_occurrences(schedule, after=utc(2099, 12, 29, 12), count=5)

    assert dates(occurrences) == [d("2099-12-30"), d("2099-12-31")]


def test_its_runs_end_where_their_target_or_invoice_date_would_pass_2099():
    schedule = rule(
        repeats=Schedule.Repeats.DAILY,
        start_date=datetime.date(2099, 12, 20),
        target_date_offset_days=-2,
        invoice_date_offset_days=3,
    )

    occurrences = next_occurrences(schedule, after=utc(2099, 12, 27, 12), count=5)

    assert dates(occurrences) == [d("2099-12-28")]


def test_its_runs_start_where_their_dates_reach_2000():
    schedule = rule(
        repeats=Schedule.Repeats.DAILY,
        start_date=datetime.date(2000, 1, 1),
        target_date_offset_days=-2,
    )

    occurrences = next_occurrences(schedule, after=utc(1999, 12, 1), count=2)

    assert dates(occurrences) == [d("2000-01-03"), d("2000-01-04")]
