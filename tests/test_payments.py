import datetime
import threading
from decimal import Decimal

import pytest
from django.db import connection

from invoices.models import Document, DocumentStatus, Payment, PaymentMethod
from invoices.services import PaymentRefused, payment_record
from tests.factories import CreditMemoFactory, DocumentFactory


def pay(
    document,
    amount,
    *,
    payment_date="2026-02-10",
    method=PaymentMethod.BANK_TRANSFER,
    user,
    request_key=None,
):
    return payment_record(
        document_id=document.pk,
        amount=amount,
        payment_date=payment_date,
        method=method,
        reference="wire 1",
        user=user,
        request_key=request_key,
    )


def balance_of(document):
    return Document.objects.get(pk=document.pk).balance


@pytest.mark.django_db
def test_a_payment_on_a_posted_invoice_is_recorded_and_lowers_the_balance(clerk):
    # given
    invoice = DocumentFactory(status=DocumentStatus.POSTED, amount=Decimal("204.84"))
    # when
    payment = pay(invoice, "54.84", user=clerk)
    # then
    payment.refresh_from_db()
    assert payment.document_id == invoice.pk
    assert payment.amount == Decimal("54.84")
    assert payment.payment_date == datetime.date(2026, 2, 10)
    assert payment.method == PaymentMethod.BANK_TRANSFER
    assert payment.reference == "wire 1"
    assert payment.created_by == clerk
    assert balance_of(invoice) == Decimal("150.00")


@pytest.mark.django_db
def test_several_payments_leave_the_exact_balance(clerk):
    invoice = DocumentFactory(status=DocumentStatus.POSTED, amount=Decimal("100.00"))

    pay(invoice, "33.33", user=clerk)
    pay(invoice, Decimal("33.33"), payment_date=datetime.date(2026, 2, 11), user=clerk)
    pay(invoice, "0.01", method=PaymentMethod.CARD, user=clerk)

    assert balance_of(invoice) == Decimal("33.33")
    assert Payment.objects.filter(document=invoice).count() == 3


@pytest.mark.django_db
def test_a_full_payment_leaves_balance_zero_and_the_invoice_posted_and_paid(clerk):
    invoice = DocumentFactory(status=DocumentStatus.POSTED, amount=Decimal("100.00"))
    pay(invoice, "40.00", user=clerk)

    pay(invoice, "60.00", user=clerk)

    invoice.refresh_from_db()
    assert invoice.balance == Decimal("0.00")
    assert invoice.status == DocumentStatus.POSTED
    assert invoice.display_status == "Paid"


def refusal_of(document, user, **changes):
    arguments = {
        "document_id": document.pk,
        "amount": "10.00",
        "payment_date": "2026-02-10",
        "method": PaymentMethod.CARD,
        "user": user,
        **changes,
    }
    before = (balance_of(document), Payment.objects.count())
    with pytest.raises(PaymentRefused) as refused:
        payment_record(**arguments)
    assert (balance_of(document), Payment.objects.count()) == before
    return str(refused.value)


@pytest.mark.django_db
def test_a_draft_invoice_refuses_a_payment(clerk):
    invoice = DocumentFactory(status=DocumentStatus.DRAFT)

    assert refusal_of(invoice, clerk) == (
        f"{invoice.number} is Draft: payments can only be recorded against Posted invoices."
    )


@pytest.mark.django_db
def test_a_canceled_invoice_refuses_a_payment(clerk):
    invoice = DocumentFactory(status=DocumentStatus.CANCELED)

    assert refusal_of(invoice, clerk) == (
        f"{invoice.number} is Canceled: payments can only be recorded against Posted invoices."
    )


@pytest.mark.django_db
def test_a_credit_memo_refuses_a_payment(clerk):
    credit_memo = CreditMemoFactory(status=DocumentStatus.POSTED)

    assert refusal_of(credit_memo, clerk) == (
        f"{credit_memo.number} is a credit memo: payments can only be recorded "
        "against Posted invoices."
    )


@pytest.mark.django_db
def test_an_unknown_invoice_refuses_a_payment(clerk):
    with pytest.raises(PaymentRefused, match="no invoice or credit memo with id 999999"):
        payment_record(
            document_id=999999,
            amount="1.00",
            payment_date="2026-02-10",
            method=PaymentMethod.CASH,
            user=clerk,
        )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("0", "Payment amount must be greater than 0, not 0."),
        ("0.00", "Payment amount must be greater than 0, not 0.00."),
        ("-5.00", "Payment amount must be greater than 0, not -5.00."),
        (Decimal("-0.01"), "Payment amount must be greater than 0, not -0.01."),
        ("10.005", "Payment amount 10.005 has more than 2 decimal places."),
        (Decimal("0.001"), "Payment amount 0.001 has more than 2 decimal places."),
        ("abc", "Payment amount 'abc' is not a number."),
        ("", "Payment amount '' is not a number."),
        ("NaN", "Payment amount 'NaN' is not a number."),
        ("Infinity", "Payment amount 'Infinity' is not a number."),
        (10.5, "Payment amount 10.5 is not a number; give it as a string like '10.00'."),
        ("1e20", "Payment amount 1E+20 is too large."),
    ],
)
def test_a_malformed_or_non_positive_amount_is_refused(clerk, amount, message):
    invoice = DocumentFactory(status=DocumentStatus.POSTED)

    assert refusal_of(invoice, clerk, amount=amount) == message


@pytest.mark.django_db
def test_trailing_zeros_beyond_the_cent_are_not_extra_decimal_places(clerk):
    invoice = DocumentFactory(status=DocumentStatus.POSTED, amount=Decimal("100.00"))

    payment = pay(invoice, " 10.500 ", user=clerk)

    assert payment.amount == Decimal("10.50")
    assert balance_of(invoice) == Decimal("89.50")


@pytest.mark.django_db
def test_a_payment_above_the_open_balance_is_refused(clerk):
    invoice = DocumentFactory(status=DocumentStatus.POSTED, amount=Decimal("100.00"))
    pay(invoice, "60.00", user=clerk)

    assert refusal_of(invoice, clerk, amount="40.01") == (
        f"Payment of 40.01 exceeds the open balance 40.00 USD of {invoice.number}."
    )


@pytest.mark.django_db
def test_a_fully_paid_invoice_refuses_another_payment(clerk):
    invoice = DocumentFactory(status=DocumentStatus.POSTED, amount=Decimal("100.00"))
    pay(invoice, "100.00", user=clerk)

    assert refusal_of(invoice, clerk, amount="0.01") == (
        f"Payment of 0.01 exceeds the open balance 0.00 USD of {invoice.number}."
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payment_date", "message"),
    [
        ("2026-13-01", "Payment date '2026-13-01' is not a valid date (YYYY-MM-DD)."),
        ("2026-02-30", "Payment date '2026-02-30' is not a valid date (YYYY-MM-DD)."),
        ("10/02/2026", "Payment date '10/02/2026' is not a valid date (YYYY-MM-DD)."),
        ("", "Payment date '' is not a valid date (YYYY-MM-DD)."),
        (None, "Payment date None is not a valid date (YYYY-MM-DD)."),
    ],
)
def test_a_malformed_payment_date_is_refused(clerk, payment_date, message):
    invoice = DocumentFactory(status=DocumentStatus.POSTED)

    assert refusal_of(invoice, clerk, payment_date=payment_date) == message


@pytest.mark.django_db
def test_an_unknown_payment_method_is_refused(clerk):
    invoice = DocumentFactory(status=DocumentStatus.POSTED)

    assert refusal_of(invoice, clerk, method="bitcoin") == (
        "Payment method 'bitcoin' is not one of: bank_transfer, card, check, cash, other."
    )


@pytest.mark.django_db
def test_a_reference_longer_than_its_column_is_refused(clerk):
    invoice = DocumentFactory(status=DocumentStatus.POSTED)

    assert refusal_of(invoice, clerk, reference="x" * 256) == (
        "Payment reference is longer than 255 characters."
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_payments_never_overdraw_an_invoice(superuser):
    # superuser, not clerk: a transactional test flushes the roles' groups.
    # given: 8 clerks paying 30.00 at once on an invoice of 100.00
    invoice = DocumentFactory(status=DocumentStatus.POSTED, amount=Decimal("100.00"))
    start = threading.Barrier(8)
    outcomes = []

    def pay_thirty():
        try:
            start.wait()
            pay(invoice, "30.00", user=superuser)
            outcomes.append("paid")
        except PaymentRefused:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=pay_thirty) for _ in range(8)]
    # when
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then
    assert sorted(outcomes) == ["paid"] * 3 + ["refused"] * 5
    assert balance_of(invoice) == Decimal("10.00")
    assert Payment.objects.filter(document=invoice).count() == 3


@pytest.mark.django_db
def test_a_request_key_used_again_returns_the_same_payment(clerk):
    import uuid

    invoice = DocumentFactory(status=DocumentStatus.POSTED, amount=Decimal("100.00"))
    other = DocumentFactory(status=DocumentStatus.POSTED, amount=Decimal("100.00"))
    key = uuid.uuid4()
    first = pay(invoice, "30.00", user=clerk, request_key=key)
    again = pay(invoice, "30.00", user=clerk, request_key=key)
    assert again.pk == first.pk
    assert balance_of(invoice) == Decimal("70.00")
    with pytest.raises(PaymentRefused, match="already used for another document"):
        pay(other, "30.00", user=clerk, request_key=key)
    assert balance_of(other) == Decimal("100.00")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_one_form_submitted_from_eight_connections_at_once_records_one_payment(superuser):
    import uuid

    invoice = DocumentFactory(status=DocumentStatus.POSTED, amount=Decimal("100.00"))
    key = uuid.uuid4()
    start = threading.Barrier(8)
    payments = []

    def submit():
        try:
            start.wait()
            payments.append(pay(invoice, "30.00", user=superuser, request_key=key).pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(payments) == 8 and len(set(payments)) == 1
    assert balance_of(invoice) == Decimal("70.00")
