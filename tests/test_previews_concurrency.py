"""A preview and a real run over the same accounts at once (PostgreSQL): the
real run, in a process of its own, is never blocked nor changed by a preview
holding its chunk open, documents and items written and their foreign keys
checked (the KEY SHARE locks on the accounts, charges and items they refer
to), the moment before it would commit."""

import datetime
import threading
from decimal import Decimal

import pytest
from django.db import connection, connections

from billruns import generation, services
from billruns.models import BillRun, RunStatus
from customers.models import Charge
from invoices.models import Document
from tests.factories import (
    AccountFactory,
    ChargeFactory,
    OneTimeChargeFactory,
    SubscriptionFactory,
    UsageChargeFactory,
    UsageRecordFactory,
)
from tests.processes import manage
from tests.test_billrun_adjustments import change_price
from tests.test_previews import made

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

D = datetime.date
TARGET = "2026-03-01"


def a_book_billed_once_then_changed():
    plans = []
    for index in range(6):
        account = AccountFactory(bill_cycle_day=1 + index * 5)
        sub = SubscriptionFactory(account=account, start_date=D(2026, 1, 1 + index))
        plans.append(ChargeFactory(subscription=sub, amount=Decimal("100.00") + index))
        OneTimeChargeFactory(subscription=sub)
        usage = UsageChargeFactory(subscription=sub)
        UsageRecordFactory(charge=usage, date=D(2026, 1, 10), quantity=Decimal(100 * index))
    first = services.bill_run_create(target_date=D(2026, 2, 1), enqueue=False)
    services.bill_run_execute(run_id=first.pk)
    change_price(plans[0], D(2026, 1, 20), amount="130.00")  # adjustments next time


def test_a_real_run_is_never_blocked_nor_changed_by_a_preview_of_the_same_accounts(monkeypatch):
    a_book_billed_once_then_changed()
    written, release = threading.Event(), threading.Event()
    original = generation._write_documents

    def write_then_hold(run, billed, advanced_ar):
        original(run, billed, advanced_ar)
        if run.preview:
            with connection.cursor() as cursor:  # the foreign keys' checks, now
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            written.set()
            assert release.wait(120)

    monkeypatch.setattr(generation, "_write_documents", write_then_hold)
    preview = services.bill_run_create(target_date=D(2026, 3, 1), preview=True, enqueue=False)
    outcome = {}

    def run_the_preview():
        try:
            outcome["run"] = services.bill_run_execute(run_id=preview.pk)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run_the_preview)
    thread.start()
    try:
        assert written.wait(60), "the preview never wrote its documents"
        # when the real run goes, in its own process, while the preview holds
        # its chunk open: any lock it waited for more than 2 s would fail it
        real = manage(
            "billrun",
            "create",
            "--target-date",
            TARGET,
            "--wait",
            check=False,
            PGOPTIONS="-c lock_timeout=2000",
        )
        # then it completed, without waiting
        assert real.returncode == 0, real.stderr
        assert thread.is_alive() and not release.is_set()  # (the preview still held)
    finally:
        release.set()
        thread.join(120)
    number = real.stdout.splitlines()[0].strip()
    real_run = BillRun.objects.get(number=number)
    assert real_run.status == RunStatus.COMPLETED and not real_run.preview
    assert outcome["run"].status == RunStatus.COMPLETED
    # and it made exactly what the preview, computed over the same books, showed
    assert made(real_run) == made(outcome["run"])
    assert made(real_run)["documents"]
    # with its own numbers and charged-through dates, the preview none
    assert not Document.objects.filter(bill_run=real_run, number__isnull=True).exists()
    assert Charge.objects.filter(charged_through_date__gte=D(2026, 3, 1)).exists()
    assert not Document.objects.filter(bill_run=outcome["run"]).exists()
