import threading
from decimal import Decimal

import pytest
from django.db import connection

from invoices.models import (
    CreditApplication,
    Document,
    DocumentStatus,
    TenantSettings,
)
from invoices.services import CreditApplicationRefused, credit_memo_apply
from tests.factories import AccountFactory, CreditMemoFactory, DocumentFactory


@pytest.fixture
def advanced_ar_settlement(db):
    settings = TenantSettings.load()
    settings.advanced_ar_settlement = True
    settings.save()
    return settings


@pytest.fixture
def account(db):
    return AccountFactory()


@pytest.fixture
def credit_memo(account):
    return CreditMemoFactory(status=DocumentStatus.POSTED, account=account, amount=Decimal("30.00"))


@pytest.fixture
def invoice(account):
    return DocumentFactory(status=DocumentStatus.POSTED, account=account, amount=Decimal("100.00"))


def balances(*documents):
    return [Document.objects.get(pk=document.pk).balance for document in documents]


def refusal(credit_memo, invoice, user, amount="10.00"):
    before = (balances(credit_memo, invoice), CreditApplication.objects.count())
    with pytest.raises(CreditApplicationRefused) as refused:
        credit_memo_apply(
            credit_memo_id=credit_memo.pk, invoice_id=invoice.pk, amount=amount, user=user
        )
    assert (balances(credit_memo, invoice), CreditApplication.objects.count()) == before
    return str(refused.value)


def test_applying_a_credit_memo_lowers_both_balances(
    advanced_ar_settlement, credit_memo, invoice, clerk
):
    # when
    application = credit_memo_apply(
        credit_memo_id=credit_memo.pk, invoice_id=invoice.pk, amount="12.50", user=clerk
    )
    # then
    application.refresh_from_db()
    assert application.credit_memo_id == credit_memo.pk
    assert application.invoice_id == invoice.pk
    assert application.amount == Decimal("12.50")
    assert application.applied_by == clerk
    assert balances(credit_memo, invoice) == [Decimal("17.50"), Decimal("87.50")]


def test_a_credit_memo_can_be_applied_until_used_up(
    advanced_ar_settlement, credit_memo, invoice, clerk
):
    credit_memo_apply(credit_memo_id=credit_memo.pk, invoice_id=invoice.pk, amount="20", user=clerk)
    credit_memo_apply(credit_memo_id=credit_memo.pk, invoice_id=invoice.pk, amount="10", user=clerk)

    assert balances(credit_memo, invoice) == [Decimal("0.00"), Decimal("70.00")]
    assert refusal(credit_memo, invoice, clerk, amount="0.01") == (
        f"Credit of 0.01 exceeds the open balance 0.00 USD of credit memo {credit_memo.number}."
    )


def test_applying_is_refused_without_advanced_ar_settlement(credit_memo, invoice, clerk):
    assert refusal(credit_memo, invoice, clerk) == (
        "Credit memos can only be applied while Advanced AR Settlement is on."
    )


def test_applying_to_an_invoice_of_another_account_is_refused(
    advanced_ar_settlement, credit_memo, clerk
):
    other_invoice = DocumentFactory(status=DocumentStatus.POSTED, account=AccountFactory())

    assert refusal(credit_memo, other_invoice, clerk) == (
        f"{credit_memo.number} and {other_invoice.number} belong to different accounts: "
        "a credit memo can only be applied to an invoice of its own account."
    )


def test_applying_to_an_invoice_in_another_currency_is_refused(
    advanced_ar_settlement, account, credit_memo, clerk
):
    euro_invoice = DocumentFactory(status=DocumentStatus.POSTED, account=account, currency="EUR")

    assert refusal(credit_memo, euro_invoice, clerk) == (
        f"{credit_memo.number} is in USD and {euro_invoice.number} in EUR: "
        "credit can only be applied in the same currency."
    )


def test_applying_a_draft_credit_memo_is_refused(advanced_ar_settlement, account, invoice, clerk):
    draft = CreditMemoFactory(account=account, status=DocumentStatus.DRAFT)

    assert refusal(draft, invoice, clerk) == (
        f"{draft.number} is Draft: credit can only be applied "
        "from a Posted credit memo to a Posted invoice."
    )


def test_applying_to_a_draft_invoice_is_refused(
    advanced_ar_settlement, account, credit_memo, clerk
):
    draft = DocumentFactory(account=account, status=DocumentStatus.DRAFT)

    assert refusal(credit_memo, draft, clerk) == (
        f"{draft.number} is Draft: credit can only be applied "
        "from a Posted credit memo to a Posted invoice."
    )


def test_applying_more_than_the_credit_memo_balance_is_refused(
    advanced_ar_settlement, credit_memo, invoice, clerk
):
    assert refusal(credit_memo, invoice, clerk, amount="30.01") == (
        f"Credit of 30.01 exceeds the open balance 30.00 USD of credit memo {credit_memo.number}."
    )


def test_applying_more_than_the_invoice_balance_is_refused(advanced_ar_settlement, account, clerk):
    big_credit = CreditMemoFactory(
        status=DocumentStatus.POSTED, account=account, amount=Decimal("500.00")
    )
    small_invoice = DocumentFactory(
        status=DocumentStatus.POSTED, account=account, amount=Decimal("20.00")
    )

    assert refusal(big_credit, small_invoice, clerk, amount="20.01") == (
        f"Credit of 20.01 exceeds the open balance 20.00 USD of invoice {small_invoice.number}."
    )


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("0", "Credit amount must be greater than 0, not 0."),
        ("-1.00", "Credit amount must be greater than 0, not -1.00."),
        ("1.001", "Credit amount 1.001 has more than 2 decimal places."),
        ("abc", "Credit amount 'abc' is not a number."),
    ],
)
def test_a_malformed_or_non_positive_credit_amount_is_refused(
    advanced_ar_settlement, credit_memo, invoice, clerk, amount, message
):
    assert refusal(credit_memo, invoice, clerk, amount=amount) == message


def test_applying_an_invoice_as_if_it_were_a_credit_memo_is_refused(
    advanced_ar_settlement, account, invoice, clerk
):
    another_invoice = DocumentFactory(status=DocumentStatus.POSTED, account=account)

    assert refusal(another_invoice, invoice, clerk) == (
        f"{another_invoice.number} is an invoice: only a credit memo can be applied."
    )


def test_applying_a_credit_memo_to_a_credit_memo_is_refused(
    advanced_ar_settlement, account, credit_memo, clerk
):
    another_credit_memo = CreditMemoFactory(status=DocumentStatus.POSTED, account=account)

    assert refusal(credit_memo, another_credit_memo, clerk) == (
        f"{another_credit_memo.number} is a credit memo: a credit memo can only be applied "
        "to an invoice."
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_applications_of_one_credit_memo_never_overdraw_it(superuser):
    # superuser, not clerk: a transactional test flushes the roles' groups.
    # given: a credit memo of 30.00 applied 10.00 at a time by 6 clerks at once,
    # to two invoices whose ids lie on both sides of the credit memo's
    account = AccountFactory()
    first_invoice = DocumentFactory(status=DocumentStatus.POSTED, account=account)
    credit_memo = CreditMemoFactory(
        status=DocumentStatus.POSTED, account=account, amount=Decimal("30.00")
    )
    second_invoice = DocumentFactory(status=DocumentStatus.POSTED, account=account)
    TenantSettings.objects.update_or_create(id=1, defaults={"advanced_ar_settlement": True})
    start = threading.Barrier(6)
    outcomes = []

    def apply(invoice):
        try:
            start.wait()
            credit_memo_apply(
                credit_memo_id=credit_memo.pk, invoice_id=invoice.pk, amount="10.00", user=superuser
            )
            outcomes.append("applied")
        except CreditApplicationRefused:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [
        threading.Thread(target=apply, args=(invoice,))
        for invoice in [first_invoice, second_invoice] * 3
    ]
    # when
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then
    assert sorted(outcomes) == ["applied"] * 3 + ["refused"] * 3
    cm_balance, first_balance, second_balance = balances(credit_memo, first_invoice, second_invoice)
    assert cm_balance == Decimal("0.00")
    assert first_balance + second_balance == Decimal("170.00")
