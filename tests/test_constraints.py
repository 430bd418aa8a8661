"""The database itself refuses rows that break the rules, whatever the code does."""

import datetime
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from customers.models import Account
from invoices.models import Document, DocumentItem, Payment
from tests.factories import AccountFactory, ChargeFactory

DAY = datetime.date(2026, 2, 1)


def document(account, *, number="INV00000001", document_type="invoice", amount="100.00", **extra):
    return Document.objects.create(
        document_type=document_type,
        number=number,
        account=account,
        currency=account.currency,
        amount=Decimal(amount),
        balance=Decimal(amount),
        invoice_date=DAY,
        due_date=DAY + datetime.timedelta(days=30),
        **extra,
    )


def item(doc, charge, *, service_start=DAY, **extra):
    return DocumentItem.objects.create(
        document=doc,
        charge=charge,
        subscription=charge.subscription,
        charge_name=charge.name,
        service_start=service_start,
        service_end=service_start + datetime.timedelta(days=27),
        amount=charge.amount,
        **extra,
    )


@pytest.mark.django_db
@pytest.mark.parametrize("day", [0, 32])
def test_the_database_refuses_a_bill_cycle_day_outside_1_to_31(day):
    with pytest.raises(IntegrityError), transaction.atomic():
        AccountFactory(bill_cycle_day=day)
    assert not Account.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("batch", [0, 51])
def test_the_database_refuses_a_batch_outside_1_to_50(batch):
    with pytest.raises(IntegrityError), transaction.atomic():
        AccountFactory(batch=batch)
    assert not Account.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(("day", "batch"), [(1, 1), (31, 50)])
def test_the_database_accepts_the_limits(day, batch):
    AccountFactory(bill_cycle_day=day, batch=batch)

    assert Account.objects.count() == 1


@pytest.mark.django_db
def test_the_database_refuses_a_duplicate_account_number():
    AccountFactory(number="A00000001")

    with pytest.raises(IntegrityError), transaction.atomic():
        AccountFactory(number="A00000001")
    assert Account.objects.count() == 1


@pytest.mark.django_db
def test_the_database_refuses_a_duplicate_document_number():
    # given
    account = AccountFactory()
    document(account, number="INV00000007")

    # then
    with pytest.raises(IntegrityError), transaction.atomic():
        document(account, number="INV00000007")
    assert Document.objects.count() == 1


@pytest.mark.django_db
def test_a_charge_period_is_billed_once_among_documents_that_are_not_canceled():
    # given a charge's period billed on a first invoice
    charge = ChargeFactory()
    account = charge.subscription.account
    first = document(account, number="INV00000001")
    first_item = item(first, charge)
    second = document(account, number="INV00000002")

    # then a second item for the same charge and period is refused
    with pytest.raises(IntegrityError), transaction.atomic():
        item(second, charge)

    # when the first document is canceled
    first.status = "Canceled"
    first.save(update_fields=["status"])
    DocumentItem.objects.filter(pk=first_item.pk).update(document_canceled=True)

    # then the period can be billed again
    item(second, charge)
    assert DocumentItem.objects.filter(charge=charge, service_start=DAY).count() == 2


@pytest.mark.django_db
def test_another_period_of_the_same_charge_is_allowed():
    charge = ChargeFactory()
    doc = document(charge.subscription.account)

    item(doc, charge, service_start=DAY)
    item(doc, charge, service_start=DAY + datetime.timedelta(days=28))

    assert DocumentItem.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize("amount", ["0.00", "-0.01", "-100.00"])
def test_the_database_refuses_a_payment_that_is_not_positive(amount):
    # given
    invoice = document(AccountFactory(), status="Posted")

    # then
    with pytest.raises(IntegrityError), transaction.atomic():
        Payment.objects.create(
            document=invoice, amount=Decimal(amount), payment_date=DAY, method="card"
        )
    assert not Payment.objects.exists()


@pytest.mark.django_db
def test_the_database_refuses_a_credit_memo_with_a_negative_amount():
    account = AccountFactory()

    with pytest.raises(IntegrityError), transaction.atomic():
        document(account, number="CM00000001", document_type="credit_memo", amount="-5.00")
    assert not Document.objects.exists()


@pytest.mark.django_db
def test_a_negative_invoice_is_allowed():
    document(AccountFactory(), amount="-5.00")

    assert Document.objects.get().amount == Decimal("-5.00")
