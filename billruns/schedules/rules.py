"""The rules of a schedule's fields, checked in one place.

The services call ``clean_fields`` before every save. The form shows some
rules next to its own field errors, before the services are called; it calls
the same functions (``weekdays_problem``, ``end_date_problem``), so a rule and
its message are written once.

Each ``_*_rule`` checks a group of fields and normalizes their values; they
run in the order of ``RULES``, which is the order of the messages.
"""

import datetime
import zoneinfo
from functools import cache

from billruns.models import Schedule
from billruns.services import InvalidRunParameters, charge_types_to_exclude
from core.dates import DATE_RANGE, FIRST_DATE, LAST_DATE, date_range_problem

# Offsets of the target and invoice dates, in days from the run date.
MAX_OFFSET_DAYS = 366
BILL_CYCLE_DAY_VALUES = {Schedule.BCD_ALL, Schedule.BCD_AS_RUN_DAY} | {
    str(day) for day in range(1, 32)
}

EDITABLE_FIELDS = (
    "name",
    "repeats",
    "weekdays",
    "day_of_month",
    "last_day_of_month",
    "run_time",
    "time_zone",
    "start_date",
    "end_date",
    "target_date_offset_days",
    "invoice_date_offset_days",
    "batches",
    "bill_cycle_day",
    "exclude_charge_types",
    "auto_post",
)

RUN_DATE_LABELS = {
    "target_date_offset_days": ("target date", "a target date offset"),
    "invoice_date_offset_days": ("invoice date", "an invoice date offset"),
}

Repeats = Schedule.Repeats


class ScheduleActionRefused(Exception):
    """The rules refuse the action; the message says why, for a person."""


class InvalidSchedule(InvalidRunParameters, ScheduleActionRefused):
    """Bad schedule fields; ``errors`` maps field names to messages.

    A schedule's fields are the parameters of its future runs, refused the
    same way: one error class (its ``errors`` and message come from
    InvalidRunParameters), caught as either parent.
    """


@cache
def time_zone_names():
    return frozenset(zoneinfo.available_timezones())


def weekdays_problem(repeats, weekdays):
    """What is wrong with ``weekdays`` (day numbers) for ``repeats``, or None."""
    if any(not isinstance(day, int) or not 0 <= day <= 6 for day in weekdays):
        return "Weekdays are numbers from 0 (Monday) to 6 (Sunday)."
    if repeats == Repeats.WEEKLY and not weekdays:
        return "Choose at least one day of the week."
    return None


def end_date_problem(repeats, start, end):
    """What is wrong with the end date given the start date, or None (a
    schedule that runs once has no end date)."""
    if repeats != Repeats.ONCE and start is not None and end is not None and end < start:
        return "The end date cannot be before the start date."
    return None


def _date_problem(day):
    """What is wrong with an optional date (to follow "The start date"), or None."""
    if day is None:
        return None
    if not isinstance(day, datetime.date):
        return "must be a date"
    return date_range_problem(day)


def _offset_valid(offset):
    return (
        not isinstance(offset, bool)
        and isinstance(offset, int)
        and -MAX_OFFSET_DAYS <= offset <= MAX_OFFSET_DAYS
    )


def _dates_valid(values):
    start, end = values["start_date"], values["end_date"]
    return start is not None and _date_problem(start) is None and _date_problem(end) is None


def _name_rule(schedule, values, error):
    name = (values["name"] or "").strip()
    if not name:
        error("name", "Enter a name.")
    elif len(name) > 200:
        error("name", "A name has at most 200 characters.")
    elif Schedule.objects.filter(name=name).exclude(pk=schedule.pk).exists():
        error("name", f"Another schedule is named {name!r}.")
    values["name"] = name


def _repeats_rule(schedule, values, error):
    repeats = values["repeats"]
    if repeats not in Repeats.values:
        error("repeats", f"{repeats!r} is not one of once, daily, weekly, monthly.")
    weekdays = sorted(set(values["weekdays"] or ()))
    problem = weekdays_problem(repeats, weekdays)
    if problem:
        error("weekdays", problem)
    values["weekdays"] = weekdays if repeats == Repeats.WEEKLY else []

    day = values["day_of_month"]
    last = bool(values["last_day_of_month"])
    monthly_on_a_day = repeats == Repeats.MONTHLY and not last
    if monthly_on_a_day and (not isinstance(day, int) or not 1 <= day <= 31):
        error("day_of_month", "The day of the month is a number from 1 to 31.")
    if repeats != Repeats.MONTHLY or last:
        day = None
    values["day_of_month"], values["last_day_of_month"] = day, last and repeats == Repeats.MONTHLY


def _time_rule(schedule, values, error):
    if not isinstance(values["run_time"], datetime.time):
        error("run_time", "Enter a time of day.")
    elif values["run_time"].tzinfo is not None:
        error("run_time", "The run time is a local time, without a time zone.")
    if values["time_zone"] not in time_zone_names():
        error("time_zone", f"{values['time_zone']!r} is not an IANA time zone (Europe/Berlin).")


def _dates_rule(schedule, values, error):
    start, end = values["start_date"], values["end_date"]
    for field, day, label in (
        ("start_date", start, "The start date"),
        ("end_date", end, "The end date"),
    ):
        problem = _date_problem(day)
        if problem:
            error(field, f"{label} {problem}.")
    if start is None:
        error("start_date", "Enter the start date.")
    if not _dates_valid(values):
        return
    if values["repeats"] == Repeats.ONCE:
        values["end_date"] = None
    else:
        problem = end_date_problem(values["repeats"], start, end)
        if problem:
            error("end_date", problem)


def _offsets_rule(schedule, values, error):
    for field in ("target_date_offset_days", "invoice_date_offset_days"):
        if not _offset_valid(values[field]):
            error(field, f"An offset is whole days, at most {MAX_OFFSET_DAYS} either way.")


def _run_dates_rule(schedule, values, error):
    """Refuse offsets that move the first or last run's target or invoice
    date out of the accepted range. The invoice date may be before or after
    the target date (INTERFACES.md, "Numbers and dates"), but every run's
    dates must lie in the range. A schedule without an end date is not
    refused: its runs end where their dates would pass LAST_DATE."""
    offsets_valid = all(_offset_valid(values[field]) for field in RUN_DATE_LABELS)
    if not offsets_valid or not _dates_valid(values):
        return
    start, end = values["start_date"], values["end_date"]
    for field, (what, offset_label) in RUN_DATE_LABELS.items():
        offset = values[field]
        for run_day, which in ((start, "start"), (end, "end")):
            if run_day is None:
                continue
            day = run_day + datetime.timedelta(days=offset)
            if not FIRST_DATE <= day <= LAST_DATE:
                error(
                    field,
                    f"With {offset_label} of {offset} days, a run on the {which} date "
                    f"{run_day.isoformat()} would have the {what} {day.isoformat()}: "
                    f"dates must be {DATE_RANGE}.",
                )
                break


def _selection_rule(schedule, values, error):
    batches = sorted(set(values["batches"] or ()))
    if any(not isinstance(batch, int) or not 1 <= batch <= 50 for batch in batches):
        error("batches", "Batches are numbers from 1 to 50.")
    values["batches"] = batches
    values["bill_cycle_day"] = str(values["bill_cycle_day"])
    if values["bill_cycle_day"] not in BILL_CYCLE_DAY_VALUES:
        error("bill_cycle_day", "The bill cycle day is all, as run day, or a day from 1 to 31.")
    # Checked as a new run checks it, so that no run it fires is refused for it.
    excluded, problems = charge_types_to_exclude(values["exclude_charge_types"] or ())
    for problem in problems:
        error("exclude_charge_types", problem)
    values["exclude_charge_types"] = excluded
    values["auto_post"] = bool(values["auto_post"])


RULES = (
    _name_rule,
    _repeats_rule,
    _time_rule,
    _dates_rule,
    _offsets_rule,
    _run_dates_rule,
    _selection_rule,
)


def clean_fields(schedule, fields):
    """Check ``fields`` and set them on ``schedule`` (not saved); raise InvalidSchedule."""
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"not schedule fields: {', '.join(sorted(unknown))}")
    values = {name: getattr(schedule, name) for name in EDITABLE_FIELDS} | fields
    errors = {}

    def error(field, message):
        errors.setdefault(field, []).append(message)

    for rule in RULES:
        rule(schedule, values, error)
    if errors:
        raise InvalidSchedule(errors)
    for field, value in values.items():
        setattr(schedule, field, value)


def require_a_run(schedule):
    """An active schedule has a run to come (``next_run_at``, computed by the caller)."""
    if schedule.next_run_at is None:
        raise InvalidSchedule(
            {"__all__": ["This schedule has no run after now: check its dates and repeats."]}
        )
