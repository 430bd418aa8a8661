"""An account billed by a real run for a quantity and for usage, as the
pages and the PDF show it: a recurring charge of 3 seats started mid-month
(prorated: 3 × 10.00 × 17/31), and API calls under the rules' graduated
tiers (12,500 calls: 1,000 × 0 + 9,000 × 0.002 + 5.00 + 2,500 × 0.001 = 25.50)."""

import datetime
from decimal import Decimal

from billruns.services import bill_run_create, bill_run_execute
from customers.pricing import Tier
from customers.services import pricing_create
from tests.factories import (
    AccountFactory,
    ChargeFactory,
    SubscriptionFactory,
    UsageChargeFactory,
    UsageRecordFactory,
)

D = datetime.date
TARGET = D(2026, 2, 1)
RATING_SEATS = "3 × 10.00 × 17/31 = 16.45"
RATING_CALLS = "12,500 calls: 1,000 × 0 + 9,000 × 0.002 + 5.00 + 2,500 × 0.001 = 25.50"
TIERS_TEXT = "Graduated: up to 1,000 at 0; up to 10,000 at 0.002 + 5.00; above 10,000 at 0.001"


def graduated():
    return pricing_create(
        model="graduated",
        tiers=[
            Tier(Decimal("1000"), Decimal("0")),
            Tier(Decimal("10000"), Decimal("0.002"), Decimal("5.00")),
            Tier(None, Decimal("0.001")),
        ],
    )


def usage_subscription(*, account=None, calls=("12000", "500"), seats="3"):
    """A subscription with a seats charge and an API calls charge, not billed yet."""
    account = account or AccountFactory(bill_cycle_day=1)
    subscription = SubscriptionFactory(account=account, start_date=D(2026, 1, 1))
    seats_charge = ChargeFactory(
        subscription=subscription,
        name="Seats",
        amount=Decimal("10.00"),
        quantity=Decimal(seats),
        start_date=D(2026, 1, 15),
        currency=account.currency,
    )
    calls_charge = UsageChargeFactory(
        subscription=subscription,
        name="API calls",
        unit="calls",
        pricing=graduated(),
        start_date=D(2026, 1, 1),
        currency=account.currency,
    )
    for day, quantity in zip((D(2026, 1, 3), D(2026, 1, 31)), calls, strict=False):
        UsageRecordFactory(charge=calls_charge, date=day, quantity=Decimal(quantity))
    return subscription, seats_charge, calls_charge


def billed_usage(**kwargs):
    """``usage_subscription`` billed by a run to TARGET: (subscription, seats
    charge, calls charge, the run's invoice)."""
    subscription, seats, calls = usage_subscription(**kwargs)
    run = bill_run_create(target_date=TARGET, enqueue=False)
    run = bill_run_execute(run_id=run.pk)
    invoice = run.documents.get(account=subscription.account)
    return subscription, seats, calls, invoice
