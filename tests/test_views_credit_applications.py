"""A credit memo applied to an open invoice from its page (the admin's
service, credit_memo_apply): the credit memo lists what it was applied to,
the invoice the credit it received; bad input gets a clear message and
changes nothing. (The service's races: tests/test_credit_applications.py.)"""

import uuid
from decimal import Decimal

import pytest
from django.urls import reverse

from invoices.models import CreditApplication, Document, DocumentStatus, TenantSettings
from tests.factories import AccountFactory, CreditMemoFactory, DocumentFactory


@pytest.fixture
def advanced_ar(db):
    TenantSettings.objects.update_or_create(id=1, defaults={"advanced_ar_settlement": True})


@pytest.fixture
def account(db):
    return AccountFactory()


@pytest.fixture
def credit_memo(account):
    return CreditMemoFactory(status=DocumentStatus.POSTED, account=account, amount=Decimal("30.00"))


@pytest.fixture
def invoice(account):
    return DocumentFactory(status=DocumentStatus.POSTED, account=account, amount=Decimal("100.00"))


def apply(client, credit_memo, invoice_number, amount, key=None):
    return client.post(
        reverse("invoices:credit_application_create", args=[credit_memo.number]),
        {"invoice": invoice_number, "amount": amount, "request_key": key or uuid.uuid4()},
    )


def state():
    return (
        sorted(Document.objects.values_list("number", "balance")),
        CreditApplication.objects.count(),
    )


def test_the_credit_memo_page_offers_the_open_invoices_of_its_account(
    client, clerk, advanced_ar, credit_memo, invoice
):
    other_currency = DocumentFactory(
        status=DocumentStatus.POSTED, account=credit_memo.account, currency="EUR"
    )
    draft = DocumentFactory(account=credit_memo.account)
    client.force_login(clerk)
    html = client.get(credit_memo.get_absolute_url()).content.decode()
    assert 'data-testid="apply-credit-form"' in html
    assert f'<option value="{invoice.number}">' in html
    assert other_currency.number not in html
    assert draft.number not in html


def test_a_clerk_applies_credit_and_both_pages_show_it(
    client, clerk, advanced_ar, credit_memo, invoice
):
    client.force_login(clerk)
    response = apply(client, credit_memo, invoice.number, "12.50")
    assert response.status_code == 302
    credit_memo.refresh_from_db()
    invoice.refresh_from_db()
    assert (credit_memo.balance, invoice.balance) == (Decimal("17.50"), Decimal("87.50"))
    application = CreditApplication.objects.get()
    assert application.applied_by == clerk
    memo_page = client.get(credit_memo.get_absolute_url()).content.decode()
    assert memo_page.count('data-testid="credit-application"') == 1
    assert f'to <a href="{invoice.get_absolute_url()}">{invoice.number}</a>' in memo_page
    invoice_page = client.get(invoice.get_absolute_url()).content.decode()
    assert invoice_page.count('data-testid="credit-applied"') == 1
    assert credit_memo.number in invoice_page


def test_the_same_form_sent_twice_applies_once(client, clerk, advanced_ar, credit_memo, invoice):
    client.force_login(clerk)
    key = uuid.uuid4()
    assert apply(client, credit_memo, invoice.number, "10.00", key).status_code == 302
    assert apply(client, credit_memo, invoice.number, "10.00", key).status_code == 302
    assert CreditApplication.objects.count() == 1


def test_more_than_the_open_balance_is_refused_with_a_message(
    client, clerk, advanced_ar, credit_memo, invoice
):
    client.force_login(clerk)
    before = state()
    response = apply(client, credit_memo, invoice.number, "30.01")
    assert response.status_code == 400
    assert (
        f"Credit of 30.01 exceeds the open balance 30.00 USD of credit memo {credit_memo.number}."
        in response.content.decode()
    )
    assert state() == before


def test_an_invoice_of_another_account_is_refused(client, clerk, advanced_ar, credit_memo):
    stranger = DocumentFactory(status=DocumentStatus.POSTED, account=AccountFactory())
    client.force_login(clerk)
    before = state()
    response = apply(client, credit_memo, stranger.number, "5.00")
    assert response.status_code == 400
    assert "belong to different accounts" in response.content.decode()
    assert state() == before


def test_an_invoice_in_another_currency_is_refused(client, clerk, advanced_ar, credit_memo):
    euros = DocumentFactory(
        status=DocumentStatus.POSTED, account=credit_memo.account, currency="EUR"
    )
    client.force_login(clerk)
    before = state()
    response = apply(client, credit_memo, euros.number, "5.00")
    assert response.status_code == 400
    assert "credit can only be applied in the same currency" in response.content.decode()
    assert state() == before


def test_an_unknown_invoice_and_a_bad_amount_are_refused_on_their_fields(
    client, clerk, advanced_ar, credit_memo
):
    client.force_login(clerk)
    before = state()
    response = apply(client, credit_memo, "INV99999999", "-1")
    assert response.status_code == 400
    errors = response.context["apply_form"].errors
    assert "There is no invoice INV99999999." in errors["invoice"]
    assert "amount" in errors
    assert state() == before


def test_without_advanced_ar_settlement_the_page_says_why_and_a_post_is_refused(
    client, clerk, credit_memo, invoice
):
    client.force_login(clerk)
    html = client.get(credit_memo.get_absolute_url()).content.decode()
    assert 'data-testid="apply-credit-form"' not in html
    assert "while Advanced AR Settlement is on" in html
    before = state()
    assert apply(client, credit_memo, invoice.number, "5.00").status_code == 400
    assert state() == before


def test_a_viewer_sees_no_form_and_is_refused(client, viewer, advanced_ar, credit_memo, invoice):
    client.force_login(viewer)
    html = client.get(credit_memo.get_absolute_url()).content.decode()
    assert 'data-testid="apply-credit-form"' not in html
    before = state()
    assert apply(client, credit_memo, invoice.number, "5.00").status_code == 403
    assert state() == before
