"""The pages and the admin satisfy the Content-Security-Policy in Chromium:
no script, style or form that the policy refuses, on load, after htmx
swaps a refreshed part in, and when app.js opens a dialog."""

import contextlib

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from billruns.models import RunStatus, Schedule
from invoices.models import DocumentStatus
from tests.view_data import document_row, executed_run, run_row

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Kept on the window by every document the page loads; read before leaving it.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(
    `${event.violatedDirective} blocked ${event.blockedURI || "inline"} ` +
    `at ${event.sourceFile}:${event.lineNumber}`
  );
});
"""


@pytest.fixture
def violations(page):
    """Every violation the pages report, as events and as console errors."""
    found = []
    page.add_init_script(RECORD_VIOLATIONS)
    page.on(
        "console",
        lambda message: (
            found.append(f"console: {message.text}")
            if "Content Security Policy" in message.text
            else None
        ),
    )

    def collect():
        found.extend(page.evaluate("window.__cspViolations || []"))
        return found

    return collect


def settle(page):
    """Every script and style fetched and applied ("load"); then network idle
    (500 ms without a request, so htmx's first swaps land), waited for only
    briefly: under CI's load an admin page that had loaded once never got
    there in 30 s."""
    page.wait_for_load_state("load", timeout=30_000)
    with contextlib.suppress(PlaywrightTimeoutError):
        page.wait_for_load_state("networkidle", timeout=5_000)


def visit(page, url, violations):
    response = page.goto(url)
    assert response.status == 200, url
    assert "default-src 'self'" in response.headers["content-security-policy"], url
    settle(page)
    # styles and scripts are applied: the policy let them through
    assert page.evaluate("typeof window.htmx") == "object" or "/admin/" in url, url
    return violations()


def test_the_pages_and_the_admin_report_no_policy_violation(
    page, live_server, sign_in, browser_clerk, violations, screenshot
):
    run = executed_run(clean=2, without_contact=1)
    invoice = run.documents.first()
    posted = document_row(status=DocumentStatus.POSTED)
    schedule = Schedule.objects.create(name="Monthly batch 1", owner=browser_clerk)
    base = live_server.url

    assert visit(page, f"{base}/accounts/login/", violations) == []
    sign_in("clerk")
    pages = [
        "/billing/bill-runs/",
        "/billing/bill-runs/new/",
        f"/billing/bill-runs/{run.number}/",
        f"/billing/bill-runs/{run.number}/?tab=failures",
        "/billing/schedules/",
        "/billing/schedules/new/",
        f"/billing/schedules/{schedule.pk}/",
        "/billing/invoices/",
        f"/billing/invoices/{invoice.number}/",
        f"/billing/invoices/{posted.number}/",
        "/billing/accounts/",
        f"/billing/accounts/{invoice.account.number}/",
        "/admin/",
        "/admin/invoices/invoice/",
        f"/admin/invoices/invoice/{invoice.pk}/change/",
        "/admin/customers/account/",
        f"/admin/customers/account/{invoice.account.pk}/change/",
        "/admin/customers/account/add/",
        f"/admin/billruns/schedule/{schedule.pk}/change/",
        f"/admin/billruns/billrun/{run.pk}/change/",
    ]
    for path in pages:
        assert visit(page, f"{base}{path}", violations) == [], path
    screenshot("csp-admin-bill-run")

    # the admin's action confirmation page (its own template)
    page.goto(f"{base}/admin/invoices/invoice/")
    page.locator(f'input[name="_selected_action"][value="{invoice.pk}"]').check()
    page.locator('select[name="action"]').select_option("post_selected_documents")
    page.get_by_role("button", name="Go").click()
    settle(page)
    assert violations() == []


def test_a_refreshing_run_page_and_its_dialogs_report_no_policy_violation(
    page, live_server, sign_in, browser_clerk, violations, screenshot
):
    processing = run_row(status=RunStatus.PROCESSING, documents=0)
    completed = executed_run(clean=2)
    sign_in("clerk")

    # htmx replaces the progress panel every 2 s
    visit(page, f"{live_server.url}/billing/bill-runs/{processing.number}/", violations)
    with page.expect_response(lambda response: "/progress/" in response.url, timeout=10_000):
        pass
    settle(page)
    assert violations() == []

    # app.js opens the Post confirmation dialog
    visit(page, f"{live_server.url}/billing/bill-runs/{completed.number}/", violations)
    opener = page.locator("[data-dialog-open]").first
    opener.click()
    expect(page.locator("dialog[open]")).to_have_count(1)
    screenshot("csp-run-dialog")
    assert violations() == []

    # Chromium's viewer shows a PDF under the policy (object-src 'none' too)
    invoice = completed.documents.first()
    # (tests/test_security_headers.py checks the PDF's header; Chromium's
    # viewer reports its own headers to Playwright)
    page.goto(f"{live_server.url}/billing/invoices/{invoice.number}/pdf/", timeout=30_000)
    assert page.evaluate("document.contentType") == "application/pdf"
    page.wait_for_timeout(1500)
    screenshot("csp-invoice-pdf")
    assert violations() == []
