"""Scheduled bill runs: the dates a schedule fires on, and every change to a schedule.

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

Firing
    ``schedules_fire_due`` (every minute on the task queue) fires each active
    schedule whose ``next_run_at`` has passed. It locks the schedule row, so
    two clusters firing at once serialize: the second finds ``next_run_at``
    already advanced and does nothing; the database's one-run-per-occurrence
    constraint (``BillRun.one_run_per_schedule_occurrence``) backs this up for
    any path that gets past the lock with a stale occurrence.

    No catch-up (like ``Q_CLUSTER["catch_up"] = False``): when several
    occurrences passed while no cluster was running, only the latest of them
    fires, once; the earlier ones are not run, and ``next_run_at`` moves to
    the first occurrence after now. A paused schedule resumes at its first
    occurrence after the resume; what fell due while paused is not run.

Canceling one occurrence records it in ``skipped_occurrences``; it is never
fired (nor chosen as "the latest" after downtime). Canceling all ends the
schedule for good: a canceled schedule cannot be resumed or edited.
"""

import calendar
import datetime
import logging
import zoneinfo
from functools import cache
from itertools import islice

from django.db import transaction
from django.utils import timezone

from billruns.models import Schedule, ScheduleEvent
from billruns.services import InvalidRunParameters, bill_run_create
from core.dates import DATE_RANGE, FIRST_DATE, LAST_DATE, date_range_problem

logger = logging.getLogger(__name__)

PREVIEW_COUNT = 15
# Offsets of the target and invoice dates, in days from the run date.
MAX_OFFSET_DAYS = 366
WEEKDAY_NAMES = list(calendar.day_name)  # Monday first, as date.weekday()
BILL_CYCLE_DAY_VALUES = {Schedule.BCD_ALL, Schedule.BCD_AS_RUN_DAY} | {
    str(day) for day in range(1, 32)
}

Repeats = Schedule.Repeats
Status = Schedule.Status


class ScheduleActionRefused(Exception):
    """The rules refuse the action; the message says why, for a person."""


class InvalidSchedule(ScheduleActionRefused):
    """Bad schedule fields; ``errors`` maps field names to messages."""

    def __init__(self, errors):
        self.errors = errors
        super().__init__(
            "; ".join(
                message if field == "__all__" else f"{field}: {message}"
                for field, messages in errors.items()
                for message in messages
            )
        )


# --- dates (pure: no database) -------------------------------------------------


@cache
def time_zone_names():
    return frozenset(zoneinfo.available_timezones())


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


def occurrence_key(at):
    """How an occurrence is written in ``skipped_occurrences``: ISO 8601 in UTC."""
    return at.astimezone(datetime.UTC).isoformat()


def _local(schedule, occurrence) -> str:
    """An occurrence as the history shows it: in the schedule's time zone."""
    local = occurrence.astimezone(zoneinfo.ZoneInfo(schedule.time_zone))
    return f"{local:%Y-%m-%d %H:%M} {schedule.time_zone}"


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


# --- validation ----------------------------------------------------------------

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
    "auto_post",
)


# How far ahead one run can be canceled: finding it walks the occurrences.
CANCEL_HORIZON = datetime.timedelta(days=3660)


def _clean(schedule, fields):
    """Check ``fields`` and set them on ``schedule`` (not saved); raise InvalidSchedule."""
    errors = {}

    def error(field, message):
        errors.setdefault(field, []).append(message)

    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"not schedule fields: {', '.join(sorted(unknown))}")
    values = {name: getattr(schedule, name) for name in EDITABLE_FIELDS} | fields

    name = (values["name"] or "").strip()
    if not name:
        error("name", "Enter a name.")
    elif len(name) > 200:
        error("name", "A name has at most 200 characters.")
    elif Schedule.objects.filter(name=name).exclude(pk=schedule.pk).exists():
        error("name", f"Another schedule is named {name!r}.")
    values["name"] = name

    repeats = values["repeats"]
    if repeats not in Repeats.values:
        error("repeats", f"{repeats!r} is not one of once, daily, weekly, monthly.")
    weekdays = sorted(set(values["weekdays"] or ()))
    if any(not isinstance(day, int) or not 0 <= day <= 6 for day in weekdays):
        error("weekdays", "Weekdays are numbers from 0 (Monday) to 6 (Sunday).")
    elif repeats == Repeats.WEEKLY and not weekdays:
        error("weekdays", "Choose at least one day of the week.")
    values["weekdays"] = weekdays if repeats == Repeats.WEEKLY else []

    day = values["day_of_month"]
    last = bool(values["last_day_of_month"])
    monthly_on_a_day = repeats == Repeats.MONTHLY and not last
    if monthly_on_a_day and (not isinstance(day, int) or not 1 <= day <= 31):
        error("day_of_month", "The day of the month is a number from 1 to 31.")
    if repeats != Repeats.MONTHLY or last:
        day = None
    values["day_of_month"], values["last_day_of_month"] = day, last and repeats == Repeats.MONTHLY

    if not isinstance(values["run_time"], datetime.time):
        error("run_time", "Enter a time of day.")
    elif values["run_time"].tzinfo is not None:
        error("run_time", "The run time is a local time, without a time zone.")
    if values["time_zone"] not in time_zone_names():
        error("time_zone", f"{values['time_zone']!r} is not an IANA time zone (Europe/Berlin).")

    start, end = values["start_date"], values["end_date"]
    dates_valid = True
    for field, day, label in (
        ("start_date", start, "The start date"),
        ("end_date", end, "The end date"),
    ):
        if day is not None and not isinstance(day, datetime.date):
            error(field, f"{label} must be a date.")
            dates_valid = False
        elif day is not None and date_range_problem(day):
            error(field, f"{label} {date_range_problem(day)}.")
            dates_valid = False
    if start is None:
        error("start_date", "Enter the start date.")
        dates_valid = False
    if dates_valid and repeats == Repeats.ONCE:
        values["end_date"] = None
    elif dates_valid and end is not None and end < start:
        error("end_date", "The end date cannot be before the start date.")

    offsets_valid = True
    for field in ("target_date_offset_days", "invoice_date_offset_days"):
        offset = values[field]
        if (
            isinstance(offset, bool)
            or not isinstance(offset, int)
            or not -MAX_OFFSET_DAYS <= offset <= MAX_OFFSET_DAYS
        ):
            error(field, f"An offset is whole days, at most {MAX_OFFSET_DAYS} either way.")
            offsets_valid = False
    # The invoice date may be before or after the target date (INTERFACES.md,
    # "Numbers and dates"), but every run's dates must lie in the range.
    if dates_valid and offsets_valid:
        _check_run_dates(values, error)

    batches = sorted(set(values["batches"] or ()))
    if any(not isinstance(batch, int) or not 1 <= batch <= 50 for batch in batches):
        error("batches", "Batches are numbers from 1 to 50.")
    values["batches"] = batches
    values["bill_cycle_day"] = str(values["bill_cycle_day"])
    if values["bill_cycle_day"] not in BILL_CYCLE_DAY_VALUES:
        error("bill_cycle_day", "The bill cycle day is all, as run day, or a day from 1 to 31.")
    values["auto_post"] = bool(values["auto_post"])

    if errors:
        raise InvalidSchedule(errors)
    for field, value in values.items():
        setattr(schedule, field, value)


RUN_DATE_LABELS = {
    "target_date_offset_days": ("target date", "a target date offset"),
    "invoice_date_offset_days": ("invoice date", "an invoice date offset"),
}


def _check_run_dates(values, error):
    """Refuse offsets that move the first or last run's target or invoice
    date out of the accepted range. A schedule without an end date is not
    refused: its runs end where their dates would pass LAST_DATE."""
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


def _shown(value) -> str:
    if value is None or value == []:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime.time):
        return value.strftime("%H:%M")
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


def _changes(before: dict, schedule) -> str:
    """What an edit changed, one "field: old -> new" per line."""
    lines = []
    for name in EDITABLE_FIELDS:
        old, new = before[name], getattr(schedule, name)
        if old != new:
            label = Schedule._meta.get_field(name).verbose_name
            lines.append(f"{label}: {_shown(old)} -> {_shown(new)}")
    return "\n".join(lines)


def _record(schedule, kind, *, user=None, detail="", bill_run=None, at=None):
    """Add an entry to the schedule's history (in the caller's transaction)."""
    ScheduleEvent.objects.create(
        schedule=schedule,
        kind=kind,
        user=user if user is not None and user.pk else None,
        detail=detail,
        bill_run=bill_run,
        at=at or timezone.now(),
    )


def _first_run_after(schedule, now):
    return next(iter_occurrences(schedule, after=now), None)


def _require_runs(schedule):
    if schedule.next_run_at is None:
        raise InvalidSchedule(
            {"__all__": ["This schedule has no run after now: check its dates and repeats."]}
        )


# --- services --------------------------------------------------------------------


def schedule_create(*, owner, now=None, **fields) -> Schedule:
    """Create an active schedule owned by ``owner`` (for good: the owner never
    changes and receives the emails of its runs).

    Its first run is the first occurrence after ``now``: a start date in the
    past fires no runs for the past. A schedule with no run left is refused.
    """
    now = now or timezone.now()
    schedule = Schedule(owner=owner, status=Status.ACTIVE)
    _clean(schedule, fields)
    schedule.next_run_at = _first_run_after(schedule, now)
    _require_runs(schedule)
    with transaction.atomic():
        schedule.save()
        _record(schedule, ScheduleEvent.Kind.CREATED, user=owner)
    logger.info("schedule %s created by %s", schedule.name, owner)
    return schedule


def _lock(schedule):
    return Schedule.objects.select_for_update().get(pk=schedule.pk)


def _refuse_canceled(schedule, doing):
    if schedule.status == Status.CANCELED:
        raise ScheduleActionRefused(f"{schedule.name} is canceled: it cannot be {doing}.")


def schedule_update(*, schedule, user, now=None, **fields) -> Schedule:
    """Change a schedule's rule, dates or selection; its next run is computed
    anew from ``now``. The owner is not a field: it never changes.

    Transaction: one, holding the schedule's row lock, so an edit and a
    firing do not interleave.
    """
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock(schedule)
        _refuse_canceled(locked, "edited")
        before = {name: getattr(locked, name) for name in EDITABLE_FIELDS}
        _clean(locked, fields)
        locked.next_run_at = _first_run_after(locked, now)
        if locked.status == Status.ACTIVE:
            _require_runs(locked)
        locked.save()
        changes = _changes(before, locked)
        if changes:
            _record(locked, ScheduleEvent.Kind.CHANGED, user=user, detail=changes)
    logger.info("schedule %s changed by %s", locked.name, user)
    return locked


def schedule_pause(*, schedule, user) -> Schedule:
    """Active -> Paused: no run fires until it is resumed."""
    with transaction.atomic():
        locked = _lock(schedule)
        if locked.status != Status.ACTIVE:
            raise ScheduleActionRefused(
                f"{locked.name} is {locked.get_status_display()}: only an active schedule "
                "can be paused."
            )
        locked.status = Status.PAUSED
        locked.save(update_fields=["status", "updated_at"])
        _record(locked, ScheduleEvent.Kind.PAUSED, user=user)
    logger.info("schedule %s paused by %s", locked.name, user)
    return locked


def schedule_resume(*, schedule, user, now=None) -> Schedule:
    """Paused -> Active, from the first occurrence after ``now``; the
    occurrences that fell due while it was paused are not run."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock(schedule)
        if locked.status != Status.PAUSED:
            raise ScheduleActionRefused(
                f"{locked.name} is {locked.get_status_display()}: only a paused schedule "
                "can be resumed."
            )
        locked.status = Status.ACTIVE
        locked.next_run_at = _first_run_after(locked, now)
        locked.save(update_fields=["status", "next_run_at", "updated_at"])
        _record(locked, ScheduleEvent.Kind.RESUMED, user=user)
    logger.info("schedule %s resumed by %s", locked.name, user)
    return locked


def schedule_cancel(*, schedule, user, occurrence=None, all_occurrences=False, now=None):
    """Cancel one future occurrence (``occurrence``, an aware datetime) or
    the whole schedule (``all_occurrences=True``).

    One occurrence: it is recorded as skipped and never fires; when it was
    the next run, the next run moves to the one after. It must be a future
    occurrence of the schedule. All: the schedule becomes Canceled, for good.
    Runs it already made are not touched.
    """
    if (occurrence is None) == (not all_occurrences):
        raise TypeError("pass either occurrence or all_occurrences=True")
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock(schedule)
        _refuse_canceled(locked, "canceled")
        if all_occurrences:
            locked.status = Status.CANCELED
            locked.next_run_at = None
            locked.save(update_fields=["status", "next_run_at", "updated_at"])
            _record(locked, ScheduleEvent.Kind.CANCELED, user=user)
            logger.info("schedule %s canceled by %s", locked.name, user)
            return locked
        try:
            occurrence = occurrence.astimezone(datetime.UTC)
        except OverflowError:
            raise ScheduleActionRefused(f"{locked.name} has no run at {occurrence}.") from None
        if occurrence > now + CANCEL_HORIZON:
            raise ScheduleActionRefused(
                f"{locked.name}: a run can be canceled at most ten years ahead."
            )
        upcoming = iter_occurrences(locked, after=now)
        if occurrence not in _takewhile_not_after(upcoming, occurrence):
            raise ScheduleActionRefused(
                f"{locked.name} has no run at {occurrence:%Y-%m-%d %H:%M} UTC still to come."
            )
        # Past entries can never match again; dropping them keeps the list short.
        still_ahead = {
            key for key in locked.skipped_occurrences if datetime.datetime.fromisoformat(key) > now
        }
        locked.skipped_occurrences = sorted(still_ahead | {occurrence_key(occurrence)})
        if locked.next_run_at == occurrence:
            locked.next_run_at = _first_run_after(locked, occurrence)
        locked.save(update_fields=["skipped_occurrences", "next_run_at", "updated_at"])
        _record(
            locked,
            ScheduleEvent.Kind.OCCURRENCE_CANCELED,
            user=user,
            detail=f"The run at {_local(locked, occurrence)} is canceled.",
        )
    logger.info("schedule %s: run at %s canceled by %s", locked.name, occurrence, user)
    return locked


def _takewhile_not_after(occurrences, last):
    for at in occurrences:
        if at > last:
            return
        yield at


def schedule_fire(*, schedule_id, now=None):
    """Fire the schedule's due occurrence, if any: create its Pending run,
    owned by the schedule's owner, queued once this transaction commits; then
    move ``next_run_at`` to the first occurrence after ``now``.

    Returns the run, or None when nothing was due (already fired by another
    cluster, paused, canceled). Of several due occurrences only the latest
    fires (no catch-up, see the module doc). Idempotent: the schedule row is
    locked for the whole step and the database allows one run per
    occurrence, so firing twice makes one run.
    """
    now = now or timezone.now()
    with transaction.atomic():
        schedule = Schedule.objects.select_for_update().select_related("owner").get(pk=schedule_id)
        if (
            schedule.status != Status.ACTIVE
            or schedule.next_run_at is None
            or schedule.next_run_at > now
        ):
            return None
        latest_due, next_at = None, None
        since = schedule.next_run_at - datetime.timedelta(microseconds=1)
        for at in iter_occurrences(schedule, after=since):
            if at > now:
                next_at = at
                break
            latest_due = at
        run = None
        if latest_due is not None:
            run = _create_run(schedule, latest_due)
            if run is not None:
                _record(
                    schedule,
                    ScheduleEvent.Kind.FIRED,
                    bill_run=run,
                    detail=f"{run.number} for the run at {_local(schedule, latest_due)}.",
                    at=now,
                )
        schedule.next_run_at = next_at
        schedule.save(update_fields=["next_run_at", "updated_at"])
    return run


def _create_run(schedule, occurrence):
    on = run_date(schedule, occurrence)
    try:
        return bill_run_create(
            target_date=on + datetime.timedelta(days=schedule.target_date_offset_days),
            invoice_date=on + datetime.timedelta(days=schedule.invoice_date_offset_days),
            batches=schedule.batches,
            bill_cycle_days=bill_cycle_days_for(schedule, on),
            auto_post=schedule.auto_post,
            created_by=schedule.owner,
            schedule=schedule,
            occurrence=occurrence,
        )
    except InvalidRunParameters as refusal:
        # The schedule's fields were checked when saved, so this is a rule
        # that changed since; the occurrence is passed over, not retried
        # every minute.
        logger.exception("schedule %s: the run at %s was refused", schedule.name, occurrence)
        _record(
            schedule,
            ScheduleEvent.Kind.REFUSED,
            detail=f"The run at {_local(schedule, occurrence)} was refused: {refusal}",
        )
        return None


def schedules_fire_due(*, now=None):
    """Fire every active schedule that is due; returns the runs made.

    One schedule's failure is logged and does not stop the others; its
    ``next_run_at`` is unchanged, so the next minute tries it again.
    """
    now = now or timezone.now()
    due = (
        Schedule.objects.filter(status=Status.ACTIVE, next_run_at__lte=now)
        .order_by("next_run_at", "pk")
        .values_list("pk", flat=True)
    )
    runs = []
    for schedule_id in list(due):
        try:
            run = schedule_fire(schedule_id=schedule_id, now=now)
        except Exception:
            logger.exception("schedule %s could not fire", schedule_id)
            continue
        if run is not None:
            runs.append(run)
    return runs
