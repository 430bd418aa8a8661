"""Every page of the product fits a laptop (1366 px) and a phone (390 px):
nothing scrolls sideways (issue 11, item 9).

Each page is drawn with data that makes it wide: long names, big amounts,
totals in five currencies, failures, a retry and a canceled run. A full-page
screenshot of each is written to tests/screenshots/fit-<page>-<width>.png.
"""

import contextlib
import datetime
from decimal import Decimal

import pytest
from django.urls import NoReverseMatch, reverse
from playwright.sync_api import expect

from billruns import schedules
from billruns.models import RunStatus
from billruns.services import bill_run_cancel, bill_run_retry
from invoices.models import (
    DeliveryStatus,
    DocumentDelivery,
    DocumentStatus,
    DocumentType,
    UsageUpload,
)
from notifications.models import Outcome, RunNotification
from tests.factories import (
    AccountFactory,
    ChargeFactory,
    DocumentItemFactory,
    SubscriptionFactory,
    UsageChargeFactory,
    UsageRecordFactory,
)
from tests.view_data import document_row, executed_run, run_row

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTHS = {"laptop": (1366, 768), "phone": (390, 844)}
LONG_NAME = "Northwind Traders International Holdings and Subsidiaries Limited"


def wide_data(clerk):
    """The pages' data, and the paths of the pages that show it."""
    billed = AccountFactory(name=LONG_NAME, bill_to_email="accounts.payable@northwind.example")
    ChargeFactory(
        subscription=SubscriptionFactory(account=billed),
        name="Enterprise platform, annual commitment billed monthly",
        amount=Decimal("1234567.89"),
    )
    failed_run = executed_run(clean=2, without_contact=2, user=clerk)
    retry = bill_run_retry(run=failed_run, user=clerk, wait=True)
    canceled = executed_run(clean=1, user=clerk)
    bill_run_cancel(run=canceled, user=clerk)
    posted = run_row(
        status=RunStatus.POSTED,
        user=clerk,
        failures=8,
        documents=3,
        accounts_selected=6011,
        accounts_processed=6011,
        totals={
            "USD": "19999999999999.98",
            "EUR": "-1234567.89",
            "CAD": "5817.72",
            "GBP": "1000000.00",
            "CHF": "0.00",
        },
    )
    for document in posted.documents.all():
        document.status = DocumentStatus.POSTED
        document.save(update_fields=["status"])
        DocumentDelivery.objects.create(
            document=document,
            to_address=document.account.bill_to_email,
            status=DeliveryStatus.SENT,
            attempts=1,
        )
    document_row(
        bill_run=failed_run,
        document_type=DocumentType.CREDIT_MEMO,
        account=billed,
        amount="987654.32",
    )
    processing = run_row(
        status=RunStatus.PROCESSING, user=clerk, accounts_selected=6000, accounts_processed=4000
    )
    RunNotification.objects.create(user=clerk, bill_run=failed_run, outcome=Outcome.FAILED)
    schedule = schedules.schedule_create(
        owner=clerk,
        name="Month end for every batch and every bill cycle day, the long way",
        repeats="monthly",
        day_of_month=31,
        run_time=datetime.time(6, 30),
        time_zone="America/Argentina/ComodRivadavia",
        start_date=datetime.date(2026, 1, 1),
    )
    invoice = failed_run.documents.filter(account=billed, document_type=DocumentType.INVOICE)
    invoice = invoice.first() or failed_run.documents.order_by("id").first()
    credit_memo = failed_run.documents.get(document_type=DocumentType.CREDIT_MEMO)
    run_page = f"/billing/bill-runs/{failed_run.number}/"
    paths = {
        "bill-run-list": "/billing/bill-runs/",
        "run-invoices": run_page,
        "run-credit-memos": f"{run_page}?tab=credit-memos",
        "run-failures": f"{run_page}?tab=failures",
        "run-processing": f"/billing/bill-runs/{processing.number}/",
        "run-posted": f"/billing/bill-runs/{posted.number}/",
        "run-canceled": f"/billing/bill-runs/{canceled.number}/",
        "run-retry": f"/billing/bill-runs/{retry.number}/",
        "new-run": "/billing/bill-runs/new/",
        "schedule-list": "/billing/schedules/",
        "schedule-new": "/billing/schedules/new/",
        "schedule-edit": f"/billing/schedules/{schedule.pk}/edit/",
        "schedule-detail": f"/billing/schedules/{schedule.pk}/",
        "invoice-list": "/billing/invoices/",
        "invoice-detail": f"/billing/invoices/{invoice.number}/",
        "credit-memo-detail": f"/billing/invoices/{credit_memo.number}/",
        "account-list": "/billing/accounts/",
        "account-detail": f"/billing/accounts/{billed.number}/",
        "notifications": "/billing/bill-runs/",
        "not-found": "/billing/bill-runs/BR-NOPE/",
    }
    with contextlib.suppress(NoReverseMatch):
        paths["account-import"] = reverse("customers:account_import")
    paths.update(usage_pages(billed, clerk, invoice))
    return paths


def usage_pages(account, clerk, invoice):
    """The usage page with long names and ids, one record billed, and a
    refused upload whose problems quote long cells."""
    charge = UsageChargeFactory(
        subscription=SubscriptionFactory(account=account),
        name="Object storage, replicated across three regions, per gigabyte-month",
        unit="gigabyte-months",
        start_date=datetime.date(2026, 1, 1),
    )
    DocumentItemFactory(
        document=invoice,
        charge=charge,
        service_start=datetime.date(2026, 1, 1),
        service_end=datetime.date(2026, 1, 31),
    )
    for n, day in enumerate([5, 20, 40]):
        UsageRecordFactory(
            record_id=f"{'storage-meter-eu-west-' * 4}{n:010d}",
            charge=charge,
            date=datetime.date(2026, 1, 1) + datetime.timedelta(days=day),
            quantity=Decimal("123456789012.123456") / (n + 1),
        )
    upload = UsageUpload.objects.create(
        file_name=f"{'usage-export-from-the-metering-system-' * 3}january.csv",
        size=987654321,
        uploaded_by=clerk,
        status="Refused",
        problems=[
            f"line {n}, id: must be 1-100 printable ASCII characters, not {'x' * 40!r}... "
            "(100,000 characters)"
            for n in range(2, 102)
        ]
        + ["... and 12,345 more problems"],
    )
    return {"usage-list": "/billing/usage/", "usage-upload": upload.get_absolute_url()}


PAGES = [
    "bill-run-list",
    "run-invoices",
    "run-credit-memos",
    "run-failures",
    "run-processing",
    "run-posted",
    "run-canceled",
    "run-retry",
    "new-run",
    "schedule-list",
    "schedule-new",
    "schedule-edit",
    "schedule-detail",
    "invoice-list",
    "invoice-detail",
    "credit-memo-detail",
    "account-list",
    "account-detail",
    "account-import",
    "usage-list",
    "usage-upload",
    "notifications",
    "not-found",
]


def horizontal_overflow(page):
    return page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")


def open_extras(page, name):
    """What a clerk opens on some pages: the list's expanded rows, the
    header's notifications, the run's Post dialog."""
    if name == "bill-run-list":
        for button in page.get_by_test_id("billrun-expand").all():
            button.click()
    if name == "notifications":
        page.get_by_test_id("notifications").locator("summary").click()


def cases():
    for name in PAGES:
        for width in WIDTHS:
            yield pytest.param(name, width, id=f"{name}-{width}")


@pytest.mark.parametrize(("name", "width"), list(cases()))
def test_no_page_scrolls_sideways(
    page, live_server, sign_in, browser_clerk, screenshot, name, width
):
    paths = wide_data(browser_clerk)
    if name not in paths:
        pytest.skip(f"this build has no {name} page")
    page.set_viewport_size(dict(zip(("width", "height"), WIDTHS[width], strict=True)))
    sign_in("clerk")
    page.goto(f"{live_server.url}{paths[name]}")
    expect(page.locator("h1").first).to_be_visible()
    open_extras(page, name)

    page.evaluate("window.scrollTo(0, 0)")
    screenshot(f"fit-{name}-{WIDTHS[width][0]}")
    scroll_width, inner_width = horizontal_overflow(page)
    assert scroll_width <= inner_width, f"{name} is {scroll_width} px wide at {inner_width} px"
    if name == "notifications":
        # A panel off the left edge does not widen the page: check its box.
        box = page.locator(".notifications-panel").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= inner_width, box
    if name == "bill-run-list":
        scroller = page.locator(".table-scroll").first
        table_width, shown = scroller.evaluate("el => [el.scrollWidth, el.clientWidth]")
        assert table_width <= shown, f"the list is {table_width} px in {shown} px"


@pytest.mark.parametrize("width", list(WIDTHS))
def test_the_sign_in_page_fits(page, live_server, screenshot, width):
    page.set_viewport_size(dict(zip(("width", "height"), WIDTHS[width], strict=True)))
    page.goto(f"{live_server.url}/accounts/login/")
    screenshot(f"fit-sign-in-{WIDTHS[width][0]}")
    scroll_width, inner_width = horizontal_overflow(page)
    assert scroll_width <= inner_width


def test_the_bill_run_list_shows_every_column_at_1366_without_scrolling_the_table(
    page, live_server, sign_in, browser_clerk
):
    wide_data(browser_clerk)
    page.set_viewport_size({"width": 1366, "height": 768})
    sign_in("clerk")
    for button in page.get_by_test_id("billrun-expand").all():
        button.click()
    scroller = page.locator(".table-scroll").first
    scroll_width, client_width = scroller.evaluate("el => [el.scrollWidth, el.clientWidth]")
    assert scroll_width <= client_width, f"the table is {scroll_width} px in {client_width} px"
    created = page.get_by_role("columnheader", name="Created", exact=True).bounding_box()
    assert created["x"] + created["width"] <= 1366
    for failed in page.get_by_test_id("billrun-details").get_by_text("failed").all():
        box = failed.bounding_box()
        assert box["x"] + box["width"] <= 1366, "the expanded row's failed count is cut off"


def test_the_invoices_tables_show_the_amount_on_a_phone(
    page, live_server, sign_in, browser_clerk, screenshot
):
    paths = wide_data(browser_clerk)
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in("clerk")
    for name in ("invoice-list", "run-invoices"):
        page.goto(f"{live_server.url}{paths[name]}")
        header = page.get_by_role("columnheader", name="Amount")
        cell = page.get_by_test_id("document-row").first.locator("td.num:not(.phone-hidden)").first
        expect(header).to_be_visible()
        expect(cell).to_contain_text(" USD")  # the code beside it: Currency is hidden
        for box in (header.bounding_box(), cell.bounding_box()):
            assert box["x"] + box["width"] <= 390, f"{name}: the Amount column ends at {box}"
        screenshot(f"fit-{name}-amount-390")
