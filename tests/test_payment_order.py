"""Payments are listed newest payment date first, then last recorded first,
wherever they are listed: the invoice page (test_views_invoices.py) and the
admin's payment list and invoice page."""

import datetime
import re
from decimal import Decimal

import pytest
from django.urls import reverse

from invoices.models import DocumentStatus, Payment
from tests.view_data import document_row

pytestmark = pytest.mark.django_db

# Recorded in this order (ids ascending), dated out of order.
RECORDED = [("R-mid", 10), ("R-late", 20), ("R-early", 1), ("R-late-2", 20)]
LISTED = ["R-late-2", "R-late", "R-mid", "R-early"]


@pytest.fixture
def invoice():
    invoice = document_row(status=DocumentStatus.POSTED, amount="100.00")
    for reference, day in RECORDED:
        Payment.objects.create(
            document=invoice,
            amount=Decimal("1.00"),
            payment_date=datetime.date(2026, 2, day),
            method="card",
            reference=reference,
        )
    return invoice


def references(html):
    return [ref for ref in re.findall(r"\b(R-[a-z0-9-]+)\b", html) if ref in LISTED]


def test_the_admin_payment_list_is_by_payment_date(admin_client, invoice):
    html = admin_client.get(reverse("admin:invoices_payment_changelist")).content.decode()
    assert references(html) == LISTED


def test_the_admin_invoice_page_lists_its_payments_by_payment_date(admin_client, invoice):
    url = reverse("admin:invoices_invoice_change", args=[invoice.pk])
    html = admin_client.get(url).content.decode()
    assert references(html) == LISTED
