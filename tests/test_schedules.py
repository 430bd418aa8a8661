"""Schedule services: create, fire, pause, resume, cancel (one run or all)."""

import datetime

import pytest
from django_q.models import Schedule as QSchedule

from billruns import schedule_tasks, schedules
from billruns.models import BillRun, RunStatus, Schedule, ScheduleEvent
from billruns.services import bill_run_create

pytestmark = pytest.mark.django_db

UTC = datetime.UTC


def utc(*args):
    return datetime.datetime(*args, tzinfo=UTC)


def make(owner, now=None, **fields):
    now = now or utc(2026, 1, 10)
    values = {
        "name": "Monthly batch 1",
        "repeats": "monthly",
        "day_of_month": 15,
        "run_time": datetime.time(6, 0),
        "time_zone": "UTC",
        "start_date": datetime.date(2026, 1, 1),
    } | fields
    return schedules.schedule_create(owner=owner, now=now, **values)


# --- create and update -----------------------------------------------------------


def test_a_new_schedule_is_active_owned_by_its_creator_and_knows_its_next_run(clerk):
    schedule = make(clerk)

    assert schedule.owner == clerk
    assert schedule.status == Schedule.Status.ACTIVE
    assert schedule.next_run_at == utc(2026, 1, 15, 6)


def test_a_start_date_in_the_past_makes_no_runs_for_the_past(clerk):
    schedule = make(clerk, repeats="daily", start_date=datetime.date(2025, 6, 1))

    assert schedule.next_run_at == utc(2026, 1, 10, 6)


def test_the_next_run_is_stored_in_utc_from_the_schedules_time_zone(clerk):
    schedule = make(clerk, time_zone="America/Chicago", run_time=datetime.time(23, 30))

    assert schedule.next_run_at == utc(2026, 1, 16, 5, 30)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"repeats": "weekly", "weekdays": []}, "weekdays"),
        ({"weekdays": [7], "repeats": "weekly"}, "weekdays"),
        ({"day_of_month": 0}, "day_of_month"),
        ({"day_of_month": 32}, "day_of_month"),
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone"),
        ({"time_zone": "../../etc/passwd"}, "time_zone"),
        ({"end_date": datetime.date(2025, 12, 31)}, "end_date"),
        ({"repeats": "hourly"}, "repeats"),
        ({"name": "  "}, "name"),
        ({"batches": [51]}, "batches"),
        ({"bill_cycle_day": "32"}, "bill_cycle_day"),
        ({"exclude_charge_types": ["usage", "tax"]}, "exclude_charge_types"),
        ({"exclude_charge_types": "usage"}, "exclude_charge_types"),
        ({"target_date_offset_days": 400}, "target_date_offset_days"),
        ({"target_date_offset_days": True}, "target_date_offset_days"),
        ({"start_date": datetime.date(1999, 12, 31)}, "start_date"),
        ({"end_date": datetime.date(2100, 1, 1)}, "end_date"),
        ({"start_date": "2026-01-01"}, "start_date"),
        (
            {"start_date": datetime.date(2000, 1, 1), "target_date_offset_days": -1},
            "target_date_offset_days",
        ),
        (
            {"end_date": datetime.date(2099, 12, 31), "invoice_date_offset_days": 1},
            "invoice_date_offset_days",
        ),
    ],
)
def test_bad_fields_are_refused_and_nothing_is_created(clerk, fields, field):
    with pytest.raises(schedules.InvalidSchedule) as refused:
        make(clerk, **fields)

    assert field in refused.value.errors
    assert not Schedule.objects.exists()


def test_a_schedule_with_no_run_left_is_refused(clerk):
    with pytest.raises(schedules.InvalidSchedule) as refused:
        make(clerk, repeats="once", start_date=datetime.date(2026, 1, 5))

    assert "__all__" in refused.value.errors


def test_a_date_outside_2000_to_2099_is_refused_with_the_range(clerk):
    with pytest.raises(schedules.InvalidSchedule) as refused:
        make(clerk, start_date=datetime.date(9000, 1, 1))

    assert refused.value.errors["start_date"] == [
        "The start date must be between 2000-01-01 and 2099-12-31, not 9000-01-01."
    ]


def test_an_offset_that_moves_a_run_date_out_of_the_range_is_refused(clerk):
    with pytest.raises(schedules.InvalidSchedule) as refused:
        make(clerk, start_date=datetime.date(2000, 1, 1), invoice_date_offset_days=-3)

    assert refused.value.errors["invoice_date_offset_days"] == [
        "With an invoice date offset of -3 days, a run on the start date 2000-01-01 would "
        "have the invoice date 1999-12-29: dates must be between 2000-01-01 and 2099-12-31."
    ]


def test_a_refused_schedule_is_caught_as_a_schedule_refusal_or_as_bad_run_parameters(clerk):
    # given bad fields, as a view (schedule refusals) or a caller of the run
    # services (bad run parameters) would catch them
    for caught in (schedules.ScheduleActionRefused, schedules.InvalidRunParameters):
        # when
        with pytest.raises(caught) as refused:
            make(clerk, batches=[51])

        # then the errors and the message are the ones of either class
        assert refused.value.errors == {"batches": ["Batches are numbers from 1 to 50."]}
        assert str(refused.value) == "batches: Batches are numbers from 1 to 50."


def test_an_invoice_date_before_the_target_date_is_allowed_and_fires(clerk):
    make(clerk, target_date_offset_days=0, invoice_date_offset_days=-10)

    (run,) = schedules.schedules_fire_due(now=utc(2026, 1, 15, 6, 0, 30))

    assert (run.target_date, run.invoice_date) == (
        datetime.date(2026, 1, 15),
        datetime.date(2026, 1, 5),
    )


def test_two_schedules_cannot_share_a_name(clerk):
    make(clerk)

    with pytest.raises(schedules.InvalidSchedule) as refused:
        make(clerk)

    assert "name" in refused.value.errors


def test_an_update_recomputes_the_next_run_and_keeps_the_owner(clerk, superuser):
    schedule = make(clerk)

    schedule = schedules.schedule_update(
        schedule=schedule, user=superuser, now=utc(2026, 1, 10), repeats="monthly", day_of_month=31
    )

    assert schedule.next_run_at == utc(2026, 1, 31, 6)
    assert schedule.owner == clerk
    with pytest.raises(TypeError):
        schedules.schedule_update(schedule=schedule, user=superuser, owner=superuser)


# --- firing ----------------------------------------------------------------------


def test_firing_makes_a_pending_run_owned_by_the_schedule_owner(clerk):
    schedule = make(
        clerk,
        batches=[3, 1],
        bill_cycle_day="run_day",
        target_date_offset_days=-1,
        invoice_date_offset_days=2,
        auto_post=True,
    )

    runs = schedules.schedules_fire_due(now=utc(2026, 1, 15, 6, 0, 30))

    assert len(runs) == 1
    run = runs[0]
    assert run.status == RunStatus.PENDING
    # the owner gets the run's notifications: they go to created_by
    assert run.created_by == clerk
    assert run.schedule == schedule
    assert run.occurrence == utc(2026, 1, 15, 6)
    assert run.target_date == datetime.date(2026, 1, 14)
    assert run.invoice_date == datetime.date(2026, 1, 17)
    assert run.batches == [1, 3]
    assert run.bill_cycle_days == [15]
    assert run.auto_post is True
    schedule.refresh_from_db()
    assert schedule.next_run_at == utc(2026, 2, 15, 6)


def test_every_run_a_schedule_fires_excludes_its_charge_types(clerk):
    schedule = make(clerk, exclude_charge_types=["usage", "one_time", "usage"])
    assert schedule.exclude_charge_types == ["one_time", "usage"]

    (first,) = schedules.schedules_fire_due(now=utc(2026, 1, 15, 6, 1))
    (second,) = schedules.schedules_fire_due(now=utc(2026, 2, 15, 6, 1))

    assert first.exclude_charge_types == second.exclude_charge_types == ["one_time", "usage"]


def test_a_schedule_excludes_no_charge_type_unless_told(clerk):
    make(clerk)

    (run,) = schedules.schedules_fire_due(now=utc(2026, 1, 15, 6, 1))

    assert run.exclude_charge_types == []


def test_editing_the_excluded_charge_types_changes_the_next_runs_and_the_history(clerk, superuser):
    schedule = make(clerk, exclude_charge_types=["usage"])

    schedules.schedule_update(
        schedule=schedule,
        user=superuser,
        now=utc(2026, 1, 10),
        exclude_charge_types=["recurring", "one_time"],
    )
    (run,) = schedules.schedules_fire_due(now=utc(2026, 1, 15, 6, 1))

    assert run.exclude_charge_types == ["one_time", "recurring"]
    changes = [detail for kind, _, detail in history(schedule) if kind == "changed"]
    assert changes == ["exclude charge types: usage -> one_time, recurring"]


def test_as_run_day_on_the_last_day_of_february_selects_bcd_28_to_31(clerk):
    make(clerk, day_of_month=31, bill_cycle_day="run_day", now=utc(2026, 2, 1))

    (run,) = schedules.schedules_fire_due(now=utc(2026, 2, 28, 6, 1))

    assert run.target_date == datetime.date(2026, 2, 28)
    assert run.bill_cycle_days == [28, 29, 30, 31]


def test_nothing_fires_before_the_next_run(clerk):
    make(clerk)

    assert schedules.schedules_fire_due(now=utc(2026, 1, 15, 5, 59, 59)) == []
    assert not BillRun.objects.exists()


def test_firing_twice_makes_one_run(clerk):
    make(clerk)
    now = utc(2026, 1, 15, 6, 0, 5)

    schedules.schedules_fire_due(now=now)
    schedules.schedules_fire_due(now=now)

    assert BillRun.objects.count() == 1


def test_firing_the_same_occurrence_twice_makes_one_run(clerk):
    # given a cluster that fired the occurrence, and another that read the
    # schedule before the first one advanced it
    schedule = make(clerk)
    (first,) = schedules.schedules_fire_due(now=utc(2026, 1, 15, 6, 0, 5))
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=utc(2026, 1, 15, 6))

    # when the second fires the same occurrence
    second = schedules.schedule_fire(schedule_id=schedule.pk, now=utc(2026, 1, 15, 6, 0, 7))

    # then the database allowed one run: the second firing got the first run
    assert second.pk == first.pk
    assert BillRun.objects.filter(schedule=schedule).count() == 1


def test_the_database_allows_one_run_per_schedule_occurrence(clerk):
    schedule = make(clerk)
    at = utc(2026, 1, 15, 6)
    arguments = {"target_date": datetime.date(2026, 1, 15), "schedule": schedule, "occurrence": at}

    first = bill_run_create(**arguments, enqueue=False)
    second = bill_run_create(**arguments, enqueue=False)

    assert first.pk == second.pk
    assert BillRun.objects.count() == 1


def test_after_downtime_only_the_latest_missed_occurrence_fires(clerk):
    schedule = make(clerk, repeats="daily")

    # the servers were down from 10 January to the 14th, 09:00
    runs = schedules.schedules_fire_due(now=utc(2026, 1, 14, 9))

    assert [run.occurrence for run in runs] == [utc(2026, 1, 14, 6)]
    assert runs[0].target_date == datetime.date(2026, 1, 14)
    schedule.refresh_from_db()
    assert schedule.next_run_at == utc(2026, 1, 15, 6)
    assert schedules.schedules_fire_due(now=utc(2026, 1, 14, 9, 1)) == []


def test_a_once_schedule_fires_once(clerk):
    schedule = make(clerk, repeats="once", start_date=datetime.date(2026, 2, 1))

    assert len(schedules.schedules_fire_due(now=utc(2026, 2, 1, 6))) == 1
    schedule.refresh_from_db()
    assert schedule.next_run_at is None
    assert schedules.schedules_fire_due(now=utc(2027, 1, 1)) == []


def test_the_end_date_stops_the_runs(clerk):
    schedule = make(clerk, repeats="daily", end_date=datetime.date(2026, 1, 11))

    schedules.schedules_fire_due(now=utc(2026, 1, 10, 7))
    schedules.schedules_fire_due(now=utc(2026, 1, 11, 7))
    schedules.schedules_fire_due(now=utc(2026, 1, 12, 7))

    assert BillRun.objects.count() == 2
    schedule.refresh_from_db()
    assert schedule.next_run_at is None


def test_one_schedule_failing_does_not_stop_the_others(clerk, monkeypatch):
    broken = make(clerk, name="Broken")
    make(clerk, name="Fine")
    real_fire = schedules.schedule_fire

    def fire(*, schedule_id, now):
        if schedule_id == broken.pk:
            raise RuntimeError("boom")
        return real_fire(schedule_id=schedule_id, now=now)

    monkeypatch.setattr(schedules.services, "schedule_fire", fire)

    runs = schedules.schedules_fire_due(now=utc(2026, 1, 15, 6, 1))

    assert [run.schedule.name for run in runs] == ["Fine"]
    broken.refresh_from_db()
    assert broken.next_run_at == utc(2026, 1, 15, 6)


def test_the_task_fires_due_schedules_and_queues_their_runs(
    clerk, django_capture_on_commit_callbacks
):
    # given a daily schedule whose run time was a minute ago
    now = datetime.datetime.now(UTC)
    a_minute_ago = (now - datetime.timedelta(minutes=1)).replace(microsecond=0)
    schedule = make(
        clerk,
        repeats="daily",
        run_time=a_minute_ago.time(),
        start_date=a_minute_ago.date(),
        now=now - datetime.timedelta(minutes=2),
    )

    with django_capture_on_commit_callbacks(execute=True):
        numbers = schedule_tasks.fire_due_schedules()

    # the run was queued, and (tasks run inline in tests) executed
    run = BillRun.objects.get(number=numbers[0])
    assert run.schedule == schedule and run.created_by == clerk
    assert run.status == RunStatus.COMPLETED


def test_the_task_queue_calls_the_task_every_minute():
    q_schedule = QSchedule.objects.get(func="billruns.schedule_tasks.fire_due_schedules")

    assert q_schedule.schedule_type == QSchedule.MINUTES
    assert q_schedule.minutes == 1
    assert q_schedule.repeats == -1


# --- pause and resume ------------------------------------------------------------


def test_a_paused_schedule_does_not_fire(clerk):
    schedule = make(clerk)

    schedules.schedule_pause(schedule=schedule, user=clerk)

    assert schedules.schedules_fire_due(now=utc(2026, 1, 15, 7)) == []
    schedule.refresh_from_db()
    assert schedule.status == Schedule.Status.PAUSED


def test_resuming_starts_at_the_first_run_after_now_without_making_up(clerk):
    schedule = make(clerk)
    schedules.schedule_pause(schedule=schedule, user=clerk)

    schedule = schedules.schedule_resume(schedule=schedule, user=clerk, now=utc(2026, 3, 1))

    assert schedule.status == Schedule.Status.ACTIVE
    assert schedule.next_run_at == utc(2026, 3, 15, 6)
    assert schedules.schedules_fire_due(now=utc(2026, 3, 1, 0, 1)) == []
    (run,) = schedules.schedules_fire_due(now=utc(2026, 3, 15, 6, 1))
    assert run.occurrence == utc(2026, 3, 15, 6)


def test_pausing_twice_and_resuming_an_active_schedule_are_refused(clerk):
    schedule = make(clerk)
    with pytest.raises(schedules.ScheduleActionRefused, match="only a paused schedule"):
        schedules.schedule_resume(schedule=schedule, user=clerk)
    schedules.schedule_pause(schedule=schedule, user=clerk)

    with pytest.raises(schedules.ScheduleActionRefused, match="only an active schedule"):
        schedules.schedule_pause(schedule=schedule, user=clerk)


# --- cancel ----------------------------------------------------------------------


def test_canceling_the_next_occurrence_skips_it_only(clerk):
    schedule = make(clerk)

    schedule = schedules.schedule_cancel(
        schedule=schedule, user=clerk, occurrence=utc(2026, 1, 15, 6), now=utc(2026, 1, 10)
    )

    assert schedule.status == Schedule.Status.ACTIVE
    assert schedule.next_run_at == utc(2026, 2, 15, 6)
    assert schedules.schedules_fire_due(now=utc(2026, 1, 15, 6, 1)) == []
    (run,) = schedules.schedules_fire_due(now=utc(2026, 2, 15, 6, 1))
    assert run.occurrence == utc(2026, 2, 15, 6)


def test_a_canceled_later_occurrence_is_not_fired_after_downtime(clerk):
    schedule = make(clerk, repeats="daily")
    schedules.schedule_cancel(
        schedule=schedule, user=clerk, occurrence=utc(2026, 1, 12, 6), now=utc(2026, 1, 10, 7)
    )

    runs = schedules.schedules_fire_due(now=utc(2026, 1, 12, 9))

    assert [run.occurrence for run in runs] == [utc(2026, 1, 11, 6)]


def test_canceling_a_time_that_is_no_occurrence_is_refused(clerk):
    schedule = make(clerk)

    with pytest.raises(schedules.ScheduleActionRefused, match="has no run at"):
        schedules.schedule_cancel(
            schedule=schedule, user=clerk, occurrence=utc(2026, 1, 16, 6), now=utc(2026, 1, 10)
        )
    schedule.refresh_from_db()
    assert schedule.skipped_occurrences == []


def test_canceling_all_ends_the_schedule_for_good(clerk):
    schedule = make(clerk)
    schedules.schedules_fire_due(now=utc(2026, 1, 15, 6, 1))

    schedule = schedules.schedule_cancel(schedule=schedule, user=clerk, all_occurrences=True)

    assert schedule.status == Schedule.Status.CANCELED
    assert schedule.next_run_at is None
    assert schedules.schedules_fire_due(now=utc(2026, 6, 1)) == []
    assert BillRun.objects.filter(schedule=schedule).count() == 1  # made runs stay
    for action in (schedules.schedule_resume, schedules.schedule_pause):
        with pytest.raises(schedules.ScheduleActionRefused):
            action(schedule=schedule, user=clerk)
    with pytest.raises(schedules.ScheduleActionRefused, match="canceled"):
        schedules.schedule_update(schedule=schedule, user=clerk, day_of_month=2)


# --- history ---------------------------------------------------------------------


def history(schedule):
    return [
        (event.kind, event.user, event.detail)
        for event in ScheduleEvent.objects.filter(schedule=schedule).order_by("at", "id")
    ]


def test_every_change_is_in_the_history_with_who_and_what(clerk, superuser):
    schedule = make(clerk)
    schedules.schedule_update(
        schedule=schedule,
        user=superuser,
        now=utc(2026, 1, 10),
        day_of_month=31,
        run_time=datetime.time(7, 30),
        batches=[2, 1],
    )
    # an edit that changes nothing is no entry
    schedules.schedule_update(schedule=schedule, user=superuser, now=utc(2026, 1, 10))
    schedules.schedule_cancel(
        schedule=schedule, user=clerk, occurrence=utc(2026, 1, 31, 7, 30), now=utc(2026, 1, 10)
    )
    schedules.schedule_pause(schedule=schedule, user=clerk)
    schedules.schedule_resume(schedule=schedule, user=superuser, now=utc(2026, 1, 10))
    schedules.schedule_cancel(schedule=schedule, user=superuser, all_occurrences=True)

    assert history(schedule) == [
        ("created", clerk, ""),
        (
            "changed",
            superuser,
            "day of month: 15 -> 31\nrun time: 06:00 -> 07:30\nbatches: none -> 1, 2",
        ),
        ("occurrence_canceled", clerk, "The run at 2026-01-31 07:30 UTC is canceled."),
        ("paused", clerk, ""),
        ("resumed", superuser, ""),
        ("canceled", superuser, ""),
    ]


def test_a_refused_change_leaves_no_entry(clerk):
    schedule = make(clerk)
    with pytest.raises(schedules.InvalidSchedule):
        schedules.schedule_update(schedule=schedule, user=clerk, day_of_month=40)
    with pytest.raises(schedules.ScheduleActionRefused):
        schedules.schedule_resume(schedule=schedule, user=clerk)

    assert [kind for kind, _, _ in history(schedule)] == ["created"]


def test_a_fired_run_and_a_refused_run_are_in_the_history(clerk, monkeypatch):
    schedule = make(clerk, time_zone="Europe/Berlin")
    (run,) = schedules.schedules_fire_due(now=utc(2026, 1, 15, 6))
    fired = ScheduleEvent.objects.get(schedule=schedule, kind="fired")
    assert (fired.bill_run, fired.user) == (run, None)
    assert fired.detail == f"{run.number} for the run at 2026-01-15 06:00 Europe/Berlin."

    def refuse(**kwargs):
        raise schedules.InvalidRunParameters({"batches": ["Batch 51 is not between 1 and 50."]})

    monkeypatch.setattr(schedules.services, "bill_run_create", refuse)
    assert schedules.schedules_fire_due(now=utc(2026, 2, 15, 6)) == []
    refused = ScheduleEvent.objects.get(schedule=schedule, kind="refused")
    assert refused.detail == (
        "The run at 2026-02-15 06:00 Europe/Berlin was refused: "
        "batches: Batch 51 is not between 1 and 50."
    )
    # the refused occurrence is passed over, and the next one is due as usual
    schedule.refresh_from_db()
    assert schedule.next_run_at == utc(2026, 3, 15, 5)
