import datetime

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from billruns.models import BillRun, RunStatus
from invoices.models import DeliveryStatus, Document, DocumentDelivery, DocumentStatus
from tests.view_data import executed_run, run_row

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_sign_in_and_see_the_bill_run_list(page, live_server, sign_in, browser_clerk, screenshot):
    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(f"{live_server.url}/accounts/login/?next=/billing/bill-runs/")
    screenshot("sign-in")

    sign_in("clerk")

    expect(page.get_by_role("heading", name="Bill Runs")).to_be_visible()
    expect(page.get_by_role("link", name="New bill run")).to_be_visible()


def test_list_shows_the_alert_icon_for_a_run_with_failures_only(
    page, live_server, sign_in, browser_viewer, screenshot
):
    # The clean run goes first: a later run selects every account, the
    # failing one included.
    clean = executed_run(clean=1)
    failed = executed_run(clean=2, without_contact=1)
    sign_in("viewer")

    failed_row = page.locator(f'[data-testid="billrun-row"][data-number="{failed.number}"]')
    clean_row = page.locator(f'[data-testid="billrun-row"][data-number="{clean.number}"]')
    expect(failed_row.get_by_test_id("billrun-status")).to_have_text("Completed")
    alert = failed_row.get_by_test_id("billrun-alert")
    expect(alert).to_be_visible()
    expect(alert).to_have_attribute("title", "Completed with errors")
    expect(alert).to_have_attribute("aria-label", "Completed with errors")
    expect(clean_row.get_by_test_id("billrun-alert")).to_have_count(0)

    details = page.locator(f"#run-details-{failed.pk}")
    expect(details).to_be_hidden()
    failed_row.get_by_test_id("billrun-expand").click()
    expect(failed_row.get_by_test_id("billrun-expand")).to_have_attribute("aria-expanded", "true")
    expect(details).to_be_visible()
    expect(details.get_by_test_id("billrun-alert")).to_be_visible()
    expect(details).to_contain_text("All batches; bill cycle day all")
    expect(details).to_contain_text("4 processed of 4 selected, 1 failed")
    screenshot("bill-run-list")


def test_run_page_shows_the_banner_and_the_failed_accounts(
    page, live_server, sign_in, browser_viewer, screenshot
):
    run = executed_run(clean=2, without_contact=1)
    failure = run.failures.select_related("account").get()
    sign_in("viewer")

    page.goto(f"{live_server.url}/billing/bill-runs/{run.number}/")
    expect(
        page.get_by_text("1 account failed to generate invoices and was not billed.")
    ).to_be_visible()
    expect(page.get_by_test_id("post-billrun")).to_have_count(0)
    screenshot("bill-run-page")

    page.get_by_test_id("failures-tab").click()
    rows = page.get_by_test_id("failure-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(failure.account.number)
    expect(rows.first).to_contain_text(failure.account.name)
    expect(rows.first).to_contain_text("Bill-to contact is missing")
    screenshot("bill-run-failures")

    rows.first.get_by_role("link", name=failure.account.number).click()
    expect(page.get_by_test_id("account-failure-row")).to_contain_text(run.number)
    screenshot("account-page")


def test_post_confirm_and_the_status_reads_posted(
    page, live_server, sign_in, browser_clerk, screenshot
):
    run = executed_run(clean=2)
    sign_in("clerk")
    page.goto(f"{live_server.url}/billing/bill-runs/{run.number}/")

    page.get_by_test_id("post-billrun").click()
    dialog = page.locator("dialog#post")
    expect(dialog).to_be_visible()
    screenshot("post-confirmation")
    dialog.get_by_role("button", name="Post bill run").click()

    expect(page.get_by_test_id("billrun-status")).to_have_text("Posted")
    expect(page.get_by_test_id("post-billrun")).to_have_count(0)
    run.refresh_from_db()
    assert run.status == RunStatus.POSTED


def test_dismissing_the_confirmation_posts_nothing(page, live_server, sign_in, browser_clerk):
    run = executed_run(clean=1)
    sign_in("clerk")
    page.goto(f"{live_server.url}/billing/bill-runs/{run.number}/")

    page.get_by_test_id("post-billrun").click()
    page.locator("dialog#post").get_by_role("button", name="Keep as is").click()

    expect(page.locator("dialog#post")).to_be_hidden()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED


def test_a_viewer_sees_no_post_button(page, live_server, sign_in, browser_viewer):
    run = executed_run(clean=1)
    sign_in("viewer")
    page.goto(f"{live_server.url}/billing/bill-runs/{run.number}/")
    expect(page.get_by_test_id("billrun-status")).to_have_text("Completed")
    expect(page.get_by_test_id("post-billrun")).to_have_count(0)
    expect(page.get_by_test_id("cancel-billrun")).to_have_count(0)


def test_the_whole_run_page_moves_on_together_while_the_run_processes(
    page, live_server, sign_in, browser_viewer, screenshot
):
    run = run_row(status=RunStatus.PENDING)
    sign_in("viewer")
    page.goto(f"{live_server.url}/billing/bill-runs/{run.number}/")
    status = page.get_by_test_id("billrun-status")
    expect(status).to_have_text("Pending")

    # A worker starts it: badge, Started, counters and bar change at once.
    BillRun.objects.filter(pk=run.pk).update(
        status=RunStatus.PROCESSING,
        started_at=timezone.now(),
        accounts_selected=6000,
        accounts_processed=4000,
    )
    progress = page.get_by_test_id("billrun-progress")
    expect(progress).to_have_attribute("value", "4000")
    expect(status).to_have_text("Processing")
    expect(page.get_by_test_id("run-started")).not_to_have_text("—")
    expect(page.get_by_test_id("stat-processed")).to_have_text("4000")
    expect(page.get_by_text("of 6000 selected")).to_be_visible()
    screenshot("bill-run-processing")

    BillRun.objects.filter(pk=run.pk).update(status=RunStatus.COMPLETED, accounts_processed=6000)
    expect(status).to_have_text("Completed")
    expect(progress).to_have_count(0)
    # Settled: the page polls no more.
    expect(page.locator("[hx-trigger]")).to_have_count(0)


def test_posting_shows_documents_posted(page, live_server, sign_in, browser_viewer):
    run = run_row(status=RunStatus.POST_IN_PROGRESS, documents=4, accounts_selected=6000)
    sign_in("viewer")
    page.goto(f"{live_server.url}/billing/bill-runs/{run.number}/")
    expect(page.get_by_test_id("billrun-progress-text")).to_have_text("0 of 4 documents posted")

    first, second = run.documents.order_by("id")[:2]
    Document.objects.filter(pk__in=[first.pk, second.pk]).update(status=DocumentStatus.POSTED)
    expect(page.get_by_test_id("billrun-progress-text")).to_have_text("2 of 4 documents posted")


def test_the_post_dialog_tells_of_failures_and_past_due_documents(
    page, live_server, sign_in, browser_clerk, screenshot
):
    run = run_row(status=RunStatus.COMPLETED, failures=3, documents=2)
    run.documents.update(due_date=timezone.localdate() - datetime.timedelta(days=1))
    sign_in("clerk")
    page.goto(f"{live_server.url}/billing/bill-runs/{run.number}/")
    expect(page.get_by_test_id("cancel-billrun")).to_be_visible()

    page.get_by_test_id("post-billrun").click()
    dialog = page.locator("dialog#post")
    expect(dialog.get_by_test_id("post-failures")).to_contain_text(
        "3 accounts failed and are not billed by posting"
    )
    expect(dialog.get_by_test_id("post-past-due")).to_contain_text("2 of them are due before today")
    screenshot("post-confirmation-warnings")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot("post-confirmation-warnings-390")


def test_the_run_page_follows_the_customer_emails(
    page, live_server, sign_in, browser_viewer, screenshot
):
    run = run_row(status=RunStatus.POSTED, documents=3)
    run.documents.update(status=DocumentStatus.POSTED)
    first, second, third = run.documents.order_by("id")
    DocumentDelivery.objects.create(
        document=first, to_address="ap@example.com", status=DeliveryStatus.SENT, attempts=1
    )
    sign_in("viewer")
    page.goto(f"{live_server.url}/billing/bill-runs/{run.number}/")
    emails = page.get_by_test_id("customer-emails")
    expect(emails).to_contain_text("1 of 3 posted documents done")

    DocumentDelivery.objects.create(
        document=second, to_address="ap@example.com", status=DeliveryStatus.SENT, attempts=1
    )
    DocumentDelivery.objects.create(
        document=third,
        to_address="ap@example.com",
        status=DeliveryStatus.FAILED,
        attempts=1,
        last_error="Connection refused",
    )
    expect(emails).to_contain_text("3 of 3 posted documents done")
    expect(page.get_by_test_id("customer-emails-counts")).to_contain_text("2 sent")
    expect(page.get_by_test_id("customer-emails-counts")).to_contain_text("1 failed")
    expect(page.locator("[hx-trigger]")).to_have_count(0)
    screenshot("bill-run-emails")


def test_new_bill_run_form_creates_a_run(page, live_server, sign_in, browser_clerk, screenshot):
    sign_in("clerk")
    page.get_by_role("link", name="New bill run").click()
    page.get_by_label("Target date").fill("2026-02-01")
    page.get_by_label("Batch3", exact=True).check()
    page.get_by_role("group", name="Charge types to exclude").get_by_label("Usage").check()
    screenshot("new-bill-run")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot("new-bill-run-phone")
    page.get_by_role("button", name="Create bill run").click()

    run = BillRun.objects.get()
    expect(page).to_have_url(f"{live_server.url}/billing/bill-runs/{run.number}/")
    assert run.batches == [3]
    assert run.exclude_charge_types == ["usage"]
    expect(page.get_by_test_id("run-excluded-charge-types")).to_have_text("Usage")
    screenshot("new-bill-run-created-phone")


def test_main_pages_for_screenshots(page, live_server, sign_in, browser_clerk, screenshot):
    run = executed_run(clean=3, without_contact=1)
    invoice = run.documents.order_by("number").first()
    sign_in("clerk")
    for name, path in [
        ("invoices", "/billing/invoices/"),
        ("invoice", f"/billing/invoices/{invoice.number}/"),
        ("accounts", "/billing/accounts/"),
        ("schedules", "/billing/schedules/"),
    ]:
        page.goto(f"{live_server.url}{path}")
        expect(page.locator("h1")).to_be_visible()
        screenshot(name)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/billing/bill-runs/{run.number}/")
    screenshot("bill-run-page-phone")
