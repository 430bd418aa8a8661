"""An invoice or credit memo as a PDF at /billing/invoices/<number>/pdf/,
rendered from the same sheet as its page."""

import sys

import pytest
from django.urls import reverse

from invoices.models import DocumentStatus, DocumentType
from invoices.pdf import PdfUnavailable, document_pdf
from tests.view_data import document_row

pytestmark = pytest.mark.django_db


def pdf_url(document):
    return reverse("invoices:pdf", args=[document.number])


def test_it_serves_the_invoice_as_an_inline_pdf(client, viewer):
    # given
    invoice = document_row(status=DocumentStatus.POSTED)
    client.force_login(viewer)
    # when
    response = client.get(pdf_url(invoice))
    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'inline; filename="{invoice.number}.pdf"'
    assert response.content.startswith(b"%PDF")
    assert response.content.rstrip().endswith(b"%%EOF")


def test_it_serves_a_credit_memo_and_a_draft_too(client, viewer):
    memo = document_row(document_type=DocumentType.CREDIT_MEMO, amount="40.00")
    client.force_login(viewer)
    response = client.get(pdf_url(memo))
    assert response.status_code == 200
    assert response.content.startswith(b"%PDF")


def test_it_redirects_anonymous_users_to_sign_in(client):
    invoice = document_row()
    response = client.get(pdf_url(invoice))
    assert response.status_code == 302
    assert response.url.startswith("/accounts/login/")


def test_it_refuses_users_without_the_view_permission(client, django_user_model):
    invoice = document_row()
    client.force_login(django_user_model.objects.create_user("nobody", password="pw"))
    assert client.get(pdf_url(invoice)).status_code == 403


def test_an_unknown_number_is_404(client, viewer):
    client.force_login(viewer)
    assert client.get("/billing/invoices/INV99999999/pdf/").status_code == 404


def test_it_answers_503_with_a_clear_message_when_weasyprint_cannot_load(
    client, viewer, monkeypatch
):
    # given: importing weasyprint fails, as it does without its system libraries
    monkeypatch.setitem(sys.modules, "weasyprint", None)
    invoice = document_row()
    client.force_login(viewer)
    # when
    response = client.get(pdf_url(invoice))
    # then
    assert response.status_code == 503
    assert "PDF rendering is not available" in response.content.decode()
    assert "libpango" in response.content.decode()
    with pytest.raises(PdfUnavailable):
        document_pdf(document=invoice)


def test_the_invoice_page_links_to_its_pdf_and_shows_the_sheet(client, viewer):
    invoice = document_row(status=DocumentStatus.POSTED)
    client.force_login(viewer)
    html = client.get(reverse("invoices:detail", args=[invoice.number])).content.decode()
    assert pdf_url(invoice) in html
    assert "document-sheet" in html
    assert invoice.account.name in html
