"""A schedule's history: one ScheduleEvent per change, written in the
transaction of the change, with what it changed in words."""

import datetime
import zoneinfo

from django.utils import timezone

from billruns.models import Schedule, ScheduleEvent
from billruns.schedules.rules import EDITABLE_FIELDS
from core.users import acting_user


def occurrence_label(schedule, occurrence) -> str:
    """An occurrence as the history shows it: in the schedule's time zone."""
    local = occurrence.astimezone(zoneinfo.ZoneInfo(schedule.time_zone))
    return f"{local:%Y-%m-%d %H:%M} {schedule.time_zone}"


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


def editable_values(schedule) -> dict:
    """The schedule's editable fields, to compare after an edit (``describe_changes``)."""
    return {name: getattr(schedule, name) for name in EDITABLE_FIELDS}


def describe_changes(before: dict, schedule) -> str:
    """What an edit changed, one "field: old -> new" per line."""
    lines = []
    for name in EDITABLE_FIELDS:
        old, new = before[name], getattr(schedule, name)
        if old != new:
            label = Schedule._meta.get_field(name).verbose_name
            lines.append(f"{label}: {_shown(old)} -> {_shown(new)}")
    return "\n".join(lines)


def record(schedule, kind, *, user=None, detail="", bill_run=None, at=None):
    """Add an entry to the schedule's history (in the caller's transaction)."""
    ScheduleEvent.objects.create(
        schedule=schedule,
        kind=kind,
        user=acting_user(user),
        detail=detail,
        bill_run=bill_run,
        at=at or timezone.now(),
    )
