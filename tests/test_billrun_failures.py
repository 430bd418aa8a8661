"""One account's failure never stops the run (BILLING_RULES.md, "Failures"):
the account is recorded with its reason, nothing of it changes, the other
accounts are billed, and the run ends Completed with errors."""

import datetime
from decimal import Decimal

import pytest

from billruns import engine, services
from billruns.models import RunStatus
from customers.models import Charge
from invoices.models import Document, DocumentItem, DocumentType
from tests.factories import AccountFactory, ChargeFactory, OneTimeChargeFactory, SubscriptionFactory

JAN = datetime.date(2026, 1, 1)
FEB = datetime.date(2026, 2, 1)


def run_to_end(target_date=JAN, **parameters):
    run = services.bill_run_create(target_date=target_date, enqueue=False, **parameters)
    return services.bill_run_execute(run_id=run.pk)


def failures(run):
    return list(
        run.failures.order_by("id").values_list("account__number", "subscription__number", "reason")
    )


def billed_accounts(run):
    return sorted(Document.objects.filter(bill_run=run).values_list("account__number", flat=True))


def charged_through(*charges):
    return [Charge.objects.get(pk=charge.pk).charged_through_date for charge in charges]


@pytest.mark.django_db
def test_an_account_without_a_bill_to_contact_fails_with_one_account_level_record():
    # given an account without contact whose subscription is also in a foreign currency
    account = AccountFactory(number="A00000001", bill_to_email="")
    charge = ChargeFactory(subscription__account=account)
    ChargeFactory(subscription__account=account, currency="EUR")
    ChargeFactory(subscription__account__number="A00000002")
    # when
    run = run_to_end()
    # then
    assert failures(run) == [("A00000001", None, "Bill-to contact is missing")]
    assert billed_accounts(run) == ["A00000002"]
    assert charged_through(charge) == [None]


@pytest.mark.django_db
def test_each_subscription_with_a_foreign_currency_charge_fails_on_its_own_and_names_both():
    # given
    account = AccountFactory(number="A00000001", currency="USD")
    in_euros = SubscriptionFactory(number="S00000001", account=account)
    mixed = SubscriptionFactory(number="S00000002", account=account)
    fine = SubscriptionFactory(number="S00000003", account=account)
    ChargeFactory(subscription=in_euros, currency="EUR")
    usd_of_mixed = ChargeFactory(subscription=mixed, currency="USD")
    ChargeFactory(subscription=mixed, currency="GBP")
    fine_charge = ChargeFactory(subscription=fine)
    fine_one_time = OneTimeChargeFactory(subscription=fine)
    # when
    run = run_to_end()
    # then
    assert failures(run) == [
        ("A00000001", "S00000001", "Charge currency EUR differs from account currency USD"),
        ("A00000001", "S00000002", "Charge currency GBP differs from account currency USD"),
    ]
    assert billed_accounts(run) == []
    assert charged_through(usd_of_mixed, fine_charge, fine_one_time) == [None, None, None]


@pytest.mark.django_db
def test_charged_through_dates_of_a_failing_account_stay_where_they_were():
    # given an account billed in January whose charge turns foreign in February
    account = AccountFactory(number="A00000001")
    charge = ChargeFactory(subscription__account=account)
    run_to_end(JAN)
    ChargeFactory(subscription=charge.subscription, currency="EUR")
    # when
    run = run_to_end(FEB)
    # then
    assert len(failures(run)) == 1
    assert charged_through(charge) == [FEB]


@pytest.mark.django_db
def test_an_exception_for_one_account_is_recorded_and_the_others_are_billed(monkeypatch):
    # given
    ChargeFactory(subscription__account__number="A00000001")
    broken = ChargeFactory(subscription__account__number="A00000002")
    ChargeFactory(subscription__account__number="A00000003")
    real = engine.bill_account

    def bill_account(account, *args, **kwargs):
        if account.id == broken.subscription.account_id:
            raise ValueError("tax service unavailable for A00000002")
        return real(account, *args, **kwargs)

    monkeypatch.setattr(engine, "bill_account", bill_account)
    # when
    run = run_to_end()
    # then
    assert failures(run) == [("A00000002", None, "tax service unavailable for A00000002")]
    assert billed_accounts(run) == ["A00000001", "A00000003"]
    assert charged_through(broken) == [None]
    assert run.status == RunStatus.COMPLETED


@pytest.mark.django_db
def test_an_exception_without_a_message_is_recorded_by_its_name(monkeypatch):
    # given
    ChargeFactory()

    def bill_account(*args, **kwargs):
        raise ZeroDivisionError

    monkeypatch.setattr(engine, "bill_account", bill_account)
    # when
    run = run_to_end()
    # then
    assert [reason for _, _, reason in failures(run)] == ["ZeroDivisionError"]


@pytest.mark.django_db
def test_a_run_with_failures_completes_flagged_and_counts_distinct_failed_accounts():
    # given one account with two failing subscriptions, one without contact, one fine
    account = AccountFactory(number="A00000001")
    ChargeFactory(subscription__account=account, currency="EUR")
    ChargeFactory(subscription__account=account, currency="GBP")
    AccountFactory(number="A00000002", bill_to_email="")
    ChargeFactory(subscription__account__number="A00000003")
    # when
    run = run_to_end()
    # then
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert run.has_errors is True
    assert run.failures.count() == 3
    assert run.accounts_failed == 2
    assert run.accounts_processed == 3
    assert (run.invoices_count, run.totals) == (1, {"USD": "100.00"})
    assert run.events.last().note == "with errors"


@pytest.mark.django_db
def test_a_run_without_failures_is_not_flagged():
    # given
    ChargeFactory()
    # when
    run = run_to_end()
    # then
    assert (run.has_errors, run.accounts_failed) == (False, 0)


@pytest.fixture
def already_billed_elsewhere():
    """A00000002's January period already sits on a live document the engine
    does not know about (its charged-through date was never advanced), so
    writing that account's items breaks the one-billed-item unique index."""
    charge = ChargeFactory(subscription__account__number="A00000002")
    document = Document.objects.create(
        document_type=DocumentType.INVOICE,
        number="INV99999999",
        account=charge.subscription.account,
        currency="USD",
        amount=Decimal("100.00"),
        balance=Decimal("100.00"),
        invoice_date=JAN,
        due_date=FEB,
    )
    DocumentItem.objects.create(
        document=document,
        charge=charge,
        subscription=charge.subscription,
        charge_name=charge.name,
        service_start=JAN,
        service_end=datetime.date(2026, 1, 31),
        amount=Decimal("100.00"),
    )
    return charge


@pytest.mark.django_db
def test_a_write_conflict_for_one_account_fails_only_that_account(already_billed_elsewhere):
    # given, in the same chunk: a fine account, the conflicting one, one without contact
    ChargeFactory(subscription__account__number="A00000001")
    ChargeFactory(subscription__account__number="A00000003")
    AccountFactory(number="A00000004", bill_to_email="")
    # when
    run = run_to_end()
    # then
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert run.chunks.count() == 1
    assert [(a, s) for a, s, _ in failures(run)] == [("A00000002", None), ("A00000004", None)]
    assert failures(run)[1][2] == "Bill-to contact is missing"
    assert billed_accounts(run) == ["A00000001", "A00000003"]
    assert DocumentItem.objects.filter(document__bill_run=run).count() == 2
    assert charged_through(already_billed_elsewhere) == [None]
    assert (run.accounts_processed, run.accounts_failed) == (4, 2)


@pytest.mark.django_db
def test_the_reason_of_a_write_conflict_is_the_database_message(already_billed_elsewhere):
    # given / when
    run = run_to_end()
    # then
    [(_, _, reason)] = failures(run)
    assert "one_billed_item_per_charge_period" in reason or "UNIQUE constraint failed" in reason


@pytest.mark.django_db
def test_failures_of_a_run_are_kept_apart_from_the_failures_of_another_run():
    # given
    AccountFactory(number="A00000001", bill_to_email="")
    first = run_to_end()
    # when
    second = run_to_end()
    # then
    assert (
        failures(first) == failures(second) == [("A00000001", None, "Bill-to contact is missing")]
    )
    assert second.accounts_failed == 1
