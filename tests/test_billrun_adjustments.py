"""Adjustment items: what a run makes once a change reaches into what was
billed (BILLING_RULES.md, Subscription changes and adjustments; issue 14).

The changes are written here as the rows the change services write (a
ChargePrice segment, an end date), so that these tests read as the engine's:
tests/test_changes.py checks the services themselves."""

import datetime
from decimal import Decimal

import pytest

from billruns.services import (
    BillRunActionRefused,
    bill_run_cancel,
    bill_run_create,
    bill_run_execute,
)
from customers.models import ChangeType, ChargePrice, SubscriptionChange
from customers.pricing import Tier
from customers.services import pricing_create
from invoices.models import DocumentItem, DocumentType, TenantSettings
from tests.factories import (
    AccountFactory,
    ChargeFactory,
    SubscriptionFactory,
    UsageChargeFactory,
    UsageRecordFactory,
)

D = datetime.date


def run(target):
    bill_run = bill_run_create(target_date=target, enqueue=False)
    return bill_run_execute(run_id=bill_run.pk)


def items(bill_run):
    """[(kind, first day, last day, amount)] of a run, adjustments first."""
    return [
        (i.kind, i.service_start, i.service_end, i.amount)
        for i in DocumentItem.objects.filter(document__bill_run=bill_run).order_by(
            "kind", "service_start", "id"
        )
    ]


def change_price(charge, day, *, amount=None, quantity=None, pricing=None):
    """The segment a change-price change writes: the full terms from ``day``."""
    if pricing is None:
        previous = ChargePrice.objects.filter(charge=charge, effective_date__lte=day).last()
        amount = amount if amount is not None else (previous or charge).amount
        quantity = quantity if quantity is not None else (previous or charge).quantity
    change = SubscriptionChange.objects.create(
        subscription=charge.subscription,
        charge=charge,
        change_type=ChangeType.CHANGE_PRICE,
        effective_date=day,
    )
    ChargePrice.objects.create(
        charge=charge,
        effective_date=day,
        amount=None if pricing else Decimal(amount),
        quantity=None if pricing else Decimal(quantity),
        pricing=pricing,
        change=change,
    )


def remove(charge, day):
    SubscriptionChange.objects.create(
        subscription=charge.subscription,
        charge=charge,
        change_type=ChangeType.REMOVE_CHARGE,
        effective_date=day,
    )
    charge.end_date = day
    charge.save(update_fields=["end_date"])


def monthly(amount="100.00", start=None, **kwargs):
    account = AccountFactory(bill_cycle_day=1)
    return ChargeFactory(
        subscription=SubscriptionFactory(account=account),
        amount=Decimal(amount),
        start_date=start or D(2026, 3, 1),
        **kwargs,
    )


A, C = "adjustment", "charge"


@pytest.mark.django_db
def test_the_rules_price_change_example():
    charge = monthly()
    run(D(2026, 4, 1))  # bills [03-01, 04-01) and [04-01, 05-01)
    change_price(charge, D(2026, 3, 11), amount="160.00")

    assert items(run(D(2026, 5, 1))) == [
        (A, D(2026, 3, 11), D(2026, 3, 31), Decimal("-67.74")),
        (A, D(2026, 4, 1), D(2026, 4, 30), Decimal("-100.00")),
        (C, D(2026, 3, 11), D(2026, 3, 31), Decimal("108.39")),
        (C, D(2026, 4, 1), D(2026, 4, 30), Decimal("160.00")),
        (C, D(2026, 5, 1), D(2026, 5, 31), Decimal("160.00")),
    ]
    charge.refresh_from_db()
    assert charge.charged_through_date == D(2026, 6, 1)
    reversed_item = DocumentItem.objects.get(kind=C, service_start=D(2026, 4, 1), amount=100)
    assert reversed_item.fully_reversed


@pytest.mark.django_db
def test_the_rules_removal_example_makes_a_credit_memo():
    TenantSettings.objects.update_or_create(id=1, defaults={"advanced_ar_settlement": True})
    charge = monthly()
    run(D(2026, 4, 1))
    remove(charge, D(2026, 3, 11))

    second = run(D(2026, 5, 1))
    assert items(second) == [
        (A, D(2026, 3, 11), D(2026, 3, 31), Decimal("-67.74")),
        (A, D(2026, 4, 1), D(2026, 4, 30), Decimal("-100.00")),
    ]
    [memo] = second.documents.all()
    assert (memo.document_type, memo.amount) == (DocumentType.CREDIT_MEMO, Decimal("167.74"))
    charge.refresh_from_db()
    assert charge.charged_through_date == D(2026, 3, 11)
    assert items(run(D(2026, 6, 1))) == []  # nothing more, ever


@pytest.mark.django_db
def test_an_adjustment_says_how_it_was_computed():
    charge = monthly()
    run(D(2026, 4, 1))
    remove(charge, D(2026, 3, 11))
    second = run(D(2026, 5, 1))
    ratings = list(
        DocumentItem.objects.filter(document__bill_run=second)
        .order_by("service_start")
        .values_list("rating", "quantity", "adjusts__service_start")
    )
    assert ratings == [
        ("100.00 × 10/31 − 100.00 = -67.74", None, D(2026, 3, 1)),
        ("0.00 − 100.00 = -100.00", None, D(2026, 4, 1)),
    ]


@pytest.mark.django_db
def test_no_adjustment_before_the_first_run_on_or_after_the_stale_day():
    charge = monthly()
    run(D(2026, 4, 1))
    change_price(charge, D(2026, 4, 20), amount="160.00")  # inside the billed April

    assert items(run(D(2026, 4, 15))) == []  # before e0 = 04-20: nothing yet
    assert items(run(D(2026, 4, 20))) == [
        (A, D(2026, 4, 20), D(2026, 4, 30), Decimal("-36.67")),  # 100 x 19/30 - 100
        (C, D(2026, 4, 20), D(2026, 4, 30), Decimal("58.67")),  # 160 x 11/30
    ]


@pytest.mark.django_db
def test_a_change_effective_in_the_future_of_what_was_billed_only_prices_new_pieces():
    charge = monthly()
    run(D(2026, 4, 1))  # through 05-01
    change_price(charge, D(2026, 5, 1), amount="160.00")

    assert items(run(D(2026, 5, 1))) == [(C, D(2026, 5, 1), D(2026, 5, 31), Decimal("160.00"))]


@pytest.mark.django_db
def test_a_change_before_anything_is_billed_cuts_the_pieces():
    charge = monthly(start=D(2026, 3, 1))
    change_price(charge, D(2026, 3, 11), quantity="2")

    assert items(run(D(2026, 4, 1))) == [
        (C, D(2026, 3, 1), D(2026, 3, 10), Decimal("32.26")),  # 100 x 10/31
        (C, D(2026, 3, 11), D(2026, 3, 31), Decimal("135.48")),  # 200 x 21/31
        (C, D(2026, 4, 1), D(2026, 4, 30), Decimal("200.00")),
    ]


@pytest.mark.django_db
def test_a_change_at_exactly_a_pieces_start_reverses_that_piece_whole():
    charge = monthly()
    run(D(2026, 4, 1))
    change_price(charge, D(2026, 4, 1), amount="80.00")

    assert items(run(D(2026, 4, 1))) == [
        (A, D(2026, 4, 1), D(2026, 4, 30), Decimal("-100.00")),
        (C, D(2026, 4, 1), D(2026, 4, 30), Decimal("80.00")),
    ]


@pytest.mark.django_db
def test_a_quantity_change_on_an_annual_charge_keeps_its_grid():
    account = AccountFactory(bill_cycle_day=1)
    charge = ChargeFactory(
        subscription=SubscriptionFactory(account=account),
        period="annual",
        amount=Decimal("1200.00"),
        start_date=D(2026, 1, 1),
    )
    run(D(2026, 1, 1))
    change_price(charge, D(2026, 4, 1), quantity="3")

    assert items(run(D(2026, 4, 1))) == [
        # 1200 x 90/365 = 295.89 - 1200
        (A, D(2026, 4, 1), D(2026, 12, 31), Decimal("-904.11")),
        # 3600 x 275/365
        (C, D(2026, 4, 1), D(2026, 12, 31), Decimal("2712.33")),
    ]
    assert items(run(D(2027, 1, 1))) == [(C, D(2027, 1, 1), D(2027, 12, 31), Decimal("3600.00"))]


@pytest.mark.django_db
def test_two_changes_on_one_charge_in_order():
    charge = monthly()
    run(D(2026, 4, 1))
    change_price(charge, D(2026, 3, 11), amount="160.00")
    change_price(charge, D(2026, 4, 1), amount="100.00")  # back to the April price

    # April's item matches again (100 on 04-01): only March is corrected.
    assert items(run(D(2026, 4, 1))) == [
        (A, D(2026, 3, 11), D(2026, 3, 31), Decimal("-67.74")),
        (C, D(2026, 3, 11), D(2026, 3, 31), Decimal("108.39")),
    ]


@pytest.mark.django_db
def test_a_removal_at_the_charges_start_reverses_everything():
    charge = monthly()
    run(D(2026, 4, 1))
    remove(charge, D(2026, 3, 1))

    assert items(run(D(2026, 4, 1))) == [
        (A, D(2026, 3, 1), D(2026, 3, 31), Decimal("-100.00")),
        (A, D(2026, 4, 1), D(2026, 4, 30), Decimal("-100.00")),
    ]
    charge.refresh_from_db()
    assert charge.charged_through_date is None


@pytest.mark.django_db
def test_usage_is_re_rated_after_a_retroactive_price_change():
    cent = pricing_create(model="per_unit", tiers=[Tier(None, Decimal("0.01"))])
    two_cents = pricing_create(model="per_unit", tiers=[Tier(None, Decimal("0.02"))])
    account = AccountFactory(bill_cycle_day=1)
    charge = UsageChargeFactory(
        subscription=SubscriptionFactory(account=account), start_date=D(2026, 1, 1), pricing=cent
    )
    UsageRecordFactory(charge=charge, date=D(2026, 1, 5), quantity=Decimal(100))
    UsageRecordFactory(charge=charge, date=D(2026, 1, 20), quantity=Decimal(200))
    assert items(run(D(2026, 2, 1))) == [(C, D(2026, 1, 1), D(2026, 1, 31), Decimal("3.00"))]
    change_price(charge, D(2026, 1, 15), pricing=two_cents)

    second = run(D(2026, 2, 1))
    assert items(second) == [
        (A, D(2026, 1, 15), D(2026, 1, 31), Decimal("-2.00")),  # 100 x 0.01 - 3.00
        (C, D(2026, 1, 15), D(2026, 1, 31), Decimal("4.00")),  # 200 x 0.02
    ]
    new = DocumentItem.objects.get(document__bill_run=second, kind=C)
    assert (new.quantity, new.pricing_id) == (Decimal(200), two_cents.pk)


@pytest.mark.django_db
def test_a_run_canceled_after_it_made_adjustments_then_run_again(clerk):
    charge = monthly()
    run(D(2026, 4, 1))
    change_price(charge, D(2026, 3, 11), amount="160.00")
    second = run(D(2026, 5, 1))
    made = items(second)

    bill_run_cancel(run=second, user=clerk)
    charge.refresh_from_db()
    assert charge.charged_through_date == D(2026, 5, 1)
    assert not DocumentItem.objects.filter(fully_reversed=True).exists()

    assert items(run(D(2026, 5, 1))) == made


@pytest.mark.django_db
def test_the_cancel_guard_refuses_a_run_whose_items_a_later_run_adjusted(clerk):
    charge = monthly()
    first = run(D(2026, 4, 1))
    change_price(charge, D(2026, 4, 1), amount="80.00")
    second = run(D(2026, 4, 1))  # reverses April whole, from its first day
    assert items(second)[0][0] == A

    with pytest.raises(BillRunActionRefused) as refused:
        bill_run_cancel(run=first, user=clerk)
    assert second.number in str(refused.value)


@pytest.mark.django_db
def test_a_charge_without_changes_reads_no_items():
    """The stale rule reads a charge's items only once a change reaches
    into what it billed (speed: most charges never change)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    monthly()
    run(D(2026, 4, 1))
    with CaptureQueriesContext(connection) as queries:
        run(D(2026, 5, 1))
    reads = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith("SELECT")
        and "invoices_documentitem" in q["sql"].partition("FROM")[2]
    ]
    assert reads == []


@pytest.mark.django_db
def test_show_json_lists_adjustments_with_their_kind_and_no_quantity():
    from billruns.selectors import run_summary

    charge = monthly()
    run(D(2026, 4, 1))
    remove(charge, D(2026, 3, 11))
    second = run(D(2026, 5, 1))

    [document] = run_summary(second, documents=True)["documents"]
    assert [(i["kind"], i["charge_number"], i["quantity"]) for i in document["items"]] == [
        ("adjustment", charge.number, None),
        ("adjustment", charge.number, None),
    ]
    assert [(i["service_start"], i["service_end"]) for i in document["items"]] == [
        ("2026-03-11", "2026-03-31"),
        ("2026-04-01", "2026-04-30"),
    ]


@pytest.mark.django_db
def test_two_changes_effective_the_same_day_the_later_holds():
    charge = monthly()
    change_price(charge, D(2026, 3, 11), amount="160.00")
    change_price(charge, D(2026, 3, 11), amount="120.00")

    assert items(run(D(2026, 3, 11))) == [
        (C, D(2026, 3, 1), D(2026, 3, 10), Decimal("32.26")),  # 100 x 10/31
        (C, D(2026, 3, 11), D(2026, 3, 31), Decimal("81.29")),  # 120 x 21/31
    ]
