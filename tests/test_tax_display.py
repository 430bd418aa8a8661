"""Where a document's taxes show (issue 15): its page, its PDF, its email to
the customer, the run's tabs and their exports, the run's totals and its
owner's email. The documents come from real runs."""

import csv
import datetime
import io
import re
from decimal import Decimal

import openpyxl
import pytest
from django.urls import reverse

from billruns.services import bill_run_create, bill_run_execute
from customers.models import AccountTaxCode, TaxRate
from customers.services import tax_rate_set
from invoices.delivery import _body
from invoices.models import DocumentType, TenantSettings
from notifications.models import EmailDelivery, Outcome
from notifications.services import build_run_email
from tests.factories import AccountFactory, ChargeFactory, SubscriptionFactory
from tests.test_billrun_adjustments import remove

pytestmark = pytest.mark.django_db
D = datetime.date


def run(target):
    bill_run = bill_run_create(target_date=target, enqueue=False)
    return bill_run_execute(run_id=bill_run.pk)


@pytest.fixture
def taxed():
    """An account taxed STATE 6.25 % then CITY 0.3125 %, billed 29.97 a month."""
    tax_rate_set("STATE", "6.25", name="State tax")
    tax_rate_set("CITY", "0.3125", name="City tax")
    account = AccountFactory(bill_cycle_day=1)
    for position, code in enumerate(["STATE", "CITY"]):
        AccountTaxCode.objects.create(
            account=account, tax_rate=TaxRate.objects.get(code=code), position=position
        )
    charge = ChargeFactory(
        subscription=SubscriptionFactory(account=account, start_date=D(2026, 2, 1)),
        amount=Decimal("29.97"),
        start_date=D(2026, 2, 1),
    )
    return charge


@pytest.fixture
def invoice(taxed):
    bill_run = run(D(2026, 2, 1))
    return bill_run.documents.get()


@pytest.fixture
def credit_memo(taxed):
    TenantSettings.objects.update_or_create(id=1, defaults={"advanced_ar_settlement": True})
    run(D(2026, 2, 1))
    remove(taxed, D(2026, 2, 1))
    memo = run(D(2026, 3, 1)).documents.get()
    assert memo.document_type == DocumentType.CREDIT_MEMO
    return memo


def test_the_invoice_page_shows_subtotal_each_tax_line_and_total(client, viewer, invoice):
    client.force_login(viewer)
    page = client.get(reverse("invoices:detail", args=[invoice.number])).content.decode()
    assert 'data-testid="document-subtotal">29.97 USD<' in page
    assert page.count('data-testid="tax-line"') == 2
    assert 'State tax <span class="tax-code">(STATE, 6.25%)</span></dt><dd>1.87 USD' in page
    assert 'City tax <span class="tax-code">(CITY, 0.3125%)</span></dt><dd>0.09 USD' in page
    assert "<dt>Total</dt><dd>31.93 USD</dd>" in page
    # in the order of the account's codes
    assert page.index("(STATE,") < page.index("(CITY,")


def test_a_credit_memo_shows_its_negative_tax_as_a_positive_credit(client, viewer, credit_memo):
    client.force_login(viewer)
    page = client.get(reverse("invoices:detail", args=[credit_memo.number])).content.decode()
    assert 'data-testid="document-subtotal">29.97 USD<' in page
    assert "(STATE, 6.25%)</span></dt><dd>1.87 USD" in page
    assert "(CITY, 0.3125%)</span></dt><dd>0.09 USD" in page
    assert "<dt>Credit</dt><dd>31.93 USD</dd>" in page
    assert "-1.87" not in page and "−1.87" not in page


def test_the_pdf_shows_subtotal_each_tax_with_its_rate_and_total(invoice):
    pypdf = pytest.importorskip("pypdf")
    from invoices.pdf import PdfUnavailable, document_pdf

    try:
        content = document_pdf(document=invoice)
    except PdfUnavailable as exc:
        pytest.skip(str(exc))
    text = " ".join(
        page.extract_text() for page in pypdf.PdfReader(io.BytesIO(content)).pages
    ).replace("\n", " ")
    assert "Subtotal 29.97 USD" in text
    assert "State tax (STATE, 6.25%) 1.87 USD" in text
    assert "City tax (CITY, 0.3125%) 0.09 USD" in text
    assert "Total 31.93 USD" in text


def test_the_customers_email_lists_the_taxes(invoice, credit_memo):
    body = _body(invoice)
    assert "Subtotal: 29.97 USD\n" in body
    assert "State tax (STATE, 6.25%): 1.87 USD\n" in body
    assert "City tax (CITY, 0.3125%): 0.09 USD\n" in body
    assert "Amount: 31.93 USD\n" in body
    memo = _body(credit_memo)
    assert "State tax (STATE, 6.25%): 1.87 USD\n" in memo
    assert "Credit: 31.93 USD\n" in memo


def test_a_document_without_tax_emails_as_before(db):
    account = AccountFactory(bill_cycle_day=1)
    ChargeFactory(
        subscription=SubscriptionFactory(account=account, start_date=D(2026, 2, 1)),
        amount=Decimal("10.00"),
        start_date=D(2026, 2, 1),
    )
    body = _body(run(D(2026, 2, 1)).documents.get())
    assert "Subtotal" not in body and "Amount: 10.00 USD" in body


def test_the_run_tab_and_its_exports_carry_subtotal_tax_and_total(client, viewer, invoice):
    client.force_login(viewer)
    url = invoice.bill_run.get_absolute_url()
    page = client.get(url, {"tab": "invoices"}).content.decode()
    assert re.search(r"<th [^>]*>\s*Subtotal\s*</th>", page)
    assert re.search(r"<th [^>]*>\s*Tax\s*</th>", page)
    assert ">1.96<" in page

    rows = list(
        csv.reader(
            io.StringIO(client.get(url, {"tab": "invoices", "_export": "csv"}).content.decode())
        )
    )
    header, row = rows[0], rows[1]
    assert [row[header.index(name)] for name in ("Subtotal", "Tax", "Amount")] == [
        "29.97",
        "1.96",
        "31.93",
    ]

    sheet = openpyxl.load_workbook(
        io.BytesIO(client.get(url, {"tab": "invoices", "_export": "xlsx"}).content)
    ).active
    names = [cell.value for cell in sheet[1]]
    values = [cell.value for cell in sheet[2]]
    assert [str(values[names.index(name)]) for name in ("Subtotal", "Tax", "Amount")] == [
        "29.97",
        "1.96",
        "31.93",
    ]


def test_the_invoice_list_export_carries_a_credit_memos_tax_as_a_credit(
    client, viewer, credit_memo
):
    client.force_login(viewer)
    rows = list(
        csv.reader(
            io.StringIO(client.get("/billing/invoices/", {"_export": "csv"}).content.decode())
        )
    )
    header = rows[0]
    memo = next(row for row in rows[1:] if row[header.index("Number")] == credit_memo.number)
    assert [memo[header.index(name)] for name in ("Subtotal", "Tax", "Amount")] == [
        "29.97",
        "1.96",
        "31.93",
    ]


def test_the_run_totals_show_their_tax_and_so_does_the_owners_email(client, viewer, credit_memo):
    bill_run = credit_memo.bill_run
    assert bill_run.totals == {"USD": "-31.93"}
    assert bill_run.tax_totals == {"USD": "-1.96"}
    client.force_login(viewer)
    page = client.get(bill_run.get_absolute_url()).content.decode()
    assert 'data-testid="run-tax-total">incl. tax -1.96<' in page

    message = build_run_email(EmailDelivery(bill_run=bill_run, outcome=Outcome.COMPLETED))
    assert "-31.93 USD (incl. tax -1.96 USD)" in message.body
    assert "-31.93 USD (incl. tax -1.96 USD)" in message.alternatives[0][0]
