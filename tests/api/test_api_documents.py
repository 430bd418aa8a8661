"""Documents, their PDFs and payments through the API."""

import datetime

import pytest

from invoices.models import Document, DocumentStatus, Payment
from tests.api.conftest import error_of
from tests.factories import AccountFactory, CreditMemoFactory, DocumentFactory, DocumentItemFactory


@pytest.fixture
def invoice(db):
    document = DocumentFactory(status=DocumentStatus.POSTED, amount="100.00")
    DocumentItemFactory(document=document)
    return document


@pytest.mark.django_db
def test_one_document_and_the_list(api, invoice):
    shown = api.get(f"/api/v1/documents/{invoice.number}/")
    assert shown.status_code == 200
    body = shown.json()
    assert (body["number"], body["status"], body["amount"], body["balance"]) == (
        invoice.number,
        "Posted",
        "100.00",
        "100.00",
    )
    assert len(body["items"]) == 1
    assert api.get("/api/v1/documents/").json() == {"results": [body], "next": None}
    error_of(api.get("/api/v1/documents/INV404/"), 404, "not_found")


@pytest.mark.django_db
def test_document_filters(api, invoice):
    other = AccountFactory(number="A-OTHER")
    memo = CreditMemoFactory(account=other, invoice_date=datetime.date(2026, 3, 1))

    def numbers(query):
        response = api.get(f"/api/v1/documents/?{query}")
        assert response.status_code == 200, response.content
        return [d["number"] for d in response.json()["results"]]

    assert numbers("account=A-OTHER") == [memo.number]
    assert numbers("type=invoice") == [invoice.number]
    assert numbers("status=Draft") == [memo.number]
    assert numbers("invoice_date_from=2026-02-15") == [memo.number]
    assert numbers("invoice_date_to=2026-02-15") == [invoice.number]
    assert numbers("bill_run=BR404") == []
    for bad in ("type=bill", "status=Open", "invoice_date_from=2026-02-30", "invoice_date_to=x"):
        error_of(api.get(f"/api/v1/documents/?{bad}"), 400, "invalid")


@pytest.mark.django_db
def test_the_pdf(api, invoice):
    response = api.get(f"/api/v1/documents/{invoice.number}/pdf/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    accepted = api.get(
        f"/api/v1/documents/{invoice.number}/pdf/", headers={"Accept": "application/pdf"}
    )
    assert accepted.status_code == 200
    missing = api.get("/api/v1/documents/INV404/pdf/", headers={"Accept": "application/pdf"})
    assert missing.status_code == 404
    assert b'"not_found"' in missing.content


@pytest.mark.django_db
def test_a_payment_is_recorded_by_the_key(api, invoice):
    # when
    response = api.post(
        f"/api/v1/documents/{invoice.number}/payments/",
        {"amount": "40.00", "date": "2026-02-10", "reference": "wire 17"},
    )
    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["document"], body["amount"], body["date"], body["reference"]) == (
        invoice.number,
        "40.00",
        "2026-02-10",
        "wire 17",
    )
    assert body["balance"] == "60.00"
    payment = Payment.objects.get()
    assert payment.created_by.username == "key:crm"
    assert str(Document.objects.get(pk=invoice.pk).balance) == "60.00"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"amount": "140.00", "date": "2026-02-10"}, 409, "refused"),
        ({"amount": "0", "date": "2026-02-10"}, 409, "refused"),
        ({"amount": "1.001", "date": "2026-02-10"}, 409, "refused"),
        ({"amount": 40, "date": "2026-02-10"}, 400, "invalid"),
        ({"amount": "40.00"}, 400, "invalid"),
        ({"amount": "40.00", "date": "2099-01-01"}, 409, "refused"),
        ({"amount": "40.00", "date": "2026-02-10", "method": "gold"}, 400, "invalid"),
        ({"amount": "40.00", "date": "2026-02-10", "fee": "1"}, 400, "invalid"),
    ],
)
def test_a_refused_payment_records_nothing(api, invoice, body, status, code):
    error_of(api.post(f"/api/v1/documents/{invoice.number}/payments/", body), status, code)
    assert not Payment.objects.exists()
    assert str(Document.objects.get(pk=invoice.pk).balance) == "100.00"


@pytest.mark.django_db
def test_a_draft_takes_no_payment(api):
    draft = DocumentFactory()
    error = error_of(
        api.post(
            f"/api/v1/documents/{draft.number}/payments/", {"amount": "1.00", "date": "2026-02-10"}
        ),
        409,
        "refused",
    )
    assert "payments can only be recorded against Posted invoices" in error["message"]


@pytest.mark.django_db
def test_a_viewer_reads_documents_but_records_no_payment(viewer_api, invoice):
    assert viewer_api.get(f"/api/v1/documents/{invoice.number}/").status_code == 200
    assert viewer_api.get(f"/api/v1/documents/{invoice.number}/pdf/").status_code == 200
    error_of(
        viewer_api.post(
            f"/api/v1/documents/{invoice.number}/payments/",
            {"amount": "1.00", "date": "2026-02-10"},
        ),
        403,
        "forbidden",
    )
    assert not Payment.objects.exists()
