"""core.locks: the one lock order, and locks that cover only their own table."""

import datetime
import threading
from decimal import Decimal

import pytest
from django.apps import apps
from django.db import OperationalError, connection, transaction

from core import locks
from customers.models import Account
from invoices.models import Document, DocumentType
from tests.factories import AccountFactory


def test_every_model_of_the_lock_order_exists():
    for label in locks.LOCK_ORDER:
        assert apps.get_model(label)._meta.label == label


@pytest.mark.django_db
def test_a_model_without_a_place_in_the_lock_order_is_not_locked():
    with pytest.raises(ValueError, match="customers.Subscription has no place"):
        locks.locked(apps.get_model("customers.Subscription").objects.all())


@pytest.mark.django_db
def test_rows_are_locked_in_id_order():
    first, second = AccountFactory(), AccountFactory()
    queryset = locks.locked(Account.objects.filter(pk__in=[second.pk, first.pk]).order_by("-pk"))
    with transaction.atomic():
        assert [account.pk for account in queryset] == [first.pk, second.pk]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_lock_with_a_join_leaves_the_joined_rows_free():
    # given a document locked with its account joined (as emailing it does)
    document = Document.objects.create(
        document_type=DocumentType.INVOICE,
        number="INV90000001",
        account=AccountFactory(),
        currency="USD",
        amount=Decimal("10.00"),
        balance=Decimal("10.00"),
        invoice_date=datetime.date(2026, 1, 1),
        due_date=datetime.date(2026, 1, 31),
    )
    locked = threading.Event()
    release = threading.Event()

    def hold_the_document():
        try:
            with transaction.atomic():
                locks.locked(Document.objects.select_related("account").filter(pk=document.pk))[0]
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_document)
    holder.start()
    try:
        assert locked.wait(10)
        # when another transaction locks the document's account, without waiting
        with transaction.atomic():
            accounts = Account.objects.select_for_update(nowait=True).filter(pk=document.account_id)
            # then it gets it at once
            assert [account.pk for account in accounts] == [document.account_id]
            # and the document itself is held
            with pytest.raises(OperationalError), transaction.atomic():
                list(Document.objects.select_for_update(nowait=True).filter(pk=document.pk))
    finally:
        release.set()
        holder.join()
