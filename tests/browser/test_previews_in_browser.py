"""Preview runs in a browser, on a laptop and on a phone (issue 17): the new
run form's *Preview*, the preview badge in the list and on the page, the
Review tab of a preview (against the last real run) paged and filtered,
*Create this run* making the real run with the same parameters, and a
schedule's *Preview the next run*.

Tests run the task queue's tasks in the request (sync), so a run the page
makes is complete when the page comes back; ``execute_queued`` runs any left
Pending all the same, as the worker would. Screenshots: tests/screenshots/preview-*-<width>.png."""

import datetime
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from billruns import schedules
from billruns.models import BillRun, RunStatus
from billruns.services import bill_run_create, bill_run_execute
from tests.factories import AccountFactory, ChargeFactory, SubscriptionFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

D = datetime.date
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
# More accounts than a page of the Review tab (25), so it has a second page.
ACCOUNTS = 30


def execute_queued():
    """Execute the runs the pages queued, as the task queue's worker would."""
    for run in BillRun.objects.filter(status=RunStatus.PENDING):
        bill_run_execute(run_id=run.pk)


@pytest.fixture
def book(monkeypatch):
    """30 accounts billed monthly from 2026-02-01 by a posted run of
    2026-03-01; the price of every third one went up by half since; today
    is 2026-03-20."""
    monkeypatch.setattr("django.utils.timezone.localdate", lambda *args: D(2026, 3, 20))
    charges = []
    for number in range(ACCOUNTS):
        account = AccountFactory(
            number=f"A-{number:03d}",
            bill_cycle_day=1,
            name="Northwind Traders International Holdings and Subsidiaries Limited"
            if number == 0
            else f"Customer {number}",
        )
        charges.append(
            ChargeFactory(
                subscription=SubscriptionFactory(account=account, start_date=D(2026, 2, 1)),
                amount=Decimal("100.00"),
                start_date=D(2026, 2, 1),
            )
        )
    first = bill_run_execute(run_id=bill_run_create(target_date=D(2026, 3, 1), enqueue=False).pk)
    assert first.status == RunStatus.COMPLETED
    for charge in charges[::3]:
        charge.amount = Decimal("150.00")
        charge.save(update_fields=["amount"])
    return first


@pytest.mark.parametrize(("width", "height"), [(1366, 900), (390, 844)], ids=["1366", "390"])
def test_a_clerk_previews_reviews_and_creates_the_run(
    page, live_server, sign_in, browser_clerk, screenshot, book, width, height
):
    page.set_viewport_size({"width": width, "height": height})
    sign_in("clerk")

    # the new run form's Preview
    page.goto(f"{live_server.url}/billing/bill-runs/new/")
    page.get_by_label("Target date").fill("2026-04-01")
    screenshot(f"preview-form-{width}")
    page.get_by_test_id("preview-billrun").click()
    page.wait_for_url("**/billing/bill-runs/BR-*/")
    preview = BillRun.objects.get(preview=True)
    execute_queued()
    page.reload()
    expect(page.get_by_test_id("preview-badge")).to_have_count(1)
    expect(page.get_by_test_id("create-this-run")).to_be_visible()
    screenshot(f"preview-page-{width}")
    assert page.evaluate(OVERFLOW) <= 0

    # the list marks it
    page.goto(f"{live_server.url}/billing/bill-runs/")
    row = page.locator(f'[data-testid="billrun-row"][data-number="{preview.number}"]')
    expect(row.get_by_test_id("preview-badge")).to_be_visible()
    other = page.locator(f'[data-testid="billrun-row"][data-number="{book.number}"]')
    expect(other.get_by_test_id("preview-badge")).to_have_count(0)
    screenshot(f"preview-list-{width}")
    assert page.evaluate(OVERFLOW) <= 0

    # its Review tab: against the real run, which billed February and March
    # (200.00 an account): one month at 100.00 is -50 %, beyond the ±25 %
    # threshold; the 10 accounts at 150.00 are -25 %, within it

    page.goto(f"{live_server.url}/billing/bill-runs/{preview.number}/?tab=review#tabs")
    expect(page.get_by_test_id("review-against")).to_contain_text(book.number)
    expect(page.get_by_test_id("review-row")).to_have_count(25)
    expect(page.get_by_test_id("table-count")).to_have_text(f"Showing rows 1–25 of {ACCOUNTS}")
    screenshot(f"preview-review-{width}")
    assert page.evaluate(OVERFLOW) <= 0
    page.get_by_test_id("review-next").click()
    expect(page.get_by_test_id("table-count")).to_have_text(
        f"Showing rows 26–{ACCOUNTS} of {ACCOUNTS}"
    )
    expect(page.get_by_test_id("review-row")).to_have_count(ACCOUNTS - 25)
    page.get_by_test_id("review-previous").click()
    expect(page.get_by_test_id("table-count")).to_have_text(f"Showing rows 1–25 of {ACCOUNTS}")
    page.get_by_test_id("review-filter-changed").click()
    expect(page.get_by_test_id("review-row")).to_have_count(20)
    expect(page.get_by_test_id("table-count")).to_have_text("Showing all 20 accounts")
    for row in page.get_by_test_id("review-row").all():
        expect(row.locator('[data-flag="changed"]')).to_have_count(1)
        expect(row).to_contain_text("-50.0%")
    screenshot(f"preview-review-changed-{width}")

    # Create this run: the real run, with the same parameters
    page.goto(f"{live_server.url}/billing/bill-runs/{preview.number}/")
    page.get_by_test_id("create-this-run").click()
    page.wait_for_url(lambda url: preview.number not in url)
    real = BillRun.objects.get(preview=False, target_date=D(2026, 4, 1))
    for field in ("target_date", "invoice_date", "account_id", "batches", "bill_cycle_days"):
        assert getattr(real, field) == getattr(preview, field)
    execute_queued()
    page.reload()
    expect(page.get_by_test_id("preview-badge")).to_have_count(0)
    real.refresh_from_db()
    preview.refresh_from_db()
    assert real.status == RunStatus.COMPLETED
    assert (real.invoices_count, real.totals) == (preview.invoices_count, preview.totals)
    screenshot(f"preview-real-run-{width}")


@pytest.mark.parametrize(("width", "height"), [(1366, 900), (390, 844)], ids=["1366", "390"])
def test_a_schedules_page_previews_its_next_run(
    page, live_server, sign_in, browser_clerk, screenshot, book, width, height
):
    schedule = schedules.schedule_create(
        owner=browser_clerk,
        name="Monthly on the first",
        repeats="monthly",
        day_of_month=1,
        start_date=D(2026, 1, 1),
    )
    page.set_viewport_size({"width": width, "height": height})
    sign_in("clerk")
    page.goto(f"{live_server.url}/billing/schedules/{schedule.pk}/")
    screenshot(f"preview-schedule-{width}")
    assert page.evaluate(OVERFLOW) <= 0
    page.get_by_test_id("preview-next-run").click()
    page.wait_for_url("**/billing/bill-runs/BR-*/")
    preview = BillRun.objects.get(preview=True)
    assert preview.schedule_id is None and not preview.auto_post
    execute_queued()
    page.reload()
    expect(page.get_by_test_id("preview-badge")).to_have_count(1)
    page.goto(f"{live_server.url}/billing/bill-runs/{preview.number}/?tab=review#tabs")
    expect(page.get_by_test_id("review-against")).to_contain_text(book.number)
    screenshot(f"preview-schedule-review-{width}")
