"""The document page, the subscription page, the account page and the run's
invoices tab (a row expanded to its items) of an
account billed for a quantity and for usage (issue 13): each fits 1366 and
390 px with its ratings wrapped, not scrolling sideways. Screenshots in
tests/screenshots/usage-<page>-<width>.png; the PDF's sheet as Chromium
prints it in usage-pdf-sheet.png."""

import pytest
from playwright.sync_api import expect

from invoices.pdf import document_pdf, document_pdf_html
from tests.billed_usage import RATING_CALLS as RATING
from tests.billed_usage import billed_usage
from tests.browser.conftest import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTHS = {1366: 768, 390: 844}


def paths():
    subscription, _seats, _calls, invoice = billed_usage()
    return {
        "document": f"/billing/invoices/{invoice.number}/",
        "subscription": f"/billing/subscriptions/{subscription.number}/",
        "account": f"/billing/accounts/{subscription.account.number}/",
        "run": invoice.bill_run.get_absolute_url(),
    }


@pytest.mark.parametrize("width", list(WIDTHS))
def test_the_usage_pages_fit_with_their_ratings_wrapped(
    page, live_server, sign_in, browser_clerk, screenshot, width
):
    urls = paths()
    page.set_viewport_size({"width": width, "height": WIDTHS[width]})
    sign_in("clerk")
    for name, path in urls.items():
        page.goto(f"{live_server.url}{path}")
        expect(page.locator("h1").first).to_be_visible()
        if name == "run":
            page.get_by_test_id("document-expand").first.click()
            expect(page.get_by_test_id("document-items").first).to_be_visible()
            page.evaluate("window.scrollTo(0, 0)")
        screenshot(f"usage-{name}-{width}")
        scroll_width, inner_width = page.evaluate(
            "() => [document.documentElement.scrollWidth, window.innerWidth]"
        )
        assert scroll_width <= inner_width, f"{name} is {scroll_width} px wide at {inner_width}"
        for rating in page.get_by_test_id("item-rating").all():
            # Wrapped inside its cell, and the cell inside the screen.
            assert rating.evaluate("el => el.scrollWidth <= el.clientWidth")
            box = rating.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= inner_width, (name, box)
        # The items and charges show their amounts and dates without
        # scrolling, on a phone too.
        table = {"document": ".items-table", "run": ".data-table"}.get(name, ".charges-table")
        scroller = page.locator(table).first.locator("xpath=..")
        assert scroller.evaluate("el => el.scrollWidth <= el.clientWidth"), name
        if name in ("document", "subscription", "run"):
            expect(page.get_by_text(RATING).first).to_be_visible()


def test_the_pdf_in_chromiums_viewer(page, screenshot, tmp_path):
    """The PDF itself, as WeasyPrint made it, shown by Chromium's viewer at
    160 % (usage-pdf-160.png), to look at: the viewer draws on a canvas, so
    this only checks that it opened the document as a PDF."""
    _subscription, _seats, _calls, invoice = billed_usage()
    pdf = tmp_path / f"{invoice.number}.pdf"
    pdf.write_bytes(document_pdf(document=invoice))
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(f"{pdf.as_uri()}#zoom=160")
    assert page.evaluate("document.contentType") == "application/pdf"
    page.wait_for_timeout(2000)  # the viewer draws the page after it loads
    page.screenshot(path=SCREENSHOTS / "usage-pdf-160.png")


def test_the_pdf_sheet_as_printed(page, screenshot):
    _subscription, _seats, _calls, invoice = billed_usage()
    page.set_viewport_size({"width": 794, "height": 1123})  # A4 at 96 dpi
    page.emulate_media(media="print")
    page.set_content(document_pdf_html(invoice))
    screenshot("usage-pdf-sheet")
    expect(page.get_by_text(RATING)).to_be_visible()
