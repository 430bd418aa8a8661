"""`manage.py seed_demo [--accounts N]`: varied, deterministic demo customers,
loaded through the importer, once."""

import io

import pytest
from django.core.management import call_command
from django.db.models import F

from billruns.models import BillRunFailure
from customers.management.commands.seed_demo import demo_document
from customers.models import Account, Charge, Subscription
from tests.factories import AccountFactory


def seed_demo(*argv):
    out = io.StringIO()
    call_command("seed_demo", *argv, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


@pytest.fixture
def seeded(db):
    return seed_demo()


def test_it_seeds_200_accounts_by_default_and_says_what_it_imported(seeded):
    accounts = Account.objects.count()
    assert accounts == 200
    assert seeded == (
        f"imported 200 accounts, {Subscription.objects.count()} subscriptions, "
        f"{Charge.objects.count()} charges"
    )


def test_it_uses_several_currencies(seeded):
    currencies = set(Account.objects.values_list("currency", flat=True))

    assert currencies == {"USD", "EUR", "GBP", "CAD", "AUD"}


def test_it_includes_month_end_and_first_of_month_bill_cycle_days(seeded):
    days = set(Account.objects.values_list("bill_cycle_day", flat=True))

    assert {1, 29, 30, 31} <= days


def test_it_spreads_accounts_over_batches_1_to_5(seeded):
    batches = set(Account.objects.values_list("batch", flat=True))

    assert batches == {1, 2, 3, 4, 5}


def test_it_has_every_billing_period(seeded):
    periods = set(Charge.objects.filter(charge_type="recurring").values_list("period", flat=True))

    assert periods == {"month", "quarter", "semi_annual", "annual"}


def test_it_has_credits_fees_and_charges_that_end(seeded):
    assert Charge.objects.filter(charge_type="recurring", amount__lt=0).exists()
    assert Charge.objects.filter(charge_type="one_time", amount__lt=0).exists()
    assert Charge.objects.filter(charge_type="one_time", amount__gt=0).exists()
    assert Charge.objects.filter(end_date__isnull=False).exists()


def test_it_has_canceled_accounts_and_subscriptions(seeded):
    assert Account.objects.filter(status="Canceled").exists()
    assert Subscription.objects.filter(status="Canceled").exists()


def test_it_has_active_accounts_that_fail_for_each_documented_reason(seeded):
    active = Account.objects.filter(status="Active")

    assert active.filter(bill_to_email="").exists()
    assert (
        Charge.objects.filter(subscription__status="Active", subscription__account__status="Active")
        .exclude(currency=F("subscription__account__currency"))
        .exclude(subscription__account__bill_to_email="")
        .exists()
    )


def test_a_bill_run_over_the_demo_fails_those_accounts_and_bills_the_rest(seeded, superuser):
    # when
    call_command("billrun", "create", "--target-date", "2026-07-01", "--wait", stdout=io.StringIO())

    # then
    reasons = list(BillRunFailure.objects.values_list("reason", flat=True))
    assert "Bill-to contact is missing" in reasons
    assert any("currency" in reason.lower() for reason in reasons)
    assert Account.objects.filter(documents__isnull=False).exists()


@pytest.mark.django_db
def test_it_makes_as_many_accounts_as_asked():
    seed_demo("--accounts", "12")

    assert Account.objects.count() == 12


@pytest.mark.django_db
def test_it_does_nothing_when_accounts_exist():
    # given
    AccountFactory()

    # when
    said = seed_demo()

    # then
    assert said == "demo data already present"
    assert Account.objects.count() == 1


def test_running_it_twice_seeds_once(seeded):
    before = (Account.objects.count(), Subscription.objects.count(), Charge.objects.count())

    said = seed_demo()

    assert said == "demo data already present"
    assert (Account.objects.count(), Subscription.objects.count(), Charge.objects.count()) == (
        before
    )


def test_the_demo_is_the_same_every_time():
    assert demo_document(accounts=50, seed=7) == demo_document(accounts=50, seed=7)
    assert demo_document(accounts=50, seed=7) != demo_document(accounts=50, seed=8)
