"""The Schedules pages: list, create, edit, a schedule's page with a preview of
its next runs, and pause, resume and cancel (one occurrence or all).

Views are thin: they parse, check the permission, call one service of
billruns.schedules and redirect with a message. Clerks hold
billruns.add_schedule and change_schedule; viewers only see.
"""

import datetime
import zoneinfo

import django_tables2 as tables
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.db.models import OuterRef, Subquery
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_POST
from django_tables2 import SingleTableView

from billruns import schedules
from billruns.models import BillRun, Schedule
from billruns.schedule_forms import ScheduleForm
from billruns.services import InvalidRunParameters
from core.exports import BoundedExportMixin
from core.tables import BaseTable

STATUS_BADGES = {
    Schedule.Status.ACTIVE: "badge-active",
    Schedule.Status.PAUSED: "badge-warning",
    Schedule.Status.CANCELED: "badge-canceled",
}
RECENT_RUNS = 10
HISTORY_SHOWN = 50


def local_time(schedule, at):
    """``at`` in the schedule's time zone, as the pages show it."""
    return at.astimezone(zoneinfo.ZoneInfo(schedule.time_zone))


def schedule_url(record):
    # django-tables2's linkify passes its arguments by name: ``record``.
    return reverse("billruns:schedule_detail", args=[record.pk])


def status_badge(schedule):
    return format_html(
        '<span class="badge {}" data-testid="schedule-status">{}</span>',
        STATUS_BADGES[schedule.status],
        schedule.get_status_display(),
    )


# Kept with its views rather than in billruns/tables.py: the Schedules pages
# are one unit, and this table is used nowhere else.
class ScheduleTable(BaseTable):
    name = tables.Column(linkify=schedule_url)
    owner = tables.Column(accessor="owner__username", verbose_name="Owner")
    repeats = tables.Column(verbose_name="Repeats", empty_values=(), orderable=False)
    next_run_at = tables.Column(verbose_name="Next run", attrs={"td": {"class": "nowrap"}})
    status = tables.Column()
    last_run = tables.Column(
        verbose_name="Last run", accessor="last_run_number", empty_values=(), orderable=False
    )

    class Meta(BaseTable.Meta):
        model = Schedule
        fields = ()
        sequence = ("name", "owner", "repeats", "next_run_at", "status", "last_run")
        row_attrs = {"data-testid": "schedule-row"}
        empty_text = "No schedules yet."

    def render_repeats(self, record):
        return schedules.describe_repeats(record)

    def render_next_run_at(self, record, value):
        if record.status != Schedule.Status.ACTIVE:
            return "—"
        return f"{local_time(record, value):%Y-%m-%d %H:%M} {record.time_zone}"

    def render_status(self, record):
        return status_badge(record)

    def render_last_run(self, value):
        if not value:
            return "—"
        return format_html('<a href="{}">{}</a>', reverse("billruns:detail", args=[value]), value)

    # The exports hold the values, in the same words as the page.
    def value_next_run_at(self, record, value):
        return self.render_next_run_at(record, value)

    def value_status(self, record):
        return record.get_status_display()

    def value_last_run(self, value):
        return value or ""


class ScheduleListView(PermissionRequiredMixin, BoundedExportMixin, SingleTableView):
    permission_required = "billruns.view_schedule"
    template_name = "schedules/schedule_list.html"
    table_class = ScheduleTable
    table_pagination = {"per_page": 25}
    export_name = "schedules"

    def get_queryset(self):
        last_run = BillRun.objects.filter(schedule=OuterRef("pk")).order_by("-id")
        return (
            Schedule.objects.select_related("owner")
            .annotate(last_run_number=Subquery(last_run.values("number")[:1]))
            .order_by("name")
        )


def _form_page(request, form, schedule=None):
    status = 400 if form.is_bound else 200
    return render(
        request, "schedules/schedule_form.html", {"form": form, "schedule": schedule}, status=status
    )


@login_required
@permission_required("billruns.add_schedule", raise_exception=True)
def schedule_create_view(request):
    form = ScheduleForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            schedule = schedules.schedule_create(owner=request.user, **form.service_arguments())
        except schedules.InvalidSchedule as invalid:
            form.add_service_errors(invalid.errors)
        else:
            messages.success(request, f"Schedule {schedule.name} is created.")
            return redirect("billruns:schedule_detail", pk=schedule.pk)
    return _form_page(request, form)


@login_required
@permission_required("billruns.change_schedule", raise_exception=True)
def schedule_edit_view(request, pk):
    schedule = get_object_or_404(Schedule, pk=pk)
    if schedule.status == Schedule.Status.CANCELED:
        messages.error(request, f"{schedule.name} is canceled: it cannot be edited.")
        return redirect("billruns:schedule_detail", pk=schedule.pk)
    form = ScheduleForm(request.POST or None, schedule=schedule)
    if request.method == "POST" and form.is_valid():
        try:
            schedule = schedules.schedule_update(
                schedule=schedule, user=request.user, **form.service_arguments()
            )
        except schedules.ScheduleActionRefused as refusal:
            errors = getattr(refusal, "errors", {"__all__": [str(refusal)]})
            form.add_service_errors(errors)
        else:
            messages.success(request, f"Schedule {schedule.name} is saved.")
            return redirect("billruns:schedule_detail", pk=schedule.pk)
    return _form_page(request, form, schedule)


@require_GET
@login_required
@permission_required("billruns.view_schedule", raise_exception=True)
def schedule_detail_view(request, pk):
    schedule = get_object_or_404(Schedule.objects.select_related("owner"), pk=pk)
    now = timezone.now()
    active = schedule.status == Schedule.Status.ACTIVE
    preview = []
    if schedule.status != Schedule.Status.CANCELED:
        # From the stored next run when active, so the preview shows exactly
        # what will fire; a paused schedule shows what a resume now gives.
        after = now
        if active and schedule.next_run_at:
            after = min(now, schedule.next_run_at - datetime.timedelta(microseconds=1))
        preview = [
            {"at": at, "local": local_time(schedule, at), "key": schedules.occurrence_key(at)}
            for at in schedules.next_occurrences(schedule, after=after)
        ]
    skipped = [
        local_time(schedule, datetime.datetime.fromisoformat(key))
        for key in schedule.skipped_occurrences
        if datetime.datetime.fromisoformat(key) > now
    ]
    events = list(schedule.events.select_related("user", "bill_run")[: HISTORY_SHOWN + 1])
    can_change = (
        request.user.has_perm("billruns.change_schedule")
        and schedule.status != Schedule.Status.CANCELED
    )
    context = {
        "schedule": schedule,
        "status_badge": status_badge(schedule),
        "repeats": schedules.describe_repeats(schedule),
        "bill_cycle_day": schedules.describe_bill_cycle_day(schedule),
        "next_run": preview[0] if active and preview else None,
        "preview": preview,
        "skipped": skipped,
        "runs": schedule.runs.order_by("-id")[:RECENT_RUNS],
        "events": events[:HISTORY_SHOWN],
        "more_events": len(events) > HISTORY_SHOWN,
        "can_change": can_change,
        "can_pause": can_change and active,
        "can_resume": can_change and schedule.status == Schedule.Status.PAUSED,
        "can_preview": bool(active and schedule.next_run_at)
        and request.user.has_perm("billruns.add_billrun"),
    }
    return render(request, "schedules/schedule_detail.html", context)


def _schedule_action(request, pk, act, done):
    """Call one schedule service; a refusal becomes an error message and
    changes nothing."""
    schedule = get_object_or_404(Schedule, pk=pk)
    try:
        result = act(schedule)
    except schedules.ScheduleActionRefused as refusal:
        messages.error(request, str(refusal))
    else:
        messages.success(request, done(result))
    return redirect("billruns:schedule_detail", pk=schedule.pk)


@require_POST
@login_required
@permission_required("billruns.change_schedule", raise_exception=True)
def schedule_pause_view(request, pk):
    return _schedule_action(
        request,
        pk,
        lambda schedule: schedules.schedule_pause(schedule=schedule, user=request.user),
        lambda schedule: f"{schedule.name} is paused; no run fires until it is resumed.",
    )


@require_POST
@login_required
@permission_required("billruns.change_schedule", raise_exception=True)
def schedule_resume_view(request, pk):
    return _schedule_action(
        request,
        pk,
        lambda schedule: schedules.schedule_resume(schedule=schedule, user=request.user),
        lambda schedule: f"{schedule.name} is active again.",
    )


@require_POST
@login_required
@permission_required("billruns.change_schedule", raise_exception=True)
def schedule_cancel_view(request, pk):
    """``scope=all`` cancels the schedule; ``scope=occurrence`` with
    ``occurrence`` (ISO 8601) cancels that one run."""
    scope = request.POST.get("scope")
    if scope == "all":
        return _schedule_action(
            request,
            pk,
            lambda schedule: schedules.schedule_cancel(
                schedule=schedule, user=request.user, all_occurrences=True
            ),
            lambda schedule: f"{schedule.name} is canceled; it makes no more runs.",
        )
    try:
        occurrence = datetime.datetime.fromisoformat(request.POST.get("occurrence", ""))
        if occurrence.tzinfo is not None:
            occurrence = occurrence.astimezone(datetime.UTC)
    except (ValueError, OverflowError):  # 9999-12-31T23:59-01:00 is past the calendar
        occurrence = None
    if scope != "occurrence" or occurrence is None or occurrence.tzinfo is None:
        messages.error(request, "Choose the run to cancel, or cancel the whole schedule.")
        return redirect("billruns:schedule_detail", pk=pk)

    def done(schedule):
        return (
            f"The run of {local_time(schedule, occurrence):%Y-%m-%d %H:%M} "
            f"{schedule.time_zone} is canceled."
        )

    return _schedule_action(
        request,
        pk,
        lambda schedule: schedules.schedule_cancel(
            schedule=schedule, user=request.user, occurrence=occurrence
        ),
        done,
    )


@require_POST
@login_required
@permission_required("billruns.add_billrun", raise_exception=True)
def schedule_preview_view(request, pk):
    """*Preview the next run*: a preview with the parameters the schedule's
    next run will fire with, computed now; its page follows it."""
    schedule = get_object_or_404(Schedule, pk=pk)
    try:
        run = schedules.schedule_preview_next_run(schedule=schedule, user=request.user)
    except (schedules.ScheduleActionRefused, InvalidRunParameters) as refusal:
        messages.error(request, str(refusal))
        return redirect("billruns:schedule_detail", pk=schedule.pk)
    messages.success(request, f"{run.number} previews the next run of {schedule.name}.")
    return redirect("billruns:detail", number=run.number)
