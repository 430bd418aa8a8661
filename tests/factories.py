import datetime
from decimal import Decimal

import factory
from django.utils import timezone

from customers.models import Account, Charge, ChargeType, Subscription
from invoices import sequences
from invoices.models import (
    CreditApplication,
    Document,
    DocumentItem,
    DocumentStatus,
    DocumentType,
    Payment,
    PaymentMethod,
)


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


class DocumentFactory(factory.django.DjangoModelFactory):
    """An invoice (``CreditMemoFactory``: a credit memo), Draft unless told,
    numbered from the real sequences so that it never takes a number a bill
    run of the same test would hand out. The rows only: posting, payments and
    credits through invoices.services keep balances and statuses true."""

    class Meta:
        model = Document

    document_type = DocumentType.INVOICE
    number = factory.LazyAttribute(
        lambda d: sequences.allocate("INV" if d.document_type == DocumentType.INVOICE else "CM")[0]
    )
    account = factory.SubFactory(AccountFactory)
    bill_run = None
    status = DocumentStatus.DRAFT
    currency = factory.LazyAttribute(lambda d: d.account.currency)
    amount = Decimal("100.00")
    balance = factory.LazyAttribute(lambda d: d.amount)
    invoice_date = factory.LazyAttribute(
        lambda d: d.bill_run.invoice_date if d.bill_run else datetime.date(2026, 2, 1)
    )
    due_date = factory.LazyAttribute(
        lambda d: d.invoice_date + datetime.timedelta(days=d.account.payment_term_days)
    )
    posted_at = factory.LazyAttribute(
        lambda d: timezone.now() if d.status == DocumentStatus.POSTED else None
    )


class CreditMemoFactory(DocumentFactory):
    document_type = DocumentType.CREDIT_MEMO


class DocumentItemFactory(factory.django.DjangoModelFactory):
    """One billed month of a charge of the document's account; the document's
    amount unless told (a credit memo's item is the negative of its credit)."""

    class Meta:
        model = DocumentItem

    document = factory.SubFactory(DocumentFactory)
    charge = factory.SubFactory(
        ChargeFactory, subscription__account=factory.SelfAttribute("...document.account")
    )
    subscription = factory.SelfAttribute("charge.subscription")
    charge_name = factory.SelfAttribute("charge.name")
    service_start = factory.SelfAttribute("document.invoice_date")
    service_end = factory.LazyAttribute(lambda i: _month_end(i.service_start))
    amount = factory.LazyAttribute(
        lambda i: (
            -i.document.amount
            if i.document.document_type == DocumentType.CREDIT_MEMO
            else i.document.amount
        )
    )


class PaymentFactory(factory.django.DjangoModelFactory):
    """A payment row on a Posted invoice (the balance is left as it is)."""

    class Meta:
        model = Payment

    document = factory.SubFactory(DocumentFactory, status=DocumentStatus.POSTED)
    amount = Decimal("10.00")
    payment_date = factory.SelfAttribute("document.invoice_date")
    method = PaymentMethod.CARD


class CreditApplicationFactory(factory.django.DjangoModelFactory):
    """Part of a Posted credit memo applied to a Posted invoice of its account
    (the balances are left as they are)."""

    class Meta:
        model = CreditApplication

    credit_memo = factory.SubFactory(CreditMemoFactory, status=DocumentStatus.POSTED)
    invoice = factory.SubFactory(
        DocumentFactory,
        status=DocumentStatus.POSTED,
        account=factory.SelfAttribute("..credit_memo.account"),
    )
    amount = Decimal("5.00")


def _month_end(day):
    following = (day.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)
    return following - datetime.timedelta(days=1)


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
