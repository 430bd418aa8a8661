"""A change confirmed from the subscription page's form and a bill run over
the same account at once, on PostgreSQL (BILLING_RULES.md, Subscription
changes): the form's transaction locks the account as the run's chunk does,
so the run bills everything before the change or everything after it.

Each side is a thread with its own connection: the clerk's confirmation
goes through the page (Django's test client, the real view), the run
through ``bill_run_create`` and ``bill_run_execute`` (a chunk's own code).
To make each order happen for sure, one side is held inside its
transaction, with the account locked, until the other waits for that lock
(``pg_stat_activity``); then it is let go.

The rules' worked example: BCD 1, Pro plan monthly 100.00 from 2026-03-01,
billed March and April by the run of 2026-04-01; the clerk changes the
price to 160.00 from 2026-03-11, and the racing run has target date
2026-05-01."""

import datetime
import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client

from billruns import changes as change_service
from billruns import generation
from billruns.services import bill_run_create, bill_run_execute
from customers.models import ChargePrice, SubscriptionChange
from invoices.models import DocumentItem
from tests.factories import AccountFactory, ChargeFactory, SubscriptionFactory
from tests.processes import wait_for
from tests.test_import_usage_concurrency import waiting_backends

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

D = datetime.date
LOCK_QUERY = 'SELECT "customers_account"."id"'
PAUSE = 60  # seconds a held side waits at most for the test to let it go


@pytest.fixture
def pro_plan(monkeypatch):
    monkeypatch.setattr("django.utils.timezone.localdate", lambda *args: D(2026, 4, 20))
    account = AccountFactory(bill_cycle_day=1)
    subscription = SubscriptionFactory(account=account, start_date=D(2026, 3, 1))
    charge = ChargeFactory(
        subscription=subscription,
        name="Pro plan",
        amount=Decimal("100.00"),
        start_date=D(2026, 3, 1),
    )
    run(D(2026, 4, 1))
    charge.refresh_from_db()
    return charge


def run(target):
    bill_run = bill_run_create(target_date=target, enqueue=False)
    return bill_run_execute(run_id=bill_run.pk)


def form_data(charge):
    return {
        "charge": charge.number,
        "effective_date": "2026-03-11",
        "amount": "160.00",
    }


def page_url(charge):
    return f"/billing/subscriptions/{charge.subscription.number}/change-price/"


def previewed(client, charge):
    response = client.post(page_url(charge), {**form_data(charge), "action": "preview"})
    assert response.status_code == 200
    return response.context["preview"].digest


class Side(threading.Thread):
    """One side of the race, in a thread of its own (its own connection)."""

    def __init__(self, name, work):
        super().__init__(name=name, daemon=True)
        self.work = work
        self.result = None
        self.error = None

    def run(self):
        try:
            self.result = self.work()
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            connection.close()

    def outcome(self):
        self.join(timeout=120)
        assert not self.is_alive(), f"{self.name} did not finish"
        if self.error is not None:
            raise self.error
        return self.result


def hold(monkeypatch, module, name, thread_name):
    """Wrap ``module.name`` so that, in the thread ``thread_name`` only, it
    says it is in (``inside``) and then waits for ``go`` after the real call
    (the side's transaction then holds the account's lock)."""
    inside, go = threading.Event(), threading.Event()
    real = getattr(module, name)

    def held(*args, **kwargs):
        result = real(*args, **kwargs)
        if threading.current_thread().name == thread_name:
            inside.set()
            assert go.wait(PAUSE), "the test never let this side go"
        return result

    monkeypatch.setattr(module, name, held)
    return inside, go


def items_of(bill_run):
    return [
        (i.kind, i.service_start, i.service_end, i.amount)
        for i in DocumentItem.objects.filter(document__bill_run=bill_run).order_by(
            "kind", "service_start", "id"
        )
    ]


def test_a_run_reaching_the_account_while_the_form_confirms_bills_after_the_change(
    monkeypatch, superuser, pro_plan
):
    # given the clerk's confirmation inside its transaction (the change
    # applied, the account locked), held there
    client = Client()
    client.force_login(superuser)
    digest = previewed(client, pro_plan)
    inside, go = hold(monkeypatch, change_service, "_preview", "form")
    form = Side(
        "form",
        lambda: client.post(
            page_url(pro_plan), {**form_data(pro_plan), "action": "confirm", "digest": digest}
        ),
    )
    form.start()
    assert inside.wait(PAUSE)

    # when a run reaches the account and waits for its lock, and the form goes on
    racing = Side("run", lambda: run(D(2026, 5, 1)))
    racing.start()
    wait_for(
        lambda: not racing.is_alive() or waiting_backends(LOCK_QUERY) == 1,
        timeout=PAUSE,
        what="the run to wait for the account's lock",
    )
    assert racing.is_alive(), racing.error
    go.set()
    response = form.outcome()
    bill_run = racing.outcome()

    # then the change is applied and the run billed all of it: the rules'
    # worked example, adjustments and pieces at the new price
    assert response.status_code == 302
    assert SubscriptionChange.objects.filter(charge=pro_plan).count() == 1
    assert bill_run.status == "Completed"
    assert items_of(bill_run) == [
        ("adjustment", D(2026, 3, 11), D(2026, 3, 31), Decimal("-67.74")),
        ("adjustment", D(2026, 4, 1), D(2026, 4, 30), Decimal("-100.00")),
        ("charge", D(2026, 3, 11), D(2026, 3, 31), Decimal("108.39")),
        ("charge", D(2026, 4, 1), D(2026, 4, 30), Decimal("160.00")),
        ("charge", D(2026, 5, 1), D(2026, 5, 31), Decimal("160.00")),
    ]


def test_a_confirmation_reaching_the_account_while_a_run_bills_it_sees_what_the_run_billed(
    monkeypatch, superuser, pro_plan
):
    # given the clerk's preview, then a run's chunk billing the account
    # (locked, its charges read), held there
    client = Client()
    client.force_login(superuser)
    digest = previewed(client, pro_plan)
    inside, go = hold(monkeypatch, generation, "_history", "run")
    racing = Side("run", lambda: run(D(2026, 5, 1)))
    racing.start()
    assert inside.wait(PAUSE)

    # when the clerk confirms and the confirmation waits for the account's
    # lock, and the run goes on
    form = Side(
        "form",
        lambda: client.post(
            page_url(pro_plan), {**form_data(pro_plan), "action": "confirm", "digest": digest}
        ),
    )
    form.start()
    wait_for(
        lambda: not form.is_alive() or waiting_backends(LOCK_QUERY) == 1,
        timeout=PAUSE,
        what="the confirmation to wait for the account's lock",
    )
    assert form.is_alive(), form.error
    go.set()
    bill_run = racing.outcome()
    response = form.outcome()

    # then the run billed all before the change (May at the old price, no
    # adjustment), and the confirmation, let in after it, found the preview
    # changed: nothing applied, the new preview shown
    assert bill_run.status == "Completed"
    assert items_of(bill_run) == [("charge", D(2026, 5, 1), D(2026, 5, 31), Decimal("100.00"))]
    assert response.status_code == 409
    assert not SubscriptionChange.objects.exists()
    assert not ChargePrice.objects.exists()
    new = response.context["preview"]
    assert sorted((row.kind, row.start, row.amount) for row in new.adjustments) == [
        ("adjustment", D(2026, 3, 11), Decimal("-67.74")),
        ("adjustment", D(2026, 4, 1), Decimal("-100.00")),
        ("adjustment", D(2026, 5, 1), Decimal("-100.00")),
    ]
