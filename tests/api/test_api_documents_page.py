"""The API's documents pages (billruns.selectors.documents_page_as_dicts:
on PostgreSQL one statement building each document's JSON) are exactly
what ``documents_as_dicts`` (``billrun show --json --documents``) shows."""

import json
from decimal import Decimal

import pytest

from billruns.selectors import documents_as_dicts, documents_page_as_dicts
from invoices.models import Document, DocumentTax
from tests.factories import CreditMemoFactory, DocumentFactory, DocumentItemFactory


@pytest.mark.django_db
def test_a_page_is_byte_for_byte_documents_as_dicts():
    # given an invoice of quantities with and without trailing zeros (and
    # none), taxed at a fractional rate and at 0; a credit memo's negative
    # lines; a document without items or taxes
    invoice = DocumentFactory(amount=Decimal("1234567.80"), subtotal=Decimal("1234567.05"))
    for quantity in (Decimal("12.500000"), Decimal("0"), Decimal("1000"), None):
        DocumentItemFactory(document=invoice, amount=Decimal("0.05"), quantity=quantity)
    DocumentTax.objects.create(
        document=invoice,
        position=1,
        code="ST",
        name="State",
        rate=Decimal("8.8750"),
        amount=Decimal("0.75"),
    )
    DocumentTax.objects.create(
        document=invoice,
        position=2,
        code="ZERO",
        name="Zero",
        rate=Decimal("0"),
        amount=Decimal("0.00"),
    )
    memo = CreditMemoFactory(amount=Decimal("10.00"), subtotal=Decimal("-10.00"))
    DocumentItemFactory(document=memo, quantity=Decimal("0.000125"))
    DocumentTax.objects.create(
        document=memo,
        position=1,
        code="VAT",
        name="VAT",
        rate=Decimal("20.0000"),
        amount=Decimal("-2.00"),
    )
    bare = DocumentFactory(amount=Decimal("0.00"))
    documents = Document.all_objects.filter(pk__in=[invoice.pk, memo.pk, bare.pk])
    # when
    page = sorted(documents_page_as_dicts(documents.order_by("pk")[:3].values("pk")))
    # then
    expected = documents_as_dicts(documents)
    assert [pk for pk, _ in page] == [invoice.pk, memo.pk, bare.pk]
    assert json.dumps([shown for _, shown in page]) == json.dumps(expected)
    assert [item["quantity"] for item in expected[0]["items"]] == ["12.5", "0", "1000", None]
    assert [tax["rate"] for tax in expected[0]["taxes"]] == ["8.875", "0"]
    assert expected[2]["items"] == expected[2]["taxes"] == []
