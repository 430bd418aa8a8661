"""The engine's announcements (billruns/signals.py): each sent inside the
transaction of the change it announces, so what a listener writes commits
or rolls back with the change."""

import datetime

import pytest
from django.db import IntegrityError

from billruns import services
from billruns.models import BillRun, RunStatus
from billruns.services import execution
from billruns.signals import (
    bill_run_canceled,
    bill_run_completed,
    bill_run_failed,
    bill_run_finished,
    bill_run_posted,
)
from customers.models import Account
from notifications import services as notification_services
from notifications.models import RunNotification
from tests.factories import AccountFactory, ChargeFactory

JAN = datetime.date(2026, 1, 1)
SIGNALS = {
    "completed": bill_run_completed,
    "failed": bill_run_failed,
    "posted": bill_run_posted,
    "canceled": bill_run_canceled,
    "finished": bill_run_finished,
}


@pytest.fixture
def heard():
    """(signal, the run's status in the database as the listener read it)
    for every announcement."""
    seen = []

    def listener(name):
        def receive(sender, run, **kwargs):
            seen.append((name, BillRun.objects.get(pk=run.pk).status))

        return receive

    for name, signal in SIGNALS.items():
        signal.connect(listener(name), weak=False, dispatch_uid=f"test_signals_{name}")
    yield seen
    for name, signal in SIGNALS.items():
        signal.disconnect(dispatch_uid=f"test_signals_{name}")


def completed_run(**parameters):
    run = services.bill_run_create(target_date=JAN, enqueue=False, **parameters)
    return services.bill_run_execute(run_id=run.pk)


@pytest.mark.django_db
def test_each_change_is_announced_with_the_run_already_in_its_new_status(heard, clerk):
    # given
    ChargeFactory()
    # when
    run = completed_run(created_by=clerk)
    services.bill_run_post(run=run, user=clerk, wait=True)
    canceled = services.bill_run_create(target_date=JAN, enqueue=False)
    services.bill_run_cancel(run=canceled, user=clerk)
    # then
    assert heard == [
        ("completed", RunStatus.COMPLETED),
        ("finished", RunStatus.COMPLETED),
        ("posted", RunStatus.POSTED),
        ("canceled", RunStatus.CANCELED),
    ]


@pytest.mark.django_db
def test_an_auto_post_run_announces_its_end_once_posted(heard):
    ChargeFactory()
    completed_run(auto_post=True)
    assert heard == [
        ("completed", RunStatus.COMPLETED),
        ("posted", RunStatus.POSTED),
        ("finished", RunStatus.POSTED),
    ]


@pytest.mark.django_db
def test_a_run_in_error_announces_it(heard, monkeypatch):
    def broken_selection(run):
        raise RuntimeError("no selection today")

    monkeypatch.setattr(execution, "_selected_account_ids", broken_selection)
    run = completed_run()
    assert run.status == RunStatus.ERROR
    assert heard == [
        ("failed", RunStatus.ERROR),
        ("finished", RunStatus.ERROR),
    ]


@pytest.mark.django_db
def test_a_listener_that_raises_rolls_the_change_back_with_what_it_wrote(clerk):
    # given a Pending run, a listener that writes and one after it that raises
    run = services.bill_run_create(target_date=JAN, enqueue=False)
    accounts_before = Account.objects.count()

    def writes(sender, run, **kwargs):
        AccountFactory()

    def raises(sender, run, **kwargs):
        raise RuntimeError("listener broken")

    bill_run_canceled.connect(writes, weak=False, dispatch_uid="test_writes")
    bill_run_canceled.connect(raises, weak=False, dispatch_uid="test_raises")
    try:
        # when
        with pytest.raises(RuntimeError, match="listener broken"):
            services.bill_run_cancel(run=run, user=clerk)
    finally:
        bill_run_canceled.disconnect(dispatch_uid="test_writes")
        bill_run_canceled.disconnect(dispatch_uid="test_raises")
    # then the cancel did not happen, and neither did the listener's write
    run.refresh_from_db()
    assert (run.status, run.canceled_at) == (RunStatus.PENDING, None)
    assert Account.objects.count() == accounts_before


@pytest.mark.django_db
def test_a_failing_notification_never_undoes_the_end_of_the_run(clerk, monkeypatch):
    # given notifying fails in the database, after writing part of its rows
    ChargeFactory()

    def notify_fails(*, run_id):
        RunNotification.objects.create(user=clerk, bill_run_id=run_id, outcome="completed")
        raise IntegrityError("notices are broken")

    monkeypatch.setattr(notification_services, "run_finished_notify", notify_fails)
    # when
    run = completed_run(created_by=clerk)
    # then the run completed, announced, and the notice's half-written rows are gone
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert run.announced_at is not None
    assert not RunNotification.objects.exists()
