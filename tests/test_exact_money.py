"""Money is stored exactly on every database (issue 11, item 4).

Django keeps a DecimalField on SQLite as a floating-point number: an invoice
of 19,999,999,999,999.98 came back 20,000,000,000,000.00 and above 10^16
`billrun show` crashed. These run on SQLite (the default) and on PostgreSQL.
"""

import datetime
import io
import json
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import F, Q

from billruns import engine, services
from core.fields import ExactSum
from customers.models import Charge
from invoices.models import (
    CreditApplication,
    Document,
    DocumentItem,
    DocumentStatus,
    Payment,
    TenantSettings,
)
from invoices.services import credit_memo_apply, payment_record
from tests.factories import (
    AccountFactory,
    ChargeFactory,
    CreditApplicationFactory,
    CreditMemoFactory,
    DocumentFactory,
    DocumentItemFactory,
    OneTimeChargeFactory,
    PaymentFactory,
)

pytestmark = pytest.mark.django_db

JAN = datetime.date(2026, 1, 1)
# Past float's 15 digits, and the largest amount a money column holds.
LARGE = [Decimal("19999999999999.98"), Decimal("9999999999999999.99")]
LARGE_IDS = ["2e13", "max"]


def run_to_end(**parameters):
    run = services.bill_run_create(target_date=JAN, enqueue=False, **parameters)
    return services.bill_run_execute(run_id=run.pk)


def billrun_show_json(run, *extra):
    out = io.StringIO()
    call_command("billrun", "show", run.number, "--json", *extra, stdout=out)
    return json.loads(out.getvalue())


@pytest.mark.parametrize("amount", LARGE, ids=LARGE_IDS)
@pytest.mark.parametrize("sign", [1, -1], ids=["positive", "negative"])
def test_every_money_column_gives_back_exactly_what_was_stored(amount, sign):
    signed = sign * amount
    charge = OneTimeChargeFactory(amount=signed)
    document = DocumentFactory(status=DocumentStatus.POSTED, amount=signed)
    item = DocumentItemFactory(
        document=document,
        charge=charge,
        charge_name="Big",
        service_start=JAN,
        service_end=JAN,
        amount=signed,
    )
    positive = DocumentFactory(status=DocumentStatus.POSTED, amount=amount, number="INV99999999")
    payment = PaymentFactory(document=positive, amount=amount, payment_date=JAN, method="card")
    credit_memo = CreditMemoFactory(status=DocumentStatus.POSTED, amount=amount)
    application = CreditApplicationFactory(credit_memo=credit_memo, invoice=positive, amount=amount)

    read = [
        Charge.objects.get(pk=charge.pk).amount,
        Document.objects.get(pk=document.pk).amount,
        Document.objects.get(pk=document.pk).balance,
        DocumentItem.objects.get(pk=item.pk).amount,
        Payment.objects.get(pk=payment.pk).amount * sign,
        CreditApplication.objects.get(pk=application.pk).amount * sign,
    ]

    assert read == [signed] * 6
    assert all(str(value) == str(signed) for value in read)
    assert document.pk in Document.objects.filter(amount=signed).values_list("pk", flat=True)
    assert not Document.objects.filter(amount=signed + Decimal("0.01"), pk=document.pk).exists()
    assert list(DocumentItem.objects.values_list("amount", flat=True)) == [signed]


def test_filters_compare_exactly_at_the_last_cent():
    document = DocumentFactory(status=DocumentStatus.POSTED, amount=Decimal("19999999999999.98"))

    assert Document.objects.filter(amount__gt=Decimal("19999999999999.97")).get() == document
    assert not Document.objects.filter(amount__gt=Decimal("19999999999999.98")).exists()
    assert not Document.objects.filter(amount=Decimal("19999999999999.99")).exists()
    assert Document.objects.filter(Q(amount__gte=0), balance=F("amount")).count() == 1
    # A value the column could not hold still compares as a number.
    assert Document.objects.filter(amount__lt=Decimal("1E17")).count() == 1
    assert not Document.objects.filter(amount__gt=Decimal("19999999999999.985")).exists()
    assert Document.objects.filter(amount__gt=Decimal("19999999999999.975")).count() == 1


def test_a_sum_of_many_large_amounts_is_exact():
    """Past 2^63 cents, where SQLite's own SUM of integers fails."""
    largest = Decimal("9999999999999999.99")
    for n in range(1, 1001):
        DocumentFactory(
            status=DocumentStatus.POSTED,
            amount=largest if n % 2 else Decimal("19999999999999.98"),
            number=f"INV{n:08d}",
        )
    DocumentFactory(status=DocumentStatus.POSTED, amount=Decimal("-0.01"), number="INV99999999")

    total = Document.objects.aggregate(total=ExactSum("amount"))["total"]
    exact = 500 * largest + 500 * Decimal("19999999999999.98") - Decimal("0.01")

    assert total == exact
    assert str(total) == "5009999999999999984.99"


def test_exact_sum_takes_a_filter_and_is_none_over_no_rows():
    DocumentFactory(
        status=DocumentStatus.POSTED, amount=Decimal("19999999999999.98"), number="INV00000001"
    )
    DocumentFactory(status=DocumentStatus.POSTED, amount=Decimal("0.03"), number="INV00000002")

    totals = Document.objects.aggregate(
        big=ExactSum("amount", filter=Q(amount__gt=1)),
        none=ExactSum("amount", filter=Q(amount__lt=0)),
    )

    assert totals == {"big": Decimal("19999999999999.98"), "none": None}


@pytest.mark.parametrize("amount", LARGE, ids=LARGE_IDS)
def test_a_runs_documents_totals_and_show_json_are_exact(amount):
    for _ in range(3):
        OneTimeChargeFactory(amount=amount, start_date=JAN)

    run = run_to_end()

    assert run.invoices_count == 3 and not run.has_errors
    assert run.totals == {"USD": f"{3 * amount:.2f}"}
    shown = billrun_show_json(run, "--documents")
    assert shown["totals"] == {"USD": f"{3 * amount:.2f}"}
    assert {document["amount"] for document in shown["documents"]} == {f"{amount:.2f}"}
    assert {item["amount"] for d in shown["documents"] for item in d["items"]} == {f"{amount:.2f}"}


def test_a_credit_memo_of_the_largest_amount_counts_negative_in_the_totals():
    settings = TenantSettings.load()
    settings.advanced_ar_settlement = True
    settings.save()
    OneTimeChargeFactory(amount=Decimal("-9999999999999999.99"), start_date=JAN)
    OneTimeChargeFactory(amount=Decimal("19999999999999.98"), start_date=JAN)

    run = run_to_end()

    assert (run.invoices_count, run.credit_memos_count) == (1, 1)
    assert run.totals == {"USD": "-9980000000000000.01"}


def test_payments_and_credit_lower_large_balances_to_the_cent(superuser):
    invoice = DocumentFactory(status=DocumentStatus.POSTED, amount=Decimal("19999999999999.98"))
    credit_memo = CreditMemoFactory(
        status=DocumentStatus.POSTED, amount=Decimal("0.05"), account=invoice.account
    )
    settings = TenantSettings.load()
    settings.advanced_ar_settlement = True
    settings.save()

    payment_record(
        document_id=invoice.pk,
        amount="0.01",
        payment_date=JAN,
        method="card",
        user=superuser,
    )
    credit_memo_apply(
        credit_memo_id=credit_memo.pk, invoice_id=invoice.pk, amount="0.02", user=superuser
    )

    invoice.refresh_from_db()
    credit_memo.refresh_from_db()
    assert invoice.balance == Decimal("19999999999999.95")
    assert credit_memo.balance == Decimal("0.03")


def test_an_amount_the_column_cannot_hold_exactly_is_refused_not_rounded():
    with pytest.raises(ValueError, match="more than 2 decimal places"), transaction.atomic():
        OneTimeChargeFactory(amount=Decimal("10.005"))
    with pytest.raises(ValueError, match="does not fit"), transaction.atomic():
        OneTimeChargeFactory(amount=Decimal("10000000000000000.00"))
    assert not Charge.objects.exists()


def test_a_document_total_too_large_fails_that_account_alone_with_a_clear_reason():
    too_large = AccountFactory(number="A00000001")
    for _ in range(12):
        OneTimeChargeFactory(
            subscription__account=too_large, amount=Decimal("9999999999999999.99"), start_date=JAN
        )
    ChargeFactory(subscription__account__number="A00000002", start_date=JAN)

    run = run_to_end()

    assert run.has_errors and run.accounts_failed == 1
    assert list(run.failures.values_list("account__number", "reason")) == [
        (
            "A00000001",
            "The document total 119,999,999,999,999,999.88 exceeds the largest amount "
            "a document can hold (9,999,999,999,999,999.99 in absolute value)",
        )
    ]
    assert list(Document.objects.values_list("account__number", flat=True)) == ["A00000002"]
    assert not Charge.objects.filter(
        subscription__account=too_large, charged_through_date__isnull=False
    ).exists()
    assert run.totals == {"USD": "100.00"}


def test_the_engine_refuses_a_total_at_the_limit_and_takes_one_below_it():
    assert engine.DOCUMENT_AMOUNT_LIMIT == 10**16
    at_limit = AccountFactory(number="A00000001")
    below = AccountFactory(number="A00000002")
    for account, second in ((at_limit, "0.01"), (below, "0.00")):
        OneTimeChargeFactory(
            subscription__account=account, amount=Decimal("9999999999999999.99"), start_date=JAN
        )
        OneTimeChargeFactory(subscription__account=account, amount=Decimal(second), start_date=JAN)

    run = run_to_end()

    assert list(run.failures.values_list("account__number", flat=True)) == ["A00000001"]
    assert Document.objects.get().amount == Decimal("9999999999999999.99")


def test_money_columns_are_integers_of_cents_on_sqlite():
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's storage")
    DocumentFactory(status=DocumentStatus.POSTED, amount=Decimal("19999999999999.98"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT amount, typeof(amount) FROM invoices_document")
        assert cursor.fetchone() == (1999999999999998, "integer")
