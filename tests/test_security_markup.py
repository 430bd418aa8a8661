"""Markup in names is text: an account, subscription or charge named like an
HTML payload is escaped in every page, the run email, the admin and exports."""

import csv
import datetime
import io

import pytest
from django.core import mail
from django.urls import reverse

from billruns.models import BillRunFailure, Schedule
from invoices.models import DocumentItem, DocumentStatus, Payment
from notifications.services import run_finished_notify
from tests.factories import AccountFactory, ChargeFactory, SubscriptionFactory
from tests.view_data import TARGET, document_row, run_row

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
# What must never reach a page: the payloads' live tags.
RAW = ("<script>alert(1)", "<img src=x")
ESCAPED_SCRIPT = "&lt;script&gt;alert(1)&lt;/script&gt;"
ESCAPED_IMG = "&lt;img src=x onerror=alert(1)&gt;"


@pytest.fixture
def hostile(clerk):
    """Every name a user or an import can set, set to a payload. Numbers may
    not hold a slash (they are URL parts), so they carry the image payload."""
    account = AccountFactory(name=SCRIPT, number="A" + IMG, bill_to_email="ap@example.com")
    other = AccountFactory(name=IMG)
    subscription = SubscriptionFactory(account=account, number="S" + IMG)
    charge = ChargeFactory(subscription=subscription, name=SCRIPT)
    ChargeFactory(subscription=SubscriptionFactory(account=other), name=IMG)
    schedule = Schedule.objects.create(
        name=SCRIPT, owner=clerk, next_run_at=datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    )
    run = run_row(user=clerk, error_message=SCRIPT, account=account, schedule=schedule)
    run.subscriptions.add(subscription)
    invoice = document_row(bill_run=run, account=account, status=DocumentStatus.POSTED)
    document_row(bill_run=run, account=other)
    DocumentItem.objects.create(
        document=invoice,
        charge=charge,
        subscription=subscription,
        charge_name=SCRIPT,
        service_start=TARGET,
        service_end=TARGET,
        amount=invoice.amount,
    )
    Payment.objects.create(
        document=invoice, amount="1.00", payment_date=TARGET, method="check", reference=SCRIPT
    )
    for failed, subscription_ in ((account, subscription), (other, None)):
        BillRunFailure.objects.create(
            bill_run=run, account=failed, subscription=subscription_, reason=SCRIPT + IMG
        )
    return {"account": account, "other": other, "run": run, "invoice": invoice, "sched": schedule}


def assert_escaped(body, where):
    for raw in RAW:
        assert raw not in body, f"{where}: live markup {raw!r}"


def pages(h):
    run, account, invoice = h["run"], h["account"], h["invoice"]
    return [
        "/billing/bill-runs/",
        f"/billing/bill-runs/{run.number}/",
        f"/billing/bill-runs/{run.number}/?tab=failures",
        f"/billing/bill-runs/{run.number}/?tab=invoices",
        "/billing/invoices/",
        reverse("invoices:detail", args=[invoice.number]),
        "/billing/accounts/",
        reverse("customers:account_detail", args=[account.number]),
        reverse("customers:account_detail", args=[h["other"].number]),
        "/billing/schedules/",
        reverse("billruns:schedule_detail", args=[h["sched"].pk]),
        reverse("billruns:schedule_edit", args=[h["sched"].pk]),
    ]


def test_every_page_escapes_markup_in_names(client, superuser, hostile):
    client.force_login(superuser)
    shown = ""
    for url in pages(hostile):
        response = client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        assert_escaped(body, url)
        shown += body

    # the names were shown, as text
    assert ESCAPED_SCRIPT in shown
    assert ESCAPED_IMG in shown


def test_the_failures_tab_shows_names_and_reasons_as_text(client, superuser, hostile):
    client.force_login(superuser)

    body = client.get(f"/billing/bill-runs/{hostile['run'].number}/?tab=failures").content.decode()

    assert ESCAPED_SCRIPT in body  # the account's name
    assert ESCAPED_IMG in body  # the other account's name, and the reasons


def test_the_invoice_page_shows_charge_and_subscription_as_text(client, superuser, hostile):
    client.force_login(superuser)

    body = client.get(reverse("invoices:detail", args=[hostile["invoice"].number])).content.decode()

    assert ESCAPED_SCRIPT in body
    assert ESCAPED_IMG in body
    assert_escaped(body, "invoice page")


ADMIN_PAGES = [
    "customers_account",
    "customers_subscription",
    "customers_charge",
    "invoices_invoice",
    "invoices_documentitem",
    "billruns_billrun",
    "billruns_billrunfailure",
    "billruns_schedule",
]


@pytest.mark.parametrize("model", ADMIN_PAGES)
def test_the_admin_change_lists_escape_markup(client, superuser, hostile, model):
    client.force_login(superuser)

    response = client.get(reverse(f"admin:{model}_changelist"))

    assert response.status_code == 200
    assert_escaped(response.content.decode(), model)


def test_the_admin_change_pages_escape_markup(client, superuser, hostile):
    client.force_login(superuser)
    objects = {
        "customers_account": hostile["account"],
        "customers_subscription": hostile["account"].subscriptions.get(),
        "invoices_invoice": hostile["invoice"],
        "billruns_billrun": hostile["run"],
    }
    for model, obj in objects.items():
        response = client.get(reverse(f"admin:{model}_change", args=[obj.pk]))
        assert response.status_code == 200, model
        assert_escaped(response.content.decode(), model)


def test_the_run_email_escapes_markup_in_html_and_keeps_text_plain(
    hostile, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        run_finished_notify(run_id=hostile["run"].pk)

    (message,) = mail.outbox
    html = message.alternatives[0][0]
    assert_escaped(html, "email html")
    assert ESCAPED_SCRIPT in html
    assert ESCAPED_IMG in html
    # plain text is not HTML: the reason appears as written, not entity-encoded
    assert SCRIPT + IMG in message.body
    assert "&lt;" not in message.body
    assert "<" not in message.subject


def test_exports_carry_names_as_written(client, superuser, hostile):
    client.force_login(superuser)

    response = client.get("/billing/accounts/", {"_export": "csv"})

    cells = [c for row in csv.reader(io.StringIO(response.content.decode())) for c in row]
    assert SCRIPT in cells
    assert IMG in cells
    assert ESCAPED_SCRIPT not in cells


def test_the_printed_document_escapes_markup(hostile):
    """The PDF is rendered from this HTML: live markup here would let a name
    pull files or URLs into the PDF renderer."""
    from django.template.loader import render_to_string

    invoice = hostile["invoice"]
    html = render_to_string(
        "invoices/document_print.html",
        {"document": invoice, "items": invoice.items.select_related("subscription"), "issuer": "x"},
    )

    assert_escaped(html, "print sheet")
    assert ESCAPED_SCRIPT in html
