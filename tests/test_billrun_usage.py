"""Bill runs over quantities and usage charges (BILLING_RULES.md, Service
periods and Usage charges; issue 13): in arrears, summed per piece, rated
once, and explained on the item."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billruns.services import bill_run_cancel, bill_run_create, bill_run_execute
from customers.models import Charge, ChargeType
from customers.pricing import Tier
from customers.services import pricing_create
from invoices.models import DocumentItem
from tests.factories import (
    AccountFactory,
    ChargeFactory,
    OneTimeChargeFactory,
    SubscriptionFactory,
    UsageChargeFactory,
    UsageRecordFactory,
)

D = datetime.date


def graduated():
    """The rules' example tiers."""
    return pricing_create(
        model="graduated",
        tiers=[
            Tier(Decimal("1000"), Decimal("0")),
            Tier(Decimal("10000"), Decimal("0.002"), Decimal("5.00")),
            Tier(None, Decimal("0.001")),
        ],
    )


def run(target, *, exclude=()):
    bill_run = bill_run_create(target_date=target, enqueue=False)
    if exclude:
        bill_run.exclude_charge_types = sorted(exclude)
        bill_run.save(update_fields=["exclude_charge_types"])
    return bill_run_execute(run_id=bill_run.pk)


def items(bill_run):
    """[(charge name, start, last day, quantity, amount, rating)] of a run."""
    return [
        (i.charge_name, i.service_start, i.service_end, i.quantity, i.amount, i.rating)
        for i in DocumentItem.objects.filter(document__bill_run=bill_run).order_by(
            "charge_id", "service_start"
        )
    ]


def usage_charge(*, start=None, bill_cycle_day=1, pricing=None, **kwargs):
    account = AccountFactory(bill_cycle_day=bill_cycle_day)
    subscription = SubscriptionFactory(account=account)
    return UsageChargeFactory(
        subscription=subscription,
        start_date=start or D(2026, 1, 1),
        pricing=pricing or graduated(),
        **kwargs,
    )


def record(charge, day, quantity):
    return UsageRecordFactory(charge=charge, date=day, quantity=Decimal(quantity))


@pytest.mark.django_db
def test_the_rules_example_bills_25_50_and_explains_it():
    charge = usage_charge()
    record(charge, D(2026, 1, 3), "12000")
    record(charge, D(2026, 1, 31), "500")
    record(charge, D(2026, 2, 1), "7")  # the next piece's

    assert items(run(D(2026, 2, 1))) == [
        (
            "API calls",
            D(2026, 1, 1),
            D(2026, 1, 31),
            Decimal("12500"),
            Decimal("25.50"),
            "12,500 calls: 1,000 × 0 + 9,000 × 0.002 + 5.00 + 2,500 × 0.001 = 25.50",
        )
    ]
    charge.refresh_from_db()
    assert charge.charged_through_date == D(2026, 2, 1)
    item = DocumentItem.objects.get()
    assert (item.unit, item.unit_price) == ("calls", None)


@pytest.mark.django_db
def test_the_same_tiers_as_volume_bill_12_50():
    tiers = graduated().tiers.all()
    volume = pricing_create(
        model="volume", tiers=[Tier(t.up_to, t.unit_price, t.flat_fee) for t in tiers]
    )
    charge = usage_charge(pricing=volume)
    record(charge, D(2026, 1, 9), "12500")

    [(_, _, _, quantity, amount, rating)] = items(run(D(2026, 2, 1)))
    assert (quantity, amount) == (Decimal("12500"), Decimal("12.50"))
    assert rating == "12,500 calls: 12,500 × 0.001 = 12.50"


@pytest.mark.django_db
def test_usage_is_billed_in_arrears_only_once_its_piece_has_ended():
    charge = usage_charge()
    record(charge, D(2026, 1, 3), "10")

    assert items(run(D(2026, 1, 31))) == []  # [2026-01-01, 2026-02-01) has not ended
    charge.refresh_from_db()
    assert charge.charged_through_date is None
    assert len(items(run(D(2026, 2, 1)))) == 1


@pytest.mark.django_db
def test_a_piece_without_usage_bills_zero_with_quantity_zero():
    charge = usage_charge()
    record(charge, D(2026, 2, 14), "3")

    assert items(run(D(2026, 3, 1))) == [
        ("API calls", D(2026, 1, 1), D(2026, 1, 31), Decimal(0), Decimal("0.00"), "0 calls = 0.00"),
        (
            "API calls",
            D(2026, 2, 1),
            D(2026, 2, 28),
            Decimal(3),
            Decimal("0.00"),
            "3 calls: 3 × 0 = 0.00",
        ),
    ]


@pytest.mark.django_db
def test_a_first_cut_piece_is_rated_on_its_own_quantity_without_proration():
    charge = usage_charge(
        start=D(2026, 1, 20),
        bill_cycle_day=1,
        pricing=pricing_create(model="per_unit", tiers=[Tier(None, Decimal("0.5"))]),
    )
    record(charge, D(2026, 1, 20), "3")
    record(charge, D(2026, 1, 31), "1")

    [(_, start, last, quantity, amount, _)] = items(run(D(2026, 2, 1)))
    assert (start, last, quantity, amount) == (D(2026, 1, 20), D(2026, 1, 31), 4, Decimal("2.00"))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("bill_cycle_day", "year", "february"),
    [
        (29, 2026, (D(2026, 1, 29), D(2026, 2, 28))),
        (30, 2026, (D(2026, 1, 30), D(2026, 2, 28))),
        (31, 2026, (D(2026, 1, 31), D(2026, 2, 28))),
        (29, 2028, (D(2028, 1, 29), D(2028, 2, 29))),
        (31, 2028, (D(2028, 1, 31), D(2028, 2, 29))),
    ],
)
def test_usage_pieces_at_bill_cycle_days_29_to_31_and_in_leap_years(bill_cycle_day, year, february):
    """The pieces end on February's last day when the BCD is past it, and
    each record falls in exactly one piece."""
    start, end = february
    charge = usage_charge(start=start, bill_cycle_day=bill_cycle_day)
    record(charge, start, "1")
    record(charge, end - datetime.timedelta(days=1), "2")  # the piece's last day
    record(charge, end, "1000")  # the next piece's first day

    billed = items(run(end))
    assert [(s, last, q) for _, s, last, q, _, _ in billed] == [
        (start, end - datetime.timedelta(days=1), Decimal(3))
    ]


@pytest.mark.django_db
def test_several_due_pieces_are_caught_up_each_with_its_own_quantity():
    charge = usage_charge(period="quarter", start=D(2026, 1, 1))
    record(charge, D(2026, 3, 31), "1500")
    record(charge, D(2026, 4, 1), "20000")

    billed = items(run(D(2026, 7, 15)))
    assert [(s, last, q, a) for _, s, last, q, a, _ in billed] == [
        (D(2026, 1, 1), D(2026, 3, 31), Decimal(1500), Decimal("6.00")),
        (D(2026, 4, 1), D(2026, 6, 30), Decimal(20000), Decimal("33.00")),
    ]


@pytest.mark.django_db
def test_fractional_usage_is_summed_exactly_and_rounded_once():
    charge = usage_charge(
        pricing=pricing_create(model="per_unit", tiers=[Tier(None, Decimal("0.000001"))])
    )
    for day in range(1, 11):
        record(charge, D(2026, 1, day), "0.100001")

    [(_, _, _, quantity, amount, _)] = items(run(D(2026, 2, 1)))
    assert quantity == Decimal("1.00001")
    assert amount == Decimal("0.00")


@pytest.mark.django_db
def test_excluded_usage_stays_due_and_bills_in_the_next_run():
    charge = usage_charge()
    account = charge.subscription.account
    ChargeFactory(subscription=charge.subscription, amount=Decimal("10.00"), name="Seats")
    record(charge, D(2026, 1, 5), "12500")

    first = run(D(2026, 2, 1), exclude=[ChargeType.USAGE])
    assert [name for name, *_ in items(first)] == ["Seats", "Seats"]
    charge.refresh_from_db()
    assert charge.charged_through_date is None

    second = run(D(2026, 2, 1))
    assert [(name, amount) for name, _, _, _, amount, _ in items(second)] == [
        ("API calls", Decimal("25.50"))
    ]
    assert second.documents.get().account == account


@pytest.mark.django_db
def test_excluded_recurring_and_one_time_charges_stay_due():
    account = AccountFactory()
    subscription = SubscriptionFactory(account=account)
    recurring = ChargeFactory(subscription=subscription, start_date=D(2026, 1, 1))
    one_time = OneTimeChargeFactory(subscription=subscription, start_date=D(2026, 1, 1))

    assert items(run(D(2026, 1, 1), exclude=[ChargeType.RECURRING, ChargeType.ONE_TIME])) == []
    assert Charge.objects.filter(charged_through_date__isnull=False).count() == 0
    billed = items(run(D(2026, 1, 1)))
    assert {name for name, *_ in billed} == {recurring.name, one_time.name}


@pytest.mark.django_db
def test_the_currency_check_still_covers_an_excluded_charge():
    charge = usage_charge(currency="EUR")
    ChargeFactory(subscription=charge.subscription)

    bill_run = run(D(2026, 2, 1), exclude=[ChargeType.USAGE])
    assert items(bill_run) == []
    [failure] = bill_run.failures.all()
    assert "EUR" in failure.reason


@pytest.mark.django_db
def test_cancel_rolls_usage_pieces_back_so_they_bill_again_with_the_same_quantity(clerk):
    charge = usage_charge()
    record(charge, D(2026, 1, 3), "12500")
    first = run(D(2026, 2, 1))
    bill_run_cancel(run=first, user=clerk)
    charge.refresh_from_db()
    assert charge.charged_through_date is None

    again = items(run(D(2026, 2, 1)))
    assert again == items(first)


@pytest.mark.django_db
def test_a_quantity_multiplies_the_amount_with_one_rounding_from_the_exact_price():
    account = AccountFactory(bill_cycle_day=1)
    subscription = SubscriptionFactory(account=account)
    # 0.33 x 1.5 = 0.495: one rounding gives 0.50 (rounding 0.33 or 0.495
    # in two steps could not); prorated 17/31 from the exact 0.495 = 0.2714...
    ChargeFactory(
        subscription=subscription,
        name="Seats",
        amount=Decimal("0.33"),
        quantity=Decimal("1.5"),
        start_date=D(2026, 1, 15),
    )
    bill_run = run(D(2026, 2, 1))
    assert list(bill_run.failures.values_list("reason", flat=True)) == []
    billed = items(bill_run)
    assert [(s, q, a, r) for _, s, _, q, a, r in billed] == [
        (D(2026, 1, 15), Decimal("1.5"), Decimal("0.27"), "1.5 × 0.33 × 17/31 = 0.27"),
        (D(2026, 2, 1), Decimal("1.5"), Decimal("0.50"), "1.5 × 0.33 = 0.50"),
    ]
    assert DocumentItem.objects.filter(unit_price=Decimal("0.33")).count() == 2


@pytest.mark.django_db
def test_a_one_time_charge_with_a_quantity():
    account = AccountFactory()
    subscription = SubscriptionFactory(account=account)
    OneTimeChargeFactory(
        subscription=subscription,
        amount=Decimal("49.99"),
        quantity=Decimal("3"),
        start_date=D(2026, 1, 1),
    )
    [(_, _, _, quantity, amount, rating)] = items(run(D(2026, 1, 1)))
    assert (quantity, amount, rating) == (Decimal(3), Decimal("149.97"), "3 × 49.99 = 149.97")


@pytest.mark.django_db
def test_a_whole_period_at_quantity_one_needs_no_explanation():
    account = AccountFactory(bill_cycle_day=1)
    ChargeFactory(subscription=SubscriptionFactory(account=account), start_date=D(2026, 1, 1))
    [(_, _, _, quantity, _, rating)] = items(run(D(2026, 1, 1)))
    assert (quantity, rating) == (Decimal(1), "")


@pytest.mark.django_db
def test_one_grouped_usage_query_per_chunk():
    """The usage sums of a chunk's many usage charges are one query, not one
    per charge: billing 1 or 30 usage accounts costs the same queries."""
    charges = [usage_charge() for _ in range(30)]
    for index, charge in enumerate(charges):
        record(charge, D(2026, 1, 2), str(index))
    with CaptureQueriesContext(connection) as queries:
        run(D(2026, 2, 1))
    usage_table = "customers_usagerecord"
    assert sum(usage_table in q["sql"] for q in queries.captured_queries) == 1


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_usage_sums_plan_without_jit_or_parallel_workers_and_leave_the_settings_as_they_were():
    from django.db import transaction

    from customers import selectors

    charge = usage_charge()
    record(charge, D(2026, 1, 2), "1")
    seen = []

    def watch(execute, sql, params, many, context):
        if "customers_usagerecord" in sql:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT current_setting('jit'), "
                    "current_setting('max_parallel_workers_per_gather')"
                )
                seen.append(cursor.fetchone())
        return execute(sql, params, many, context)

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('jit'), current_setting('max_parallel_workers_per_gather')"
            )
            before = cursor.fetchone()
        with connection.execute_wrapper(watch):
            sums = selectors.usage_range_quantities([(charge.id, D(2026, 1, 1), D(2026, 2, 1))])
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('jit'), current_setting('max_parallel_workers_per_gather')"
            )
            after = cursor.fetchone()
    assert sums[(charge.id, D(2026, 1, 1), D(2026, 2, 1))] == Decimal("1")
    assert seen == [("off", "0")]
    assert after == before
