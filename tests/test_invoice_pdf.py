"""An invoice or credit memo as a PDF at /billing/invoices/<number>/pdf/,
rendered from the same sheet as its page."""

import datetime
import re
import sys
import zlib
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from invoices.models import DocumentItem, DocumentStatus, DocumentType
from invoices.pdf import PdfUnavailable, document_pdf, document_pdf_html
from tests.billed_usage import billed_usage
from tests.factories import ChargeFactory, SubscriptionFactory
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


def page_texts(document):
    """The text laid out on each page of the document's PDF, its footer (a page
    margin box) included, as WeasyPrint renders it."""
    from weasyprint import HTML
    from weasyprint.formatting_structure.boxes import TextBox

    rendered = HTML(string=document_pdf_html(document)).render()
    return [
        " ".join(box.text for box in page._page_box.descendants() if isinstance(box, TextBox))
        for page in rendered.pages
    ]


def embedded_fonts(pdf):
    """The names of the fonts a PDF embeds (its objects are compressed)."""
    names = set()
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.DOTALL):
        try:
            data = zlib.decompress(stream)
        except zlib.error:
            data = stream
        names.update(re.findall(rb"/FontName\s*/[A-Z]{6}\+([A-Za-z0-9-]+)", data))
    return {name.decode() for name in names}


def with_items(document, count):
    subscription = SubscriptionFactory(account=document.account)
    charge = ChargeFactory(subscription=subscription)
    start = datetime.date(2020, 1, 1)
    DocumentItem.objects.bulk_create(
        DocumentItem(
            document=document,
            charge=charge,
            subscription=subscription,
            charge_name=charge.name,
            service_start=start + datetime.timedelta(days=i),
            service_end=start + datetime.timedelta(days=i),
            amount=Decimal("1.00"),
        )
        for i in range(count)
    )
    return document


def test_a_draft_pdf_says_draft_on_every_page_and_in_its_footer():
    # given: a draft long enough for several pages
    draft = with_items(document_row(status=DocumentStatus.DRAFT), 80)
    # when
    pages = page_texts(draft)
    # then
    assert len(pages) >= 2
    for number, text in enumerate(pages, start=1):
        assert "DRAFT" in text.split(), f"page {number}: {text[:200]}"
        assert f"DRAFT · {draft.number} · page {number} of {len(pages)}" in text
    assert "not posted" in pages[0]


def test_a_posted_pdf_has_no_draft_mark():
    posted = document_row(status=DocumentStatus.POSTED, posted_at=timezone.now())
    pages = page_texts(posted)
    assert all("DRAFT" not in text for text in pages)
    assert f"{posted.number} · page 1 of 1" in pages[0]


def test_a_canceled_pdf_says_canceled():
    canceled = document_row(status=DocumentStatus.CANCELED, canceled_at=timezone.now())
    text = page_texts(canceled)[0]
    assert "CANCELED" in text.split()
    assert f"CANCELED · {canceled.number} · page 1 of 1" in text


def test_the_pdf_is_in_one_sans_serif_font_footer_included():
    # The footer is a page margin box: it inherits from the root element, not
    # from the body, and came out in the default serif font.
    pdf = document_pdf(document=document_row(status=DocumentStatus.DRAFT))
    fonts = embedded_fonts(pdf)
    assert fonts, "no embedded font found"
    assert all(name.startswith("DejaVu-Sans") for name in fonts), fonts


def test_the_page_sheet_marks_a_draft_and_not_a_posted_document(client, viewer):
    draft = document_row(status=DocumentStatus.DRAFT)
    posted = document_row(status=DocumentStatus.POSTED, posted_at=timezone.now())
    client.force_login(viewer)

    draft_html = client.get(reverse("invoices:detail", args=[draft.number])).content.decode()
    posted_html = client.get(reverse("invoices:detail", args=[posted.number])).content.decode()

    assert 'data-testid="draft-mark"' in draft_html
    assert "DRAFT: not posted" in draft_html
    assert 'data-testid="draft-mark"' not in posted_html


# --- Quantities, units, unit prices and ratings (issue 13) -------------------


def laid_out_boxes(document):
    """Each text box of the document's PDF as (text, left, right, the right
    edge of the page's content area), as WeasyPrint lays it out."""
    from weasyprint import HTML
    from weasyprint.formatting_structure.boxes import TextBox

    rendered = HTML(string=document_pdf_html(document)).render()
    for page in rendered.pages:
        box = page._page_box
        for text in box.descendants():
            if isinstance(text, TextBox) and text.text.strip():
                right = text.position_x + text.width
                yield text.text, text.position_x, right, box.content_box_x() + box.width


def test_the_pdf_is_an_invoice_with_quantities_unit_prices_and_ratings():
    # given
    _subscription, seats, calls, invoice = billed_usage()
    # when
    text = " ".join(page_texts(invoice))
    # then
    for header in ("DESCRIPTION", "SERVICE PERIOD", "QTY", "UNIT PRICE", "AMOUNT"):
        assert header in text.upper()
    assert seats.number in text and calls.number in text
    assert "12,500 calls" in text and "10.00" in text
    assert "3 × 10.00 × 17/31 = 16.45" in text
    # a long rating wraps over lines: its words are all there
    assert "12,500 calls: 1,000 × 0 + 9,000 × 0.002 + 5.00 +" in text
    assert "2,500 × 0.001 = 25.50" in text


def test_a_long_rating_wraps_inside_the_page():
    _subscription, _seats, calls, invoice = billed_usage()
    DocumentItem.objects.filter(charge=calls).update(
        rating=" + ".join(["1,000,000 × 0.000123"] * 30) + " = 3,690.00",
        unit="gigabyte-hours-of-storage",
    )
    boxes = list(laid_out_boxes(invoice))
    assert any("1,000,000" in text for text, *_ in boxes)
    for text, left, right, content_right in boxes:
        assert left >= 0 and right <= content_right + 0.5, (text, left, right, content_right)
