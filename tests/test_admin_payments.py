"""The admin's document actions: record a payment on a Posted invoice, apply a
credit memo to an invoice; the document deliveries and the audit columns."""

import datetime
from decimal import Decimal

import pytest
from django.urls import reverse

from invoices.models import (
    CreditApplication,
    Document,
    DocumentDelivery,
    DocumentStatus,
    Payment,
    TenantSettings,
)
from invoices.services import document_post
from tests.factories import AccountFactory, CreditMemoFactory, DocumentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def account():
    return AccountFactory()


@pytest.fixture
def invoice(account):
    return DocumentFactory(status=DocumentStatus.POSTED, account=account)


@pytest.fixture
def staff_clerk(client, clerk):
    clerk.is_staff = True
    clerk.save()
    client.force_login(clerk)
    return clerk


@pytest.fixture
def staff_viewer(client, viewer):
    viewer.is_staff = True
    viewer.save()
    client.force_login(viewer)
    return viewer


@pytest.fixture
def advanced_ar_settlement():
    settings = TenantSettings.load()
    settings.advanced_ar_settlement = True
    settings.save()
    return settings


def invoice_change_url(document):
    return reverse("admin:invoices_invoice_change", args=[document.pk])


def record_payment_url(document):
    return reverse("admin:invoices_invoice_record_payment", args=[document.pk])


def credit_memo_change_url(document):
    return reverse("admin:invoices_creditmemo_change", args=[document.pk])


def apply_url(document):
    return reverse("admin:invoices_creditmemo_apply", args=[document.pk])


def payment(amount, **fields):
    return {
        "amount": amount,
        "payment_date": "2026-02-10",
        "method": "bank_transfer",
        "reference": "WIRE-1",
        **fields,
    }


# Record payment


def test_a_posted_invoice_with_a_balance_offers_record_payment(client, staff_clerk, invoice):
    response = client.get(invoice_change_url(invoice))

    assert response.status_code == 200
    assert record_payment_url(invoice).encode() in response.content


def test_the_record_payment_page_renders_in_the_admin(client, staff_clerk, invoice):
    response = client.get(record_payment_url(invoice))

    assert response.status_code == 200
    assert b'id="site-name"' in response.content
    assert invoice.number.encode() in response.content
    assert response.context["adminform"].form.initial["amount"] == Decimal("100.00")


def test_it_records_a_payment_and_lowers_the_balance(client, staff_clerk, invoice):
    # when
    response = client.post(record_payment_url(invoice), payment("30.00"), follow=True)

    # then
    assert response.redirect_chain == [(invoice_change_url(invoice), 302)]
    assert f"Payment of 30.00 {invoice.currency} recorded on {invoice.number}." in [
        str(message) for message in response.context["messages"]
    ]
    invoice.refresh_from_db()
    assert invoice.balance == Decimal("70.00")
    recorded = Payment.objects.get(document=invoice)
    assert (recorded.amount, recorded.payment_date, recorded.method, recorded.reference) == (
        Decimal("30.00"),
        datetime.date(2026, 2, 10),
        "bank_transfer",
        "WIRE-1",
    )
    assert recorded.created_by == staff_clerk


def test_paying_the_whole_balance_leaves_no_button(client, staff_clerk, invoice):
    client.post(record_payment_url(invoice), payment("100.00"))

    invoice.refresh_from_db()
    assert invoice.balance == Decimal("0.00")
    assert invoice.display_status == "Paid"
    response = client.get(invoice_change_url(invoice))
    assert record_payment_url(invoice).encode() not in response.content


def test_an_amount_above_the_balance_shows_the_services_refusal(client, staff_clerk, invoice):
    response = client.post(record_payment_url(invoice), payment("100.01"))

    assert response.status_code == 200
    assert (
        f"Payment of 100.01 exceeds the open balance 100.00 {invoice.currency} of {invoice.number}."
    ) in response.context["adminform"].form.non_field_errors()
    assert b"exceeds the open balance" in response.content
    invoice.refresh_from_db()
    assert invoice.balance == Decimal("100.00")
    assert not Payment.objects.exists()


@pytest.mark.parametrize(
    "fields",
    [
        {"amount": "0"},
        {"amount": "-5.00"},
        {"amount": "abc"},
        {"amount": "1.001"},
        {"amount": ""},
        {"payment_date": "2026-02-30"},
        {"method": "barter"},
    ],
    ids=["zero", "negative", "not-a-number", "three-decimals", "missing", "bad-date", "method"],
)
def test_a_malformed_payment_is_refused_and_changes_nothing(client, staff_clerk, invoice, fields):
    response = client.post(record_payment_url(invoice), {**payment("10.00"), **fields})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert b"errornote" in response.content
    invoice.refresh_from_db()
    assert invoice.balance == Decimal("100.00")
    assert not Payment.objects.exists()


def test_a_draft_invoice_has_no_button_and_its_page_refuses(client, staff_clerk, account):
    draft = DocumentFactory(account=account, status=DocumentStatus.DRAFT)

    response = client.get(invoice_change_url(draft))
    assert response.status_code == 200
    assert record_payment_url(draft).encode() not in response.content

    response = client.get(record_payment_url(draft), follow=True)
    assert response.redirect_chain == [(invoice_change_url(draft), 302)]
    assert (
        f"{draft.number} is Draft: payments can only be recorded against Posted invoices "
        "with an open balance."
    ) in [str(message) for message in response.context["messages"]]

    response = client.post(record_payment_url(draft), payment("10.00"))
    assert response.status_code == 200
    assert (
        f"{draft.number} is Draft: payments can only be recorded against Posted invoices."
        in response.context["adminform"].form.non_field_errors()
    )
    draft.refresh_from_db()
    assert draft.balance == Decimal("100.00")
    assert not Payment.objects.exists()


def test_a_canceled_invoice_refuses_a_payment(client, staff_clerk, account):
    canceled = DocumentFactory(account=account, status=DocumentStatus.CANCELED)

    response = client.post(record_payment_url(canceled), payment("10.00"))

    assert b"is Canceled: payments can only be recorded" in response.content
    assert not Payment.objects.exists()


def test_a_staff_user_without_add_payment_is_forbidden(client, staff_viewer, invoice):
    response = client.get(invoice_change_url(invoice))
    assert response.status_code == 200
    assert record_payment_url(invoice).encode() not in response.content

    assert client.get(record_payment_url(invoice)).status_code == 403
    assert client.post(record_payment_url(invoice), payment("10.00")).status_code == 403
    invoice.refresh_from_db()
    assert invoice.balance == Decimal("100.00")
    assert not Payment.objects.exists()


def test_a_user_who_is_not_staff_is_sent_to_the_admin_sign_in(client, clerk, invoice):
    client.force_login(clerk)

    response = client.post(record_payment_url(invoice), payment("10.00"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert not Payment.objects.exists()


def test_an_unknown_invoice_goes_back_to_the_admin(client, staff_clerk):
    response = client.get(reverse("admin:invoices_invoice_record_payment", args=[999999]))

    assert response.status_code == 302
    assert not Payment.objects.exists()


# Apply a credit memo


@pytest.fixture
def credit_memo(account):
    return CreditMemoFactory(status=DocumentStatus.POSTED, account=account, amount=Decimal("30.00"))


def test_apply_is_offered_only_while_advanced_ar_settlement_is_on(client, staff_clerk, credit_memo):
    response = client.get(credit_memo_change_url(credit_memo))
    assert apply_url(credit_memo).encode() not in response.content
    response = client.get(apply_url(credit_memo), follow=True)
    assert response.redirect_chain == [(credit_memo_change_url(credit_memo), 302)]

    settings = TenantSettings.load()
    settings.advanced_ar_settlement = True
    settings.save()

    response = client.get(credit_memo_change_url(credit_memo))
    assert apply_url(credit_memo).encode() in response.content


def test_the_apply_page_lists_the_open_invoices_of_the_account_and_currency(
    client, staff_clerk, advanced_ar_settlement, account, credit_memo, invoice
):
    paid = DocumentFactory(status=DocumentStatus.POSTED, account=account)
    Document.objects.filter(pk=paid.pk).update(balance=0)
    draft = DocumentFactory(account=account, status=DocumentStatus.DRAFT)
    elsewhere = DocumentFactory(
        status=DocumentStatus.POSTED, account=AccountFactory(currency=account.currency)
    )

    response = client.get(apply_url(credit_memo))

    assert response.status_code == 200
    offered = dict(response.context["adminform"].form.fields["invoice"].widget.choices)
    assert set(offered) == {"", invoice.number}
    assert paid.number not in offered and draft.number not in offered
    assert elsewhere.number not in offered


def test_it_applies_a_credit_memo_and_lowers_both_balances(
    client, staff_clerk, advanced_ar_settlement, credit_memo, invoice
):
    # when
    response = client.post(
        apply_url(credit_memo), {"invoice": invoice.number, "amount": "25.00"}, follow=True
    )

    # then
    assert response.redirect_chain == [(credit_memo_change_url(credit_memo), 302)]
    assert f"25.00 {credit_memo.currency} of {credit_memo.number} applied to {invoice.number}." in [
        str(message) for message in response.context["messages"]
    ]
    credit_memo.refresh_from_db()
    invoice.refresh_from_db()
    assert (credit_memo.balance, invoice.balance) == (Decimal("5.00"), Decimal("75.00"))
    application = CreditApplication.objects.get()
    assert (application.credit_memo_id, application.invoice_id) == (credit_memo.pk, invoice.pk)
    assert application.applied_by == staff_clerk


def test_more_than_the_credit_memos_balance_shows_the_services_refusal(
    client, staff_clerk, advanced_ar_settlement, credit_memo, invoice
):
    response = client.post(apply_url(credit_memo), {"invoice": invoice.number, "amount": "30.01"})

    assert response.status_code == 200
    assert (
        f"Credit of 30.01 exceeds the open balance 30.00 {credit_memo.currency} "
        f"of credit memo {credit_memo.number}."
    ) in response.context["adminform"].form.non_field_errors()
    credit_memo.refresh_from_db()
    invoice.refresh_from_db()
    assert (credit_memo.balance, invoice.balance) == (Decimal("30.00"), Decimal("100.00"))
    assert not CreditApplication.objects.exists()


def test_an_invoice_of_another_account_shows_the_services_refusal(
    client, staff_clerk, advanced_ar_settlement, account, credit_memo
):
    other = DocumentFactory(
        status=DocumentStatus.POSTED, account=AccountFactory(currency=account.currency)
    )

    response = client.post(apply_url(credit_memo), {"invoice": other.number, "amount": "5.00"})

    assert b"belong to different accounts" in response.content
    assert not CreditApplication.objects.exists()


def test_an_unknown_invoice_number_is_refused(
    client, staff_clerk, advanced_ar_settlement, credit_memo
):
    response = client.post(apply_url(credit_memo), {"invoice": "INV99999999", "amount": "5.00"})

    assert response.status_code == 200
    assert (
        "There is no invoice INV99999999." in response.context["adminform"].form.errors["invoice"]
    )
    assert not CreditApplication.objects.exists()


def test_a_switch_turned_off_meanwhile_shows_the_services_refusal(
    client, staff_clerk, advanced_ar_settlement, credit_memo, invoice
):
    advanced_ar_settlement.advanced_ar_settlement = False
    advanced_ar_settlement.save()

    response = client.post(apply_url(credit_memo), {"invoice": invoice.number, "amount": "5.00"})

    assert b"only be applied while Advanced AR Settlement is on" in response.content
    assert not CreditApplication.objects.exists()


def test_a_staff_user_without_add_creditapplication_is_forbidden(
    client, staff_viewer, advanced_ar_settlement, credit_memo, invoice
):
    response = client.get(credit_memo_change_url(credit_memo))
    assert apply_url(credit_memo).encode() not in response.content

    assert client.get(apply_url(credit_memo)).status_code == 403
    response = client.post(apply_url(credit_memo), {"invoice": invoice.number, "amount": "5.00"})
    assert response.status_code == 403
    assert not CreditApplication.objects.exists()


# Deliveries and audit


def test_the_delivery_admin_and_the_documents_inline_render(client, staff_viewer, invoice):
    delivery = DocumentDelivery.objects.create(
        document=invoice, to_address="ap@example.com", status="failed", attempts=2
    )

    response = client.get(reverse("admin:invoices_documentdelivery_changelist"))
    assert response.status_code == 200
    assert b"ap@example.com" in response.content

    response = client.get(
        reverse("admin:invoices_documentdelivery_changelist"), {"q": invoice.number}
    )
    assert b"ap@example.com" in response.content

    response = client.get(reverse("admin:invoices_documentdelivery_change", args=[delivery.pk]))
    assert response.status_code == 200
    assert b'name="_save"' not in response.content

    response = client.get(invoice_change_url(invoice))
    assert b"ap@example.com" in response.content


def test_deliveries_are_read_only(client, staff_clerk, invoice):
    delivery = DocumentDelivery.objects.create(
        document=invoice, to_address="ap@example.com", status="failed"
    )
    url = reverse("admin:invoices_documentdelivery_change", args=[delivery.pk])

    assert client.post(url, {"status": "sent"}).status_code == 403
    assert client.get(reverse("admin:invoices_documentdelivery_add")).status_code == 403
    delivery.refresh_from_db()
    assert delivery.status == "failed"


def test_who_posted_a_document_shows_on_its_page_and_filters_the_list(client, staff_clerk, account):
    posted = DocumentFactory(account=account, status=DocumentStatus.DRAFT)
    document_post(document_id=posted.pk, user=staff_clerk)
    other = DocumentFactory(status=DocumentStatus.POSTED, account=account)

    response = client.get(invoice_change_url(posted))
    assert b"field-posted_by" in response.content
    assert staff_clerk.username.encode() in response.content

    response = client.get(
        reverse("admin:invoices_invoice_changelist"), {"posted_by__id__exact": staff_clerk.pk}
    )
    assert response.status_code == 200
    shown = {document.pk for document in response.context["cl"].result_list}
    assert shown == {posted.pk}
    assert other.pk not in shown


def test_submitting_the_apply_form_twice_applies_the_credit_once(
    client, staff_clerk, advanced_ar_settlement, credit_memo, invoice
):
    import re

    html = client.get(apply_url(credit_memo)).content.decode()
    key = re.search(r'name="request_key" value="([0-9a-f-]{36})"', html).group(1)
    form = {"invoice": invoice.number, "amount": "10.00", "request_key": key}

    client.post(apply_url(credit_memo), form)
    client.post(apply_url(credit_memo), form)

    assert CreditApplication.objects.count() == 1
    credit_memo.refresh_from_db()
    assert credit_memo.balance == Decimal("20.00")
