import datetime
from decimal import Decimal

import factory

from customers.models import Account, Charge, ChargeType, Subscription


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    number = factory.Sequence(lambda n: f"A{n + 1:08d}")
    name = factory.Sequence(lambda n: f"Customer {n + 1}")
    bill_to_email = factory.Sequence(lambda n: f"ap{n + 1}@example.com")
    currency = "USD"
    bill_cycle_day = 1
    batch = 1
    payment_term_days = 30


class SubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscription

    number = factory.Sequence(lambda n: f"S{n + 1:08d}")
    account = factory.SubFactory(AccountFactory)
    start_date = datetime.date(2026, 1, 1)


class ChargeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Charge

    subscription = factory.SubFactory(SubscriptionFactory)
    name = "Plan"
    charge_type = ChargeType.RECURRING
    amount = Decimal("100.00")
    currency = factory.LazyAttribute(lambda c: c.subscription.account.currency)
    period = "month"
    start_date = factory.LazyAttribute(lambda c: c.subscription.start_date)
    end_date = None


class OneTimeChargeFactory(ChargeFactory):
    name = "Setup fee"
    charge_type = ChargeType.ONE_TIME
    amount = Decimal("50.00")
    period = ""


# --- Usage charges and their records (issue 13) -------------------------------
# Kept together at the end of the file; the factories above are unchanged.


def per_unit_pricing(unit_price="0.01"):
    from customers.pricing import Tier
    from customers.services import pricing_create

    return pricing_create(model="per_unit", tiers=[Tier(None, Decimal(unit_price))])


class UsageChargeFactory(ChargeFactory):
    number = factory.Sequence(lambda n: f"UC{n + 1:08d}")
    name = "API calls"
    charge_type = ChargeType.USAGE
    amount = None
    quantity = None
    unit = "calls"
    pricing = factory.LazyFunction(per_unit_pricing)


class UsageRecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "customers.UsageRecord"

    record_id = factory.Sequence(lambda n: f"u{n + 1}")
    charge = factory.SubFactory(UsageChargeFactory)
    date = factory.LazyAttribute(lambda r: r.charge.start_date)
    quantity = Decimal("1")
