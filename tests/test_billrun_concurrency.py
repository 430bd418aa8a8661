"""Concurrent bill runs over the same accounts, on PostgreSQL with real threads.

Each thread has its own database connection, as separate workers would.
"""

import datetime
import threading
from collections import Counter

import pytest
from django.db import connection

from billruns import services
from billruns.models import BillRun, RunStatus
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
