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
