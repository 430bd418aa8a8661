"""The sweeper finishes what a dead worker left: auto-posts and announcements."""

import datetime

import pytest
from django.utils import timezone

from billruns import services
from billruns.models import BillRun, RunStatus
from billruns.signals import bill_run_finished
from tests.factories import ChargeFactory

JAN = datetime.date(2026, 1, 1)


@pytest.fixture
def announced():
    seen = []

    def receiver(sender, run, **kwargs):
        seen.append((run.number, BillRun.objects.get(pk=run.pk).status))

    bill_run_finished.connect(receiver, dispatch_uid="test_billrun_sweeper")
    yield seen
    bill_run_finished.disconnect(dispatch_uid="test_billrun_sweeper")


def sweep():
    services.bill_runs_sweep(lease_seconds=60, pending_grace_seconds=60)


def age(run, minutes):
    BillRun.objects.filter(pk=run.pk).update(
        completed_at=timezone.now() - datetime.timedelta(minutes=minutes)
    )


@pytest.mark.django_db
def test_a_completed_run_whose_announcement_was_lost_is_announced_once(announced, monkeypatch):
    # given a run whose worker died between completing and announcing
    ChargeFactory()
    monkeypatch.setattr(services, "_announce", lambda run: run)
    run = services.bill_run_execute(
        run_id=services.bill_run_create(target_date=JAN, enqueue=False).pk
    )
    monkeypatch.undo()
    age(run, 5)
    # when the sweeper runs twice
    sweep()
    sweep()
    # then the run was announced once
    assert announced == [(run.number, RunStatus.COMPLETED)]


@pytest.mark.django_db
def test_a_recent_run_is_left_to_its_own_worker(announced, monkeypatch):
    ChargeFactory()
    monkeypatch.setattr(services, "_announce", lambda run: run)
    services.bill_run_execute(run_id=services.bill_run_create(target_date=JAN, enqueue=False).pk)
    monkeypatch.undo()
    sweep()
    assert announced == []


@pytest.mark.django_db
def test_an_auto_post_run_whose_worker_died_before_posting_is_posted_then_announced(
    announced, monkeypatch
):
    # given an auto-post run that completed but was never posted
    ChargeFactory()
    monkeypatch.setattr(services, "_auto_post", lambda run: run)
    monkeypatch.setattr(services, "_announce", lambda run: run)
    run = services.bill_run_create(target_date=JAN, auto_post=True, enqueue=False)
    run = services.bill_run_execute(run_id=run.pk)
    monkeypatch.undo()
    assert BillRun.objects.get(pk=run.pk).status == RunStatus.COMPLETED
    age(run, 5)
    # when
    sweep()
    # then it is posted, and announced after the posting
    assert BillRun.objects.get(pk=run.pk).status == RunStatus.POSTED
    assert announced == [(run.number, RunStatus.POSTED)]
