"""One account's failure never stops the run (BILLING_RULES.md, "Failures"):
the account is recorded with its reason, nothing of it changes, the other
accounts are billed, and the run ends Completed with errors."""

import datetime
import logging
import os
import re
import subprocess
import sys
from decimal import Decimal

import pytest

from billruns import engine, services
from billruns.models import RunStatus
from customers.models import Account, Charge
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
    [(account, subscription, reason)] = failures(run)
    assert (account, subscription) == ("A00000002", None)
    assert re.fullmatch(
        r"Unexpected error while billing this account: tax service unavailable for A00000002 "
        r"\(logged as error [0-9a-f]{8}\)",
        reason,
    )
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
    [(_, _, reason)] = failures(run)
    assert reason.startswith("Unexpected error while billing this account: ZeroDivisionError ")


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
    assert "one_live_charge_item_per_start" in reason or "UNIQUE constraint failed" in reason


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


# --- computation errors fail their account alone, with a reason for the clerk ---


def run_with_dates(target_date, invoice_date):
    """A run with dates past what a new run accepts (INTERFACES.md bounds
    them): the engine must still isolate the accounts they break."""
    run = services.bill_run_create(target_date=JAN, enqueue=False)
    type(run).objects.filter(pk=run.pk).update(target_date=target_date, invoice_date=invoice_date)
    return services.bill_run_execute(run_id=run.pk)


@pytest.mark.django_db
def test_a_due_date_past_the_end_of_the_calendar_fails_that_account_alone():
    # given two accounts in one chunk, one whose payment term ends past 9999-12-31
    short = ChargeFactory(subscription__account__number="A00000001")
    short.subscription.account.__class__.objects.filter(pk=short.subscription.account_id).update(
        payment_term_days=10
    )
    overflowing = ChargeFactory(subscription__account__number="A00000002")
    # when they are billed with an invoice date of 9999-12-15
    run = run_with_dates(JAN, datetime.date(9999, 12, 15))
    # then that account fails with the reason, and the other is billed
    assert run.status == RunStatus.COMPLETED
    assert failures(run) == [
        (
            "A00000002",
            None,
            "Could not compute the due date: invoice date 9999-12-15 plus the payment term "
            "of 30 days is past the end of the calendar (date value out of range)",
        )
    ]
    assert billed_accounts(run) == ["A00000001"]
    assert Document.objects.get(bill_run=run).due_date == datetime.date(9999, 12, 25)
    assert charged_through(overflowing) == [None]


@pytest.mark.django_db
def test_service_periods_past_the_end_of_the_calendar_fail_that_account_alone():
    # given an account whose monthly charge would need a period ending in year 10000,
    # and another with a one-time charge
    late = ChargeFactory(
        subscription__account__number="A00000001", start_date=datetime.date(9999, 11, 15)
    )
    OneTimeChargeFactory(subscription__account__number="A00000002")
    # when a run reaches 9999-12-31
    run = run_with_dates(
        datetime.date(9999, 12, 31), datetime.date(9999, 12, 31) - (datetime.timedelta(days=60))
    )
    # then
    assert failures(run) == [
        (
            "A00000001",
            None,
            "Could not compute the service periods of charge Plan: year 10000 is out of range",
        )
    ]
    assert billed_accounts(run) == ["A00000002"]
    assert charged_through(late) == [None]


@pytest.mark.django_db
def test_failures_log_one_line_per_chunk_and_one_traceback_per_unexpected_cause(
    monkeypatch, caplog
):
    # given one chunk of five accounts: two without contact, three raising the same bug
    for number in range(1, 6):
        AccountFactory(number=f"A{number:08d}", bill_to_email="" if number <= 2 else "a@b.c")
        ChargeFactory(subscription__account=Account.objects.get(number=f"A{number:08d}"))
    real = engine.bill_account

    def bill_account(account, *args, **kwargs):
        if account.number >= "A00000003":
            raise KeyError(f"rate {account.id}")
        return real(account, *args, **kwargs)

    monkeypatch.setattr(engine, "bill_account", bill_account)
    # when
    with caplog.at_level(logging.INFO, logger="billruns"):
        run = run_to_end()
    # then every failure is recorded, the three unexpected ones naming one log entry
    reasons = [reason for _, _, reason in failures(run)]
    assert reasons[:2] == ["Bill-to contact is missing"] * 2
    refs = {re.search(r"logged as error (\w+)", reason).group(1) for reason in reasons[2:]}
    assert len(reasons) == 5 and len(refs) == 1
    # and the log has one traceback and one summary line
    records = [r for r in caplog.records if r.name.startswith("billruns")]
    assert [(r.levelname, r.exc_info is not None) for r in records] == [
        ("ERROR", True),
        ("INFO", False),
    ]
    ref = refs.pop()
    assert ref in records[0].getMessage()
    assert records[1].getMessage() == (
        f"bill run {run.number}, chunk 1: 5 of 5 accounts failed: 3 × Unexpected error while "
        f"billing this account (logged as error {ref}); 2 × Bill-to contact is missing"
    )


def test_library_chatter_is_kept_out_of_the_log():
    # WeasyPrint logs every step of every PDF at INFO, fontTools its font
    # subsetting, django-q two lines per task (the tests' settings log nothing:
    # ask a process with the real ones)
    names = ["weasyprint.progress", "fontTools.subset", "django-q", "billruns.generation"]
    check = (
        "import django, logging; django.setup(); "
        f"print([logging.getLogger(name).isEnabledFor(logging.INFO) for name in {names!r}])"
    )
    out = subprocess.run(
        [sys.executable, "-c", check],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "billing_site.settings", "DEBUG": "1"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "[False, False, False, True]"
