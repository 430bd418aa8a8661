"""Concurrent bill runs over the same accounts, on PostgreSQL with real threads.

Each thread has its own database connection, as separate workers would.
"""

import datetime
import re
import threading
import time
from collections import Counter

import pytest
from django.db import connection

from billruns import services
from billruns.models import BillRun, RunStatus
from billruns.services import cancel
from customers.models import Charge
from invoices.models import DocumentItem
from tests.factories import AccountFactory, ChargeFactory, OneTimeChargeFactory, SubscriptionFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_in_threads(count, work):
    barrier = threading.Barrier(count)
    errors = []

    def target(index):
        try:
            barrier.wait()
            work(index)
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors


def make_book(accounts):
    for index in range(accounts):
        subscription = SubscriptionFactory(
            account=AccountFactory(bill_cycle_day=1 + index % 28),
            start_date=datetime.date(2026, 1, 1 + index % 28),
        )
        ChargeFactory(subscription=subscription, start_date=subscription.start_date)
        ChargeFactory(
            subscription=subscription,
            period="quarter",
            amount="300.00",
            start_date=subscription.start_date,
        )
        OneTimeChargeFactory(subscription=subscription, start_date=subscription.start_date)


def test_overlapping_runs_bill_every_period_exactly_once(settings):
    # given 60 accounts, and runs cut into small chunks so that they interleave
    settings.BILLRUN_CHUNK_SIZE = 7
    make_book(60)

    # when six runs over the same accounts and target date execute at once
    def create_and_execute(_index):
        run = services.bill_run_create(target_date=datetime.date(2026, 6, 30), enqueue=False)
        services.bill_run_execute(run_id=run.pk)

    run_in_threads(6, create_and_execute)

    # then every run completed, and every period was billed exactly once overall
    assert set(BillRun.objects.values_list("status", flat=True)) == {RunStatus.COMPLETED}
    billed = Counter(DocumentItem.objects.values_list("charge_id", "service_start"))
    assert billed and max(billed.values()) == 1
    # and nothing is missing: a single run afterwards finds nothing more due
    run = services.bill_run_create(target_date=datetime.date(2026, 6, 30), enqueue=False)
    run = services.bill_run_execute(run_id=run.pk)
    assert run.invoices_count == 0 and run.credit_memos_count == 0
    assert not Charge.objects.filter(charged_through_date__isnull=True).exists()


def test_two_cancels_racing_roll_back_once():
    # given a completed run
    make_book(10)
    run = services.bill_run_create(target_date=datetime.date(2026, 3, 1), enqueue=False)
    run = services.bill_run_execute(run_id=run.pk)
    outcomes = []

    # when two clerks cancel it at once
    def cancel(_index):
        try:
            services.bill_run_cancel(run=BillRun.objects.get(pk=run.pk), user=None)
            outcomes.append("canceled")
        except services.BillRunActionRefused as exc:
            outcomes.append(str(exc))

    run_in_threads(2, cancel)

    # then one cancel wins, the other is refused, and the dates are back to new
    assert outcomes.count("canceled") == 1 and len(outcomes) == 2
    refusal = next(outcome for outcome in outcomes if outcome != "canceled")
    assert run.number in refusal
    assert not Charge.objects.filter(charged_through_date__isnull=False).exists()


def test_post_racing_cancel_has_one_winner():
    make_book(10)
    run = services.bill_run_create(target_date=datetime.date(2026, 3, 1), enqueue=False)
    run = services.bill_run_execute(run_id=run.pk)
    outcomes = []

    def act(index):
        fresh = BillRun.objects.get(pk=run.pk)
        try:
            if index == 0:
                services.bill_run_post(run=fresh, user=None, wait=True)
            else:
                services.bill_run_cancel(run=fresh, user=None)
            outcomes.append("won")
        except services.BillRunActionRefused:
            outcomes.append("refused")

    run_in_threads(2, act)

    assert sorted(outcomes) == ["refused", "won"]
    run.refresh_from_db()
    statuses = set(run.documents.values_list("status", flat=True))
    if run.status == RunStatus.POSTED:
        assert statuses == {"Posted"}
    else:
        assert run.status == RunStatus.CANCELED and statuses == {"Canceled"}


def test_posting_in_parallel_batches_posts_every_draft_once(settings):
    # given a completed run of 30 invoices, posted 4 at a time by 3 connections
    settings.POST_BATCH_SIZE = 4
    settings.POST_WORKERS = 3
    make_book(30)
    run = services.bill_run_create(target_date=datetime.date(2026, 3, 1), enqueue=False)
    run = services.bill_run_execute(run_id=run.pk)
    # when it is posted
    run = services.bill_run_post(run=run, user=None, wait=True)
    # then every invoice is posted, once, and the run says so
    assert run.status == RunStatus.POSTED
    assert set(run.documents.values_list("status", flat=True)) == {"Posted"}
    assert run.documents.filter(posted_at__isnull=True).count() == 0


def test_two_clerks_retrying_at_once_make_one_retry_run():
    # given a completed run with failed accounts
    for _ in range(3):
        ChargeFactory(subscription=SubscriptionFactory(account=AccountFactory(bill_to_email="")))
    run = services.bill_run_create(target_date=datetime.date(2026, 3, 1), enqueue=False)
    run = services.bill_run_execute(run_id=run.pk)
    assert run.accounts_failed == 3
    outcomes = []

    # when two clerks retry it at once
    def retry(_index):
        try:
            retry_run = services.bill_run_retry(run=BillRun.objects.get(pk=run.pk), user=None)
            outcomes.append(retry_run.number)
        except services.BillRunActionRefused as exc:
            outcomes.append(str(exc))

    run_in_threads(2, retry)

    # then one retry run exists, and the other clerk is told its number (and
    # its status at that moment: the first retry may already have been run by
    # the synchronous queue, so Pending, Processing or Completed)
    (retry_run,) = BillRun.objects.filter(retry_of=run)
    refusal = re.compile(
        rf"{run.number} is already retried by {retry_run.number} "
        r"\((Pending|Processing|Completed)\): retry "
        rf"{retry_run.number} instead, or cancel it to retry {run.number} again\."
    )
    assert retry_run.number in outcomes and len(outcomes) == 2
    (other,) = [outcome for outcome in outcomes if outcome != retry_run.number]
    assert refusal.fullmatch(other), other


@pytest.mark.parametrize("cancel_delay", [0.0, 0.05, 0.5])
def test_a_cancel_and_a_later_run_racing_never_roll_a_charge_back_under_a_live_item(
    settings, monkeypatch, cancel_delay
):
    # given a completed run whose cancel is queued, and a later run billing the
    # next period while the cancel is done (the delay moves the cancel from
    # before the later run, to during it, to after it)
    settings.BILLRUN_CHUNK_SIZE = 3
    make_book(12)
    first = services.bill_run_create(target_date=datetime.date(2026, 3, 1), enqueue=False)
    first = services.bill_run_execute(run_id=first.pk)
    with monkeypatch.context() as queue:
        queue.setattr(cancel, "_enqueue", lambda *args: None)  # the test does the task's work
        services.bill_run_cancel(run=first, user=None, wait=False)
    assert BillRun.objects.get(pk=first.pk).status == RunStatus.CANCEL_IN_PROGRESS

    def act(index):
        if index == 0:
            time.sleep(cancel_delay)
            services.bill_run_continue_canceling(run_id=first.pk, user=None)
        else:
            later = services.bill_run_create(target_date=datetime.date(2026, 6, 30), enqueue=False)
            services.bill_run_execute(run_id=later.pk)

    run_in_threads(2, act)

    # then the cancel either happened or stopped, and either way every
    # charge's charged-through date is the day after its last live item
    def consistent():
        for charge in Charge.objects.all():
            live = DocumentItem.objects.filter(charge=charge, document_canceled=False)
            last = live.order_by("-service_end").values_list("service_end", flat=True).first()
            if charge.charge_type == "one_time":
                assert (charge.charged_through_date is None) == (last is None), charge
            else:  # items end on their last day; the charge is billed through the next
                assert charge.charged_through_date == (
                    last + datetime.timedelta(days=1) if last else None
                ), charge

    assert BillRun.objects.get(pk=first.pk).status in (RunStatus.CANCELED, RunStatus.COMPLETED)
    consistent()
    # and billing again fails no account and bills no period twice
    again = services.bill_run_create(target_date=datetime.date(2026, 6, 30), enqueue=False)
    again = services.bill_run_execute(run_id=again.pk)
    assert again.accounts_failed == 0, list(again.failures.values_list("reason", flat=True))
    billed = Counter(
        DocumentItem.objects.filter(document_canceled=False).values_list(
            "charge_id", "service_start"
        )
    )
    assert max(billed.values()) == 1
    consistent()
