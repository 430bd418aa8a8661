"""`manage.py seed_demo [--accounts N]`: varied, deterministic demo customers,
with seats and usage, loaded through the importers, once."""

import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models import F, Q

from billruns.models import BillRun
from customers.models import (
    Account,
    AccountTaxCode,
    Charge,
    ChargePrice,
    Pricing,
    Subscription,
    SubscriptionChange,
    TaxRate,
    UsageRecord,
)
from customers.selectors import account_tax_codes
from invoices.models import Document, DocumentItem, TenantSettings
from tests.factories import AccountFactory
from tools.seed_demo import (
    DEMO_CHANGES_DATE,
    DEMO_FIRST_RUN_DATE,
    USAGE_END,
    demo_document,
    seed_demo_changes,
)


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
    assert seeded.splitlines()[0] == (
        f"imported 200 accounts, {Subscription.objects.count()} subscriptions, "
        f"{Charge.objects.count()} charges, {UsageRecord.objects.count()} usage records"
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
    call_command("billrun", "create", "--target-date", "2026-12-01", "--wait", stdout=io.StringIO())

    # then
    run = BillRun.objects.latest("id")
    reasons = list(run.failures.values_list("reason", flat=True))
    assert "Bill-to contact is missing" in reasons
    assert any("currency" in reason.lower() for reason in reasons)
    assert Account.objects.filter(documents__bill_run=run).exists()


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

    # then nothing is loaded, billed or changed: those are not the demo's accounts
    assert said == "demo data already present"
    assert Account.objects.count() == 1
    assert not BillRun.objects.exists()
    assert not SubscriptionChange.objects.exists()


def everything():
    return (
        list(Account.objects.values_list("number", "name").order_by("pk")),
        list(
            Charge.objects.values_list(
                "number", "quantity", "pricing", "end_date", "charged_through_date"
            ).order_by("pk")
        ),
        list(UsageRecord.objects.values_list("record_id", "charge", "quantity").order_by("pk")),
        Subscription.objects.count(),
        Pricing.objects.count(),
        list(BillRun.objects.values_list("number", "status").order_by("pk")),
        list(Document.objects.values_list("number", "status", "amount").order_by("pk")),
        list(SubscriptionChange.objects.values_list("pk", "change_type").order_by("pk")),
        list(ChargePrice.objects.values_list("pk", "amount", "quantity").order_by("pk")),
    )


def test_running_it_twice_seeds_once(seeded):
    before = everything()

    said = seed_demo()

    assert said == "demo data already present"
    assert everything() == before


def test_the_demo_is_the_same_every_time():
    assert demo_document(accounts=50, seed=7) == demo_document(accounts=50, seed=7)
    assert demo_document(accounts=50, seed=7) != demo_document(accounts=50, seed=8)


# --- seats and usage (issue 13) ---------------------------------------------------


def test_it_sells_seats_as_recurring_charges_with_quantities(seeded):
    seats = Charge.objects.filter(charge_type="recurring", quantity__gt=1)

    assert set(seats.values_list("name", flat=True)) == {"Team seats", "Extra seats"}
    assert not Charge.objects.filter(charge_type="recurring", quantity__lt=1).exists()


def tiers(pricing):
    return [
        (tier.up_to, tier.unit_price, tier.flat_fee)
        for tier in pricing.tiers.order_by("from_quantity")
    ]


def test_api_calls_are_rated_on_the_rules_graduated_tiers(seeded):
    calls = Charge.objects.filter(name="API calls")

    assert set(calls.values_list("charge_type", "unit", "period")) == {("usage", "calls", "month")}
    # The import writes each usage charge's pricing (a pricing is a value).
    pricings = Pricing.objects.filter(charges__in=calls).distinct()
    assert {pricing.model for pricing in pricings} == {"graduated"}
    for pricing in pricings:
        assert tiers(pricing) == [
            (Decimal(1000), Decimal(0), Decimal(0)),
            (Decimal(10000), Decimal("0.002"), Decimal("5.00")),
            (None, Decimal("0.001"), Decimal(0)),
        ]


def test_storage_is_rated_in_gb_on_volume_tiers(seeded):
    storage = Charge.objects.filter(name="Storage")

    assert set(storage.values_list("charge_type", "unit")) == {("usage", "GB")}
    pricings = Pricing.objects.filter(charges__in=storage).distinct()
    assert {pricing.model for pricing in pricings} == {"volume"}
    for pricing in pricings:
        assert [up_to for up_to, _, _ in tiers(pricing)] == [Decimal(100), Decimal(1000), None]


def test_it_records_a_few_thousand_usage_records_within_their_charges_service(seeded):
    records = UsageRecord.objects.all()

    assert 2000 <= records.count() <= 10000
    assert not records.filter(Q(date__lt=F("charge__start_date")) | Q(date__gte=USAGE_END)).exists()
    assert set(records.values_list("charge__subscription__status", flat=True)) == {"Active"}
    assert set(records.values_list("charge__subscription__account__status", flat=True)) == {
        "Active"
    }
    assert set(records.values_list("charge__name", flat=True)) == {"API calls", "Storage"}


def test_a_bill_run_over_the_demo_shows_quantities_and_rated_usage(seeded, superuser):
    # when
    call_command("billrun", "create", "--target-date", "2026-12-01", "--wait", stdout=io.StringIO())

    # then seats bill their quantity, and usage pieces their summed, rated quantity
    items = DocumentItem.objects.all()
    assert items.filter(charge_name="Team seats", quantity__gt=1).exists()
    calls = items.filter(charge_name="API calls")
    ratings = list(calls.values_list("rating", flat=True))
    assert any("× 0 +" in r and "+ 5.00 +" in r for r in ratings)  # into the third tier
    assert any(r.endswith("× 0 = 0.00") for r in ratings)  # within the free tier
    assert items.filter(charge_name="Storage", quantity__gt=0, rating__contains=" GB: ").exists()
    by_charge = {}
    for charge, date, quantity in UsageRecord.objects.values_list("charge", "date", "quantity"):
        by_charge.setdefault(charge, []).append((date, quantity))
    usage_items = items.filter(unit__in=["calls", "GB"])
    assert usage_items.filter(quantity__gt=0).count() > 100
    for item in usage_items:
        records = by_charge.get(item.charge_id, [])
        in_piece = [q for d, q in records if item.service_start <= d <= item.service_end]
        assert item.quantity == sum(in_piece, Decimal(0))


def test_it_has_vat_stacked_us_rates_exempt_accounts_and_untaxed_fees(seeded):
    rates = dict(TaxRate.objects.values_list("code", "rate"))
    assert rates == {"VAT20": Decimal("20"), "US-CA": Decimal("7.25"), "US-SF": Decimal("0.8625")}
    codes = account_tax_codes(Account.objects.values_list("id", flat=True))
    assert ["VAT20"] in codes.values()
    assert ["US-CA", "US-SF"] in codes.values()
    assert Account.objects.exclude(id__in=codes).exists()
    assert AccountTaxCode.objects.count() == sum(len(c) for c in codes.values())
    fees = Charge.objects.filter(name="Setup fee")
    assert fees.exists() and not fees.filter(taxable=True).exists()
    taxed_plan_beside_untaxed_fee = Charge.objects.filter(
        taxable=True, charge_type="recurring", subscription__charges__in=fees
    )
    assert taxed_plan_beside_untaxed_fee.exists()


# --- a first run and changes (issue 14) --------------------------------------------


def test_it_bills_and_posts_a_first_run_then_makes_each_kind_of_change(seeded):
    run = BillRun.objects.get()
    assert (run.status, run.target_date) == ("Posted", DEMO_FIRST_RUN_DATE)
    assert seeded.splitlines()[1].startswith(f"billed and posted {run.number} ")
    assert TenantSettings.current().advanced_ar_settlement
    changes = SubscriptionChange.objects.select_related("charge", "subscription")
    assert {c.effective_date for c in changes} == {DEMO_CHANGES_DATE}
    kinds = [c.change_type for c in changes]
    assert {"change_price", "remove_charge", "cancel_subscription"} <= set(kinds)
    prices = ChargePrice.objects.filter(effective_date=DEMO_CHANGES_DATE).select_related("charge")
    # an upgrade: the plan's amount raised, and a seat reduction: fewer seats
    assert any(p.charge.name.endswith("plan") and p.amount > p.charge.amount for p in prices)
    assert any(p.charge.name == "Team seats" and p.quantity < p.charge.quantity for p in prices)
    canceled = changes.get(change_type="cancel_subscription").subscription
    assert (canceled.status, canceled.cancel_date) == ("Canceled", DEMO_CHANGES_DATE)
    # every change reaches into what the first run billed
    for change in changes:
        charges = [change.charge] if change.charge else list(canceled.charges.all())
        assert any(
            c.charged_through_date and c.charged_through_date > DEMO_CHANGES_DATE for c in charges
        )


def test_the_next_run_over_the_demo_makes_adjustments_and_a_credit_memo(seeded, superuser):
    first = BillRun.objects.get()
    changed = set(
        SubscriptionChange.objects.exclude(charge=None).values_list("charge_id", flat=True)
    )
    canceled = SubscriptionChange.objects.get(change_type="cancel_subscription").subscription

    # when
    call_command("billrun", "create", "--target-date", "2026-12-02", "--wait", stdout=io.StringIO())

    # then every changed charge gets an adjustment of what the first run billed
    # past the change, and the new pieces at the new terms
    run = BillRun.objects.latest("id")
    adjustments = DocumentItem.objects.filter(document__bill_run=run, kind="adjustment")
    assert changed <= set(adjustments.values_list("charge_id", flat=True))
    for adjustment in adjustments.select_related("adjusts__document"):
        corrected = adjustment.adjusts
        assert corrected.document.bill_run_id == first.pk
        assert corrected.service_start <= DEMO_CHANGES_DATE <= corrected.service_end
        assert adjustment.service_start == DEMO_CHANGES_DATE
        assert adjustment.service_end == corrected.service_end
        assert adjustment.amount < 0  # each change lowers what was billed after it...
    upgraded = ChargePrice.objects.filter(amount__gt=F("charge__amount")).values("charge_id")
    rebilled = DocumentItem.objects.filter(
        document__bill_run=run, kind="charge", charge_id__in=upgraded
    )
    assert rebilled.filter(service_start=DEMO_CHANGES_DATE).exists()  # ...and an upgrade rebills
    # the cancellation credits what was billed in advance: a credit memo
    memo = Document.objects.get(bill_run=run, account=canceled.account)
    assert memo.document_type == "credit_memo"
    assert memo.amount > 0
    assert set(memo.items.values_list("kind", flat=True)) == {"adjustment"}
    assert sum(memo.items.values_list("amount", flat=True)) == -memo.amount


def test_taking_the_changes_up_again_changes_nothing_once_made(seeded):
    before = everything()

    assert seed_demo_changes(fresh=True) is None
    assert seed_demo_changes(fresh=False) is None
    assert everything() == before


@pytest.mark.django_db
def test_a_demo_left_after_its_first_run_gets_its_changes_on_the_next_seed(monkeypatch):
    # given a seed stopped after posting its first run (no change made yet)
    def stopped(**kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr("tools.seed_demo.changes_apply", stopped)
        with pytest.raises(KeyboardInterrupt):
            seed_demo("--accounts", "60")
    assert not SubscriptionChange.objects.exists()
    runs = list(BillRun.objects.values_list("number", "status"))
    assert runs == [(runs[0][0], "Posted")]

    # when
    said = seed_demo()

    # then the same run, and the changes made once
    assert said.splitlines()[0] == "demo data already present"
    assert said.splitlines()[1].startswith(f"billed and posted {runs[0][0]} ")
    assert list(BillRun.objects.values_list("number", "status")) == runs
    assert SubscriptionChange.objects.filter(change_type="cancel_subscription").count() == 1
