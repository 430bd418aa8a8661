"""Every change to a schedule: create, update, pause, resume, cancel, fire.

Each action is one function; it locks the schedule row, checks the rules
(``rules.py``), writes the change and its history entry (``history.py``) in
one short transaction, and raises ScheduleActionRefused when the rules say no.

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

import datetime
import logging

from django.db import transaction
from django.utils import timezone

from billruns.models import Schedule, ScheduleEvent
from billruns.schedules.dates import (
    bill_cycle_days_for,
    first_run_after,
    iter_occurrences,
    occurrence_key,
    run_date,
)
from billruns.schedules.history import describe_changes, editable_values, occurrence_label, record
from billruns.schedules.rules import ScheduleActionRefused, clean_fields, require_a_run
from billruns.services import InvalidRunParameters, bill_run_create
from core import locks

logger = logging.getLogger(__name__)

# How far ahead one run can be canceled: finding it walks the occurrences.
CANCEL_HORIZON = datetime.timedelta(days=3660)

Status = Schedule.Status


def schedule_create(*, owner, now=None, **fields) -> Schedule:
    """Create an active schedule owned by ``owner`` (for good: the owner never
    changes and receives the emails of its runs).

    Its first run is the first occurrence after ``now``: a start date in the
    past fires no runs for the past. A schedule with no run left is refused.
    """
    now = now or timezone.now()
    schedule = Schedule(owner=owner, status=Status.ACTIVE)
    clean_fields(schedule, fields)
    schedule.next_run_at = first_run_after(schedule, now)
    require_a_run(schedule)
    with transaction.atomic():
        schedule.save()
        record(schedule, ScheduleEvent.Kind.CREATED, user=owner)
    logger.info("schedule %s created by %s", schedule.name, owner)
    return schedule


def _lock(schedule):
    return locks.lock_one(Schedule, schedule.pk)


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
        before = editable_values(locked)
        clean_fields(locked, fields)
        locked.next_run_at = first_run_after(locked, now)
        if locked.status == Status.ACTIVE:
            require_a_run(locked)
        locked.save()
        changed = describe_changes(before, locked)
        if changed:
            record(locked, ScheduleEvent.Kind.CHANGED, user=user, detail=changed)
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
        record(locked, ScheduleEvent.Kind.PAUSED, user=user)
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
        locked.next_run_at = first_run_after(locked, now)
        locked.save(update_fields=["status", "next_run_at", "updated_at"])
        record(locked, ScheduleEvent.Kind.RESUMED, user=user)
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
            record(locked, ScheduleEvent.Kind.CANCELED, user=user)
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
            locked.next_run_at = first_run_after(locked, occurrence)
        locked.save(update_fields=["skipped_occurrences", "next_run_at", "updated_at"])
        record(
            locked,
            ScheduleEvent.Kind.OCCURRENCE_CANCELED,
            user=user,
            detail=f"The run at {occurrence_label(locked, occurrence)} is canceled.",
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
        schedule = locks.locked(
            Schedule.objects.select_related("owner").filter(pk=schedule_id)
        ).get()
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
                record(
                    schedule,
                    ScheduleEvent.Kind.FIRED,
                    bill_run=run,
                    detail=f"{run.number} for the run at {occurrence_label(schedule, latest_due)}.",
                    at=now,
                )
        schedule.next_run_at = next_at
        schedule.save(update_fields=["next_run_at", "updated_at"])
    return run


def schedule_preview_next_run(*, schedule, user):
    """A preview of the schedule's next run (INTERFACES.md, Previews): the
    parameters it will fire with, computed now, as an ad hoc preview run
    (its *Create this run* makes an ad hoc run; the schedule fires its own).
    Refused (ScheduleActionRefused) when the schedule has no next run.
    Changes nothing of the schedule and writes no history: a preview is no
    occurrence."""
    occurrence = schedule.next_run_at
    if schedule.status != Schedule.Status.ACTIVE or occurrence is None:
        why = (
            "it makes no more runs"
            if schedule.status == Schedule.Status.ACTIVE
            else f"it is {schedule.get_status_display().lower()}"
        )
        raise ScheduleActionRefused(f"{schedule.name} has no next run to preview: {why}.")
    on = run_date(schedule, occurrence)
    return bill_run_create(
        target_date=on + datetime.timedelta(days=schedule.target_date_offset_days),
        invoice_date=on + datetime.timedelta(days=schedule.invoice_date_offset_days),
        batches=schedule.batches,
        bill_cycle_days=bill_cycle_days_for(schedule, on),
        exclude_charge_types=schedule.exclude_charge_types,
        created_by=user,
        preview=True,
        preview_note=f"Preview of the run of {schedule.name} at "
        f"{occurrence_label(schedule, occurrence)}",
    )


def _create_run(schedule, occurrence):
    on = run_date(schedule, occurrence)
    try:
        return bill_run_create(
            target_date=on + datetime.timedelta(days=schedule.target_date_offset_days),
            invoice_date=on + datetime.timedelta(days=schedule.invoice_date_offset_days),
            batches=schedule.batches,
            bill_cycle_days=bill_cycle_days_for(schedule, on),
            auto_post=schedule.auto_post,
            exclude_charge_types=schedule.exclude_charge_types,
            created_by=schedule.owner,
            schedule=schedule,
            occurrence=occurrence,
        )
    except InvalidRunParameters as refusal:
        # The schedule's fields were checked when saved, so this is a rule
        # that changed since; the occurrence is passed over, not retried
        # every minute.
        logger.exception("schedule %s: the run at %s was refused", schedule.name, occurrence)
        record(
            schedule,
            ScheduleEvent.Kind.REFUSED,
            detail=f"The run at {occurrence_label(schedule, occurrence)} was refused: {refusal}",
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
