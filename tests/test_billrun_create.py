"""Creating a bill run: parameters are checked before anything is written, a
double submit makes one run, and the selection bills exactly what it names
(BILLING_RULES.md, "Selecting accounts")."""

import datetime
from decimal import Decimal

import pytest

from billruns.models import BillRun, BillRunEvent, RunStatus
from billruns.services import InvalidRunParameters, bill_run_create, bill_run_execute
from customers.models import Status
from invoices.models import Document, DocumentItem, TenantSettings
from tests.factories import AccountFactory, ChargeFactory, OneTimeChargeFactory, SubscriptionFactory

TARGET = datetime.date(2026, 1, 1)


def billed(run):
    """{account number: [(subscription number, charge name, start, end, amount)]}"""
    documents = {}
    for item in DocumentItem.objects.filter(document__bill_run=run).select_related(
        "document__account", "subscription"
    ):
        documents.setdefault(item.document.account.number, []).append(
            (
                item.subscription.number,
                item.charge_name,
                item.service_start,
                item.service_end,
                item.amount,
            )
        )
    return {number: sorted(items) for number, items in documents.items()}


def run_to_end(**parameters):
    run = bill_run_create(target_date=TARGET, enqueue=False, **parameters)
    return bill_run_execute(run_id=run.pk)


def assert_refused(expected_message, **parameters):
    with pytest.raises(InvalidRunParameters) as refused:
        bill_run_create(**{"target_date": TARGET, "enqueue": False, **parameters})
    assert expected_message in str(refused.value)
    assert not BillRun.objects.exists()
    assert not BillRunEvent.objects.exists()
    return refused.value


# --- refused parameters ------------------------------------------------------


@pytest.mark.django_db
def test_an_unknown_account_is_refused():
    # given / when / then
    error = assert_refused("No account has the number 'A99999999'", account="A99999999")
    assert set(error.errors) == {"account"}


@pytest.mark.django_db
def test_a_subscription_of_another_account_is_refused():
    # given
    account = AccountFactory(number="A00000001")
    other = SubscriptionFactory(number="S00000002", account=AccountFactory(number="A00000002"))
    # when / then
    assert_refused(
        "Subscription S00000002 belongs to account A00000002, not to A00000001",
        account=account.number,
        subscriptions=[other.number],
    )


@pytest.mark.django_db
def test_a_subscription_without_its_account_is_refused():
    # given
    subscription = SubscriptionFactory()
    # when / then
    assert_refused(
        "Subscriptions can be chosen only together with their account",
        subscriptions=[subscription.number],
    )


@pytest.mark.django_db
def test_an_unknown_subscription_is_refused():
    # given
    account = AccountFactory()
    # when / then
    assert_refused(
        "No subscription has the number 'S99999999'",
        account=account.number,
        subscriptions=["S99999999"],
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "selection", [{"batches": [1]}, {"bill_cycle_days": [1]}], ids=["batches", "bcd"]
)
def test_an_account_together_with_batches_or_bill_cycle_days_is_refused(selection):
    # given
    account = AccountFactory()
    # when / then
    assert_refused(
        "Select either one account or batches and bill cycle days, not both",
        account=account.number,
        **selection,
    )


@pytest.mark.django_db
@pytest.mark.parametrize("day", [0, 32])
def test_a_bill_cycle_day_outside_1_to_31_is_refused(day):
    # given / when / then
    error = assert_refused(
        f"A bill cycle day must be between 1 and 31, not {day}", bill_cycle_days=[day]
    )
    assert set(error.errors) == {"bill_cycle_days"}


@pytest.mark.django_db
@pytest.mark.parametrize("batch", [0, 51])
def test_a_batch_outside_1_to_50_is_refused(batch):
    # given / when / then
    error = assert_refused(f"A batch must be between 1 and 50, not {batch}", batches=[batch])
    assert set(error.errors) == {"batches"}


@pytest.mark.django_db
def test_a_batch_that_is_not_a_number_is_refused():
    # given / when / then
    assert_refused("'one' is not a whole number", batches=["one"])


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["2026-13-01", "next monday", "2026/02/01"])
def test_a_malformed_target_date_is_refused(value):
    # given / when / then
    error = assert_refused(f"{value!r} is not a date (expected YYYY-MM-DD)", target_date=value)
    assert set(error.errors) == {"target_date"}


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["2026-02-30", "tomorrow"])
def test_a_malformed_invoice_date_is_refused(value):
    # given / when / then
    error = assert_refused(f"{value!r} is not a date (expected YYYY-MM-DD)", invoice_date=value)
    assert set(error.errors) == {"invoice_date"}


@pytest.mark.django_db
def test_a_canceled_account_is_refused():
    # given
    account = AccountFactory(number="A00000007", status=Status.CANCELED)
    # when / then
    assert_refused(
        "Account A00000007 is Canceled; only Active accounts are billed",
        account=account.number,
    )


@pytest.mark.django_db
def test_a_canceled_subscription_is_refused():
    # given
    subscription = SubscriptionFactory(number="S00000007", status=Status.CANCELED)
    # when / then
    assert_refused(
        "Subscription S00000007 is Canceled; only Active subscriptions are billed",
        account=subscription.account.number,
        subscriptions=[subscription.number],
    )


@pytest.mark.django_db
def test_every_problem_is_reported_at_once():
    # given / when
    error = assert_refused(
        "target_date: 'x' is not a date",
        target_date="x",
        invoice_date="y",
        batches=[0],
        bill_cycle_days=[32],
    )
    # then
    assert set(error.errors) == {"target_date", "invoice_date", "batches", "bill_cycle_days"}


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["tax", "Usage", "", None, 3])
def test_an_unknown_charge_type_to_exclude_is_refused_naming_the_allowed_ones(value):
    # given / when / then
    error = assert_refused(
        f"exclude_charge_types: {value!r} is not a charge type; "
        "the charge types are one_time, recurring, usage.",
        exclude_charge_types=["usage", value],
    )
    assert set(error.errors) == {"exclude_charge_types"}


@pytest.mark.django_db
def test_a_lone_charge_type_string_is_refused_not_read_letter_by_letter():
    # given / when / then
    assert_refused(
        "Give a list of charge types (one_time, recurring, usage), not 'usage'.",
        exclude_charge_types="usage",
    )


@pytest.mark.django_db
def test_the_charge_types_to_exclude_are_stored_sorted_and_once():
    # given / when
    run = bill_run_create(
        target_date=TARGET,
        exclude_charge_types=["usage", "recurring", " usage ", "one_time"],
        enqueue=False,
    )
    # then
    run.refresh_from_db()
    assert run.exclude_charge_types == ["one_time", "recurring", "usage"]


@pytest.mark.django_db
def test_a_new_run_excludes_no_charge_type_by_default():
    # given / when
    run = bill_run_create(target_date=TARGET, enqueue=False)
    # then
    run.refresh_from_db()
    assert run.exclude_charge_types == []


@pytest.mark.django_db
def test_an_excluded_charge_type_is_not_billed_and_stays_due():
    # given
    subscription = SubscriptionFactory(number="S00000001")
    ChargeFactory(subscription=subscription, name="Plan")
    setup = OneTimeChargeFactory(subscription=subscription, name="Setup fee")
    # when
    first = run_to_end(exclude_charge_types=["one_time"])
    # then
    assert [name for _, name, *_ in billed(first)[subscription.account.number]] == ["Plan"]
    setup.refresh_from_db()
    assert setup.charged_through_date is None
    assert [name for _, name, *_ in billed(run_to_end())[subscription.account.number]] == [
        "Setup fee"
    ]


# --- double submit and defaults ---------------------------------------------


@pytest.mark.django_db
def test_a_double_submit_with_the_same_request_key_returns_the_same_run():
    # given
    first = bill_run_create(target_date=TARGET, request_key="form-123", enqueue=False)
    # when
    second = bill_run_create(target_date=TARGET, request_key="form-123", enqueue=False)
    # then
    assert second.pk == first.pk
    assert BillRun.objects.count() == 1
    assert BillRunEvent.objects.count() == 1


@pytest.mark.django_db
def test_a_double_submit_returns_the_first_run_with_its_excluded_charge_types():
    # given
    first = bill_run_create(
        target_date=TARGET, exclude_charge_types=["usage"], request_key="form-9", enqueue=False
    )
    # when: the same key again, whatever it says, is the same request
    second = bill_run_create(
        target_date=TARGET, exclude_charge_types=["tax"], request_key="form-9", enqueue=False
    )
    # then
    assert second.pk == first.pk
    assert second.exclude_charge_types == ["usage"]
    assert BillRun.objects.count() == 1


@pytest.mark.django_db
def test_different_request_keys_make_different_runs():
    # given
    first = bill_run_create(target_date=TARGET, request_key="form-1", enqueue=False)
    # when
    second = bill_run_create(target_date=TARGET, request_key="form-2", enqueue=False)
    # then
    assert second.pk != first.pk
    assert second.number != first.number


@pytest.mark.django_db
def test_a_new_run_is_pending_with_the_invoice_date_defaulting_to_the_target_date(clerk):
    # given / when
    run = bill_run_create(target_date="2026-02-01", created_by=clerk, enqueue=False)
    # then
    run.refresh_from_db()
    assert run.status == RunStatus.PENDING
    assert run.target_date == datetime.date(2026, 2, 1)
    assert run.invoice_date == datetime.date(2026, 2, 1)
    assert run.number.startswith("BR-") and len(run.number) == 11
    assert (run.batches, run.bill_cycle_days, run.account_id) == ([], [], None)
    assert (run.auto_post, run.retry_of_id, run.created_by) == (False, None, clerk)
    [event] = run.events.all()
    assert (event.from_status, event.to_status, event.user) == ("", RunStatus.PENDING, clerk)


@pytest.mark.django_db
def test_an_invoice_date_given_is_used_for_the_documents_and_their_due_dates():
    # given
    ChargeFactory(subscription__account__payment_term_days=15)
    # when
    run = run_to_end(invoice_date="2026-01-05")
    # then
    [document] = Document.objects.filter(bill_run=run)
    assert run.invoice_date == datetime.date(2026, 1, 5)
    assert document.invoice_date == datetime.date(2026, 1, 5)
    assert document.due_date == datetime.date(2026, 1, 20)


# --- selection ---------------------------------------------------------------


@pytest.mark.django_db
def test_selecting_batches_bills_exactly_the_accounts_of_those_batches():
    # given
    for batch in (1, 2, 3):
        ChargeFactory(
            subscription__account__number=f"A0000000{batch}",
            subscription__account__batch=batch,
        )
    # when
    run = run_to_end(batches=[1, 3])
    # then
    assert set(billed(run)) == {"A00000001", "A00000003"}
    assert run.accounts_processed == 2


@pytest.mark.django_db
def test_selecting_bill_cycle_days_bills_exactly_the_accounts_with_those_days():
    # given
    for day in (1, 15, 31):
        ChargeFactory(
            subscription__account__number=f"A000000{day:02d}",
            subscription__account__bill_cycle_day=day,
            start_date=datetime.date(2025, 12, 1),
        )
    # when
    run = run_to_end(bill_cycle_days=[15])
    # then
    assert set(billed(run)) == {"A00000015"}
    assert run.accounts_processed == 1


@pytest.mark.django_db
def test_all_batches_and_all_days_bill_every_active_account_only():
    # given
    ChargeFactory(subscription__account__number="A00000001")
    ChargeFactory(subscription__account__number="A00000002", subscription__account__batch=50)
    ChargeFactory(
        subscription__account__number="A00000003", subscription__account__status=Status.CANCELED
    )
    # when
    run = run_to_end()
    # then
    assert set(billed(run)) == {"A00000001", "A00000002"}
    assert run.accounts_processed == 2


@pytest.mark.django_db
def test_selecting_an_account_and_some_subscriptions_bills_exactly_those_subscriptions():
    # given
    account = AccountFactory(number="A00000001")
    chosen = SubscriptionFactory(number="S00000001", account=account)
    also_chosen = SubscriptionFactory(number="S00000002", account=account)
    left_out = SubscriptionFactory(number="S00000003", account=account)
    ChargeFactory(subscription=chosen, name="Plan")
    OneTimeChargeFactory(subscription=also_chosen, name="Setup fee")
    left_out_charge = ChargeFactory(subscription=left_out, name="Other plan")
    ChargeFactory(subscription__account__number="A00000002")
    # when
    run = run_to_end(account="A00000001", subscriptions=["S00000001", "S00000002"])
    # then
    jan1, jan31 = datetime.date(2026, 1, 1), datetime.date(2026, 1, 31)
    assert billed(run) == {
        "A00000001": [
            ("S00000001", "Plan", jan1, jan31, Decimal("100.00")),
            ("S00000002", "Setup fee", jan1, jan1, Decimal("50.00")),
        ]
    }
    assert Document.objects.filter(bill_run=run).count() == 1
    left_out_charge.refresh_from_db()
    assert left_out_charge.charged_through_date is None


@pytest.mark.django_db
def test_selecting_an_account_alone_bills_all_its_subscriptions():
    # given
    account = AccountFactory(number="A00000001")
    ChargeFactory(subscription__account=account, subscription__number="S00000001")
    ChargeFactory(subscription__account=account, subscription__number="S00000002")
    ChargeFactory(subscription__account__number="A00000002")
    # when
    run = run_to_end(account=account)
    # then
    assert set(billed(run)) == {"A00000001"}
    assert {item[0] for item in billed(run)["A00000001"]} == {"S00000001", "S00000002"}


# --- what a run makes for each selected account ------------------------------


def documents_of(run):
    return sorted(
        Document.objects.filter(bill_run=run).values_list(
            "account__number", "document_type", "amount", "status"
        )
    )


@pytest.mark.django_db
def test_an_account_with_nothing_due_gets_no_document_but_counts_as_processed():
    # given
    ChargeFactory(subscription__account__number="A00000001", start_date=datetime.date(2026, 3, 1))
    AccountFactory(number="A00000002")
    # when
    run = run_to_end()
    # then
    assert documents_of(run) == []
    assert (run.accounts_processed, run.invoices_count, run.totals) == (2, 0, {})


@pytest.mark.django_db
def test_a_zero_total_makes_a_zero_invoice():
    # given
    charge = ChargeFactory(subscription__account__number="A00000001")
    ChargeFactory(subscription=charge.subscription, amount=Decimal("-100.00"))
    # when
    run = run_to_end()
    # then
    assert documents_of(run) == [("A00000001", "invoice", Decimal("0.00"), "Draft")]
    assert run.totals == {"USD": "0.00"}


@pytest.mark.django_db
def test_a_negative_total_makes_a_negative_invoice_without_advanced_ar_settlement():
    # given
    ChargeFactory(subscription__account__number="A00000001", amount=Decimal("-40.00"))
    # when
    run = run_to_end()
    # then
    assert documents_of(run) == [("A00000001", "invoice", Decimal("-40.00"), "Draft")]
    assert (run.invoices_count, run.credit_memos_count, run.totals) == (1, 0, {"USD": "-40.00"})


@pytest.mark.django_db
def test_a_negative_total_makes_a_credit_memo_with_advanced_ar_settlement():
    # given
    TenantSettings.objects.update_or_create(id=1, defaults={"advanced_ar_settlement": True})
    ChargeFactory(subscription__account__number="A00000001", amount=Decimal("-40.00"))
    # when
    run = run_to_end()
    # then
    [memo] = Document.objects.filter(bill_run=run)
    assert memo.number.startswith("CM")
    assert documents_of(run) == [("A00000001", "credit_memo", Decimal("40.00"), "Draft")]
    assert (run.invoices_count, run.credit_memos_count, run.totals) == (0, 1, {"USD": "-40.00"})
