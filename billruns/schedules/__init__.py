"""Scheduled bill runs.

- ``rules.py``: the rules of a schedule's fields (the form calls them too);
- ``dates.py``: the dates a schedule fires on and the dates of its runs (pure);
- ``services.py``: every change: create, update, pause, resume, cancel, fire;
- ``history.py``: the history entries those changes write.

The names below are the ones the views, the form, the task and the tests use.
"""

from billruns.schedules.dates import (
    PREVIEW_COUNT,
    WEEKDAY_NAMES,
    bill_cycle_days_for,
    describe_bill_cycle_day,
    describe_repeats,
    iter_occurrences,
    next_occurrences,
    occurrence_at,
    occurrence_key,
    run_date,
    run_dates_window,
)
from billruns.schedules.rules import (
    EDITABLE_FIELDS,
    MAX_OFFSET_DAYS,
    InvalidSchedule,
    ScheduleActionRefused,
    end_date_problem,
    time_zone_names,
    weekdays_problem,
)
from billruns.schedules.services import (
    CANCEL_HORIZON,
    InvalidRunParameters,
    schedule_cancel,
    schedule_create,
    schedule_fire,
    schedule_pause,
    schedule_preview_next_run,
    schedule_resume,
    schedule_update,
    schedules_fire_due,
)

__all__ = [
    "CANCEL_HORIZON",
    "EDITABLE_FIELDS",
    "MAX_OFFSET_DAYS",
    "PREVIEW_COUNT",
    "WEEKDAY_NAMES",
    "InvalidRunParameters",
    "InvalidSchedule",
    "ScheduleActionRefused",
    "bill_cycle_days_for",
    "describe_bill_cycle_day",
    "describe_repeats",
    "end_date_problem",
    "iter_occurrences",
    "next_occurrences",
    "occurrence_at",
    "occurrence_key",
    "run_date",
    "run_dates_window",
    "schedule_cancel",
    "schedule_create",
    "schedule_fire",
    "schedule_pause",
    "schedule_preview_next_run",
    "schedule_resume",
    "schedule_update",
    "schedules_fire_due",
    "time_zone_names",
    "weekdays_problem",
]
