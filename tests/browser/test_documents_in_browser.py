"""A Draft invoice's page and the header's notices, as a clerk sees them
(issue 11, item 13)."""

import pytest
from playwright.sync_api import expect

from invoices.models import DocumentStatus
from notifications.models import Outcome, RunNotification
from tests.view_data import document_row, executed_run, run_row

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


@pytest.mark.parametrize(("width", "height"), [(1366, 900), (390, 844)], ids=["1366", "390"])
def test_a_draft_invoice_page_says_draft_on_its_sheet(
    page, live_server, sign_in, browser_clerk, screenshot, width, height
):
    draft = executed_run(clean=1).documents.get()
    page.set_viewport_size({"width": width, "height": height})
    sign_in("clerk")

    page.goto(f"{live_server.url}/billing/invoices/{draft.number}/")

    mark = page.locator(".document-sheet").get_by_test_id("draft-mark")
    expect(mark).to_be_visible()
    expect(mark).to_contain_text("DRAFT: not posted")
    screenshot(f"invoice-draft-{width}")
    assert page.evaluate(OVERFLOW) <= 0
    # The items' Amount column is in sight, not scrolled out of its table.
    items = page.locator(".document-sheet .table-scroll")
    assert items.evaluate("el => el.scrollWidth - el.clientWidth") <= 0
    expect(
        page.locator(".document-sheet").get_by_role("columnheader", name="Amount")
    ).to_be_in_viewport()


def test_a_posted_invoice_page_has_no_draft_mark(page, live_server, sign_in, browser_clerk):
    posted = document_row(status=DocumentStatus.POSTED)
    sign_in("clerk")
    page.goto(f"{live_server.url}/billing/invoices/{posted.number}/")
    expect(page.get_by_test_id("document-status")).to_have_text("Posted")
    expect(page.get_by_test_id("draft-mark")).to_have_count(0)


def test_mark_all_read_in_the_header(page, live_server, sign_in, browser_clerk, screenshot):
    for outcome in (Outcome.COMPLETED, Outcome.COMPLETED_WITH_ERRORS, Outcome.FAILED):
        RunNotification.objects.create(user=browser_clerk, bill_run=run_row(), outcome=outcome)
    sign_in("clerk")
    page.goto(f"{live_server.url}/billing/schedules/")
    expect(page.get_by_test_id("notifications-unread")).to_have_text("3")

    page.get_by_test_id("notifications").locator("summary").click()
    screenshot("notifications-open")
    page.get_by_test_id("notifications-mark-all-read").click()

    page.wait_for_url(f"{live_server.url}/billing/schedules/")
    expect(page.get_by_text("3 notifications marked read.")).to_be_visible()
    expect(page.get_by_test_id("notifications-unread")).to_have_count(0)
    assert not RunNotification.objects.filter(read_at__isnull=True).exists()
