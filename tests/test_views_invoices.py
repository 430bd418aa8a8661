import csv
import io

import pytest

from invoices.models import DocumentItem, DocumentStatus, DocumentType, Payment
from tests.factories import AccountFactory
from tests.view_data import document_row, executed_run, run_row

pytestmark = pytest.mark.django_db

LIST = "/billing/invoices/"


def page(document, suffix=""):
    return f"/billing/invoices/{document.number}/{suffix}"


def test_anonymous_users_are_sent_to_sign_in(client):
    assert client.get(LIST).url.startswith("/accounts/login/")


def test_search_by_number_and_by_account(client, viewer):
    acme = AccountFactory(name="Acme Corp")
    wanted = document_row(account=acme)
    other = document_row()
    client.force_login(viewer)

    html = client.get(LIST, {"q": wanted.number}).content.decode()
    assert wanted.number in html and other.number not in html

    # numbers are matched exactly, case included (INTERFACES.md)
    html = client.get(LIST, {"q": wanted.number.lower()}).content.decode()
    assert wanted.number not in html

    html = client.get(LIST, {"q": "acme"}).content.decode()
    assert wanted.number in html and other.number not in html

    html = client.get(LIST, {"account": acme.number}).content.decode()
    assert wanted.number in html and other.number not in html


def test_filters_by_status_type_run_and_date(client, viewer):
    run = run_row()
    draft = document_row(bill_run=run)
    posted = document_row(status=DocumentStatus.POSTED)
    memo = document_row(document_type=DocumentType.CREDIT_MEMO)
    paid = document_row(status=DocumentStatus.POSTED, balance=0)
    client.force_login(viewer)

    def listed(**params):
        html = client.get(LIST, params).content.decode()
        return {d.number for d in (draft, posted, memo, paid) if d.number in html}

    assert listed(status="Posted") == {posted.number, paid.number}
    assert listed(status="Paid") == {paid.number}
    assert listed(document_type="credit_memo") == {memo.number}
    assert listed(bill_run=run.number) == {draft.number}
    assert listed(date_from="2027-01-01") == set()
    assert listed(currency="usd") == {draft.number, posted.number, memo.number, paid.number}


def test_csv_export_keeps_the_filter(client, viewer):
    posted = document_row(status=DocumentStatus.POSTED)
    document_row()
    client.force_login(viewer)
    response = client.get(LIST, {"status": "Posted", "_export": "csv"})
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert [row[0] for row in rows[1:]] == [posted.number]


def test_list_queries_do_not_grow_with_rows(client, viewer, django_assert_max_num_queries):
    run = run_row()
    for _ in range(3):
        document_row(bill_run=run)
    client.force_login(viewer)
    with django_assert_max_num_queries(10) as few:
        client.get(LIST)
    for _ in range(20):
        document_row(bill_run=run)
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(LIST)


def test_invoice_page_shows_items_with_service_periods(client, viewer):
    run = executed_run(clean=1)
    invoice = run.documents.get()
    item = DocumentItem.objects.filter(document=invoice).first()
    client.force_login(viewer)

    html = client.get(page(invoice)).content.decode()

    assert invoice.account.name in html
    assert item.service_start.isoformat() in html
    assert 'data-testid="post-document"' not in html
    assert 'data-testid="record-payment"' not in html


def test_clerks_post_a_draft(client, clerk):
    invoice = document_row()
    client.force_login(clerk)
    assert 'data-testid="post-document"' in client.get(page(invoice)).content.decode()

    response = client.post(page(invoice, "post/"), follow=True)

    invoice.refresh_from_db()
    assert invoice.status == DocumentStatus.POSTED
    assert f"{invoice.number} is posted." in response.content.decode()


def test_posting_a_posted_invoice_is_refused(client, clerk):
    invoice = document_row(status=DocumentStatus.POSTED)
    client.force_login(clerk)
    response = client.post(page(invoice, "post/"), follow=True)
    assert "already Posted" in response.content.decode()


def test_viewers_cannot_post_or_pay(client, viewer):
    invoice = document_row(status=DocumentStatus.POSTED)
    client.force_login(viewer)
    assert client.post(page(invoice, "post/")).status_code == 403
    payment = {"amount": "10.00", "payment_date": "2026-02-10", "method": "card"}
    assert client.post(page(invoice, "payments/"), payment).status_code == 403
    assert not Payment.objects.exists()


def test_recording_a_payment_lowers_the_balance(client, clerk):
    invoice = document_row(status=DocumentStatus.POSTED, amount="100.00")
    client.force_login(clerk)
    assert 'data-testid="record-payment"' in client.get(page(invoice)).content.decode()

    response = client.post(
        page(invoice, "payments/"),
        {"amount": "40.00", "payment_date": "2026-02-10", "method": "card", "reference": "R1"},
    )

    assert response.status_code == 302
    invoice.refresh_from_db()
    assert str(invoice.balance) == "60.00"


def test_a_payment_over_the_balance_is_refused(client, clerk):
    invoice = document_row(status=DocumentStatus.POSTED, amount="100.00")
    client.force_login(clerk)
    response = client.post(
        page(invoice, "payments/"),
        {"amount": "140.00", "payment_date": "2026-02-10", "method": "card"},
        follow=True,
    )
    assert "exceeds the open balance" in response.content.decode()
    assert not Payment.objects.exists()


def test_a_bad_payment_form_is_shown_with_errors(client, clerk):
    invoice = document_row(status=DocumentStatus.POSTED)
    client.force_login(clerk)
    response = client.post(page(invoice, "payments/"), {"amount": "-5", "method": "gold"})
    assert response.status_code == 400
    assert "errorlist" in response.content.decode()
    assert not Payment.objects.exists()


def test_a_draft_invoice_offers_no_payment_form(client, clerk):
    invoice = document_row()
    client.force_login(clerk)
    html = client.get(page(invoice)).content.decode()
    assert 'data-testid="record-payment"' not in html
    assert "Payments can be recorded once the invoice is posted." in html


def test_credit_memo_page(client, viewer):
    memo = document_row(document_type=DocumentType.CREDIT_MEMO)
    client.force_login(viewer)
    html = client.get(page(memo)).content.decode()
    assert "Credit memo" in html and memo.number in html


def test_submitting_the_payment_form_twice_records_one_payment(client, clerk):
    import re

    from invoices.models import Payment

    invoice = document_row(status=DocumentStatus.POSTED, amount="100.00")
    client.force_login(clerk)
    html = client.get(page(invoice)).content.decode()
    key = re.search(r'name="request_key" value="([0-9a-f-]{36})"', html).group(1)
    form = {
        "amount": "40.00",
        "payment_date": "2026-02-10",
        "method": "card",
        "reference": "R1",
        "request_key": key,
    }

    first = client.post(page(invoice, "payments/"), form)
    second = client.post(page(invoice, "payments/"), form)

    assert (first.status_code, second.status_code) == (302, 302)
    assert Payment.objects.filter(document=invoice).count() == 1
    invoice.refresh_from_db()
    assert str(invoice.balance) == "60.00"
    # and the page draws a new key for the next payment
    again = client.get(page(invoice)).content.decode()
    assert key not in again


def count_sentence(html):
    import re

    found = re.search(r'data-testid="table-count">([^<]*)<', html)
    return found.group(1) if found else None


def test_the_list_says_which_documents_the_page_shows(client, viewer):
    # The invoices list never counts its rows (a lazy paginator): the total
    # shows once the last page is reached.
    account = AccountFactory()
    for _ in range(30):
        document_row(account=account)
    client.force_login(viewer)

    first = client.get(LIST).content.decode()
    last = client.get(LIST, {"page": 2}).content.decode()

    assert count_sentence(first) == "Showing documents 1–25, more on the next pages"
    assert count_sentence(last) == "Showing 26–30 of 30 documents"


def test_payments_are_listed_newest_payment_date_first_then_newest_recorded(client, viewer):
    import datetime
    import re
    from decimal import Decimal

    invoice = document_row(status=DocumentStatus.POSTED, amount="100.00")
    # Recorded in this order (ids ascending), dated out of order.
    for reference, day in [("R-mid", 10), ("R-late", 20), ("R-early", 1), ("R-late-2", 20)]:
        Payment.objects.create(
            document=invoice,
            amount=Decimal("1.00"),
            payment_date=datetime.date(2026, 2, day),
            method="card",
            reference=reference,
        )
    client.force_login(viewer)

    html = client.get(page(invoice)).content.decode()

    assert re.findall(r">(R-[a-z0-9-]+)<", html) == ["R-late-2", "R-late", "R-mid", "R-early"]
