"""The dates a schedule fires on, and the dates of the runs it makes (pure:
no database).

Dates
    Occurrences are computed in the schedule's own IANA time zone and stored
    in UTC. A schedule repeats once (on its start date), daily, weekly on
    chosen weekdays, or monthly on a day 1-31 (29-31 fall on the last day of a
    shorter month: day 31 is 30 April and 28 or 29 February) or on the last day
    of every month. Occurrences lie between the start date and the end date,
    both included, as local dates.

Daylight saving time
    The local run time is resolved as RFC 5545 (iCalendar) does, with
    ``fold=0``: a time that does not exist (the clocks jump forward over it)
    is read with the offset from before the jump, so 02:30 on a spring-forward
    day in New York fires at 03:30 local time; a time that happens twice (the
    clocks fall back) is its first instance. Either way one occurrence per
    local date, on a deterministic UTC instant.

Run dates
    A run's target date and invoice date are the run's local date (the
    occurrence's date in the schedule's time zone) plus the schedule's
    offsets in days, on every repeat. Bill cycle day "as run day" selects the
    accounts whose BCD is the run's day of month; on a month's last day every
    BCD from that day up to 31, so accounts with BCD 29-31 bill on 28 February.
"""

import calendar
import datetime
import zoneinfo
from itertools import islice

from billruns.models import Schedule
from core.dates import FIRST_DATE, LAST_DATE

PREVIEW_COUNT = 15
WEEKDAY_NAMES = list(calendar.day_name)  # Monday first, as date.weekday()

Repeats = Schedule.Repeats


def _last_day(year, month):
    return calendar.monthrange(year, month)[1]


def _monthly_date(schedule, year, month):
    last = _last_day(year, month)
    if schedule.last_day_of_month:
        return datetime.date(year, month, last)
    return datetime.date(year, month, min(schedule.day_of_month, last))


def run_dates_window(target_offset, invoice_offset):
    """The first and last run dates whose own, target and invoice dates all
    lie between FIRST_DATE and LAST_DATE (the dates the product accepts)."""
    offsets = (0, target_offset, invoice_offset)
    return (
        FIRST_DATE - datetime.timedelta(days=min(offsets)),
        LAST_DATE - datetime.timedelta(days=max(offsets)),
    )


def _local_dates(schedule, first):
    """The schedule's local dates on or after ``first``, in order, up to its
    end date; a schedule without an end date ends where its runs' dates would
    pass LAST_DATE."""
    earliest, latest = run_dates_window(
        schedule.target_date_offset_days, schedule.invoice_date_offset_days
    )
    first = max(first, schedule.start_date, earliest)
    end = min(schedule.end_date or latest, latest)
    if schedule.repeats == Repeats.ONCE:
        if first <= schedule.start_date <= end:
            yield schedule.start_date
        return
    if schedule.repeats == Repeats.MONTHLY:
        year, month = first.year, first.month
        while True:
            day = _monthly_date(schedule, year, month)
            if end and day > end:
                return
            if day >= first:
                yield day
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    weekdays = set(range(7)) if schedule.repeats == Repeats.DAILY else set(schedule.weekdays)
    if not weekdays:
        return
    day = first
    while not end or day <= end:
        if day.weekday() in weekdays:
            yield day
        day += datetime.timedelta(days=1)


def occurrence_at(schedule, local_date):
    """The UTC instant the schedule fires on ``local_date`` (DST: see the module doc)."""
    zone = zoneinfo.ZoneInfo(schedule.time_zone)
    local = datetime.datetime.combine(local_date, schedule.run_time, tzinfo=zone)
    return local.astimezone(datetime.UTC)


def iter_occurrences(schedule, *, after, include_skipped=False):
    """The schedule's occurrences strictly after ``after`` (aware), as UTC datetimes."""
    zone = zoneinfo.ZoneInfo(schedule.time_zone)
    # A day early: an occurrence shifted by a DST gap may cross local midnight.
    first = after.astimezone(zone).date() - datetime.timedelta(days=1)
    skipped = set() if include_skipped else set(schedule.skipped_occurrences)
    for local_date in _local_dates(schedule, first):
        at = occurrence_at(schedule, local_date)
        if at > after and (not skipped or occurrence_key(at) not in skipped):
            yield at


def next_occurrences(schedule, *, after, count=PREVIEW_COUNT):
    """The next ``count`` occurrences after ``after`` that will fire (skipped ones left out)."""
    return list(islice(iter_occurrences(schedule, after=after), count))


def first_run_after(schedule, now):
    """The first occurrence after ``now`` that will fire, or None."""
    return next(iter_occurrences(schedule, after=now), None)


def occurrence_key(at):
    """How an occurrence is written in ``skipped_occurrences``: ISO 8601 in UTC."""
    return at.astimezone(datetime.UTC).isoformat()


def run_date(schedule, occurrence):
    """The run's date: the occurrence's date in the schedule's time zone."""
    return occurrence.astimezone(zoneinfo.ZoneInfo(schedule.time_zone)).date()


def bill_cycle_days_for(schedule, on):
    """The bill cycle days a run on local date ``on`` selects (empty: all)."""
    if schedule.bill_cycle_day == Schedule.BCD_ALL:
        return ()
    if schedule.bill_cycle_day == Schedule.BCD_AS_RUN_DAY:
        if on.day == _last_day(on.year, on.month):
            return tuple(range(on.day, 32))
        return (on.day,)
    return (int(schedule.bill_cycle_day),)


def describe_repeats(schedule):
    """The repeat rule in words, for lists and pages."""
    at = f"at {schedule.run_time:%H:%M} {schedule.time_zone}"
    if schedule.repeats == Repeats.ONCE:
        return f"Once on {schedule.start_date:%Y-%m-%d} {at}"
    if schedule.repeats == Repeats.DAILY:
        return f"Daily {at}"
    if schedule.repeats == Repeats.WEEKLY:
        days = ", ".join(WEEKDAY_NAMES[day] for day in sorted(schedule.weekdays))
        return f"Weekly on {days} {at}"
    if schedule.last_day_of_month:
        return f"Monthly on the last day {at}"
    day = schedule.day_of_month
    note = " (the last day in shorter months)" if day >= 29 else ""
    return f"Monthly on day {day}{note} {at}"


def describe_bill_cycle_day(schedule):
    if schedule.bill_cycle_day == Schedule.BCD_ALL:
        return "all"
    if schedule.bill_cycle_day == Schedule.BCD_AS_RUN_DAY:
        return "as run day"
    return schedule.bill_cycle_day
