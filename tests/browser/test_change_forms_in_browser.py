"""The subscription page's change forms in a browser, on a laptop and on a
phone (issue 14): a clerk changes a price, sees what the next run makes (the
adjustments and the new pieces, the rules' worked example), confirms, and
the run then makes exactly that; the document's PDF names the adjustment.

Screenshots: tests/screenshots/change-*-<width>.png."""

import datetime
import io
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from billruns.services import bill_run_create, bill_run_execute
from customers.models import SubscriptionChange
from invoices.models import Document, DocumentItem
from invoices.pdf import document_pdf
from tests.factories import AccountFactory, ChargeFactory, SubscriptionFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

D = datetime.date
OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
# What the run of 2026-05-01 makes after the change (BILLING_RULES.md's example).
EXAMPLE = [
    ("adjustment", D(2026, 3, 11), D(2026, 3, 31), Decimal("-67.74")),
    ("adjustment", D(2026, 4, 1), D(2026, 4, 30), Decimal("-100.00")),
    ("charge", D(2026, 3, 11), D(2026, 3, 31), Decimal("108.39")),
    ("charge", D(2026, 4, 1), D(2026, 4, 30), Decimal("160.00")),
    ("charge", D(2026, 5, 1), D(2026, 5, 31), Decimal("160.00")),
]


def run(target):
    bill_run = bill_run_create(target_date=target, enqueue=False)
    return bill_run_execute(run_id=bill_run.pk)


@pytest.fixture
def pro_plan(monkeypatch):
    """BCD 1, Pro plan monthly 100.00 from 2026-03-01, March and April billed
    by the run of 2026-04-01; today is 2026-05-01 (the live server's thread
    reads the same patched day)."""
    monkeypatch.setattr("django.utils.timezone.localdate", lambda *args: D(2026, 5, 1))
    account = AccountFactory(
        bill_cycle_day=1, name="Northwind Traders International Holdings and Subsidiaries Limited"
    )
    subscription = SubscriptionFactory(account=account, start_date=D(2026, 3, 1))
    charge = ChargeFactory(
        subscription=subscription,
        name="Pro plan",
        amount=Decimal("100.00"),
        start_date=D(2026, 3, 1),
    )
    run(D(2026, 4, 1))
    return charge


@pytest.mark.parametrize(("width", "height"), [(1366, 900), (390, 844)], ids=["1366", "390"])
def test_a_clerk_changes_a_price_previews_the_adjustments_and_confirms(
    page, live_server, sign_in, browser_clerk, screenshot, pro_plan, width, height
):
    page.set_viewport_size({"width": width, "height": height})
    sign_in("clerk")
    subscription_url = f"{live_server.url}{pro_plan.subscription.get_absolute_url()}"
    page.goto(subscription_url)
    expect(page.get_by_test_id("billed-item")).to_have_count(2)
    screenshot(f"change-subscription-before-{width}")
    assert page.evaluate(OVERFLOW) <= 0

    # the charge's own link opens the form with the charge chosen
    page.get_by_test_id("charge-change-price").click()
    form = page.get_by_test_id("change-form")
    form.get_by_label("Effective date").fill("2026-03-11")
    form.get_by_label("New amount").fill("160.00")
    form.get_by_test_id("preview-change").click()

    preview = page.get_by_test_id("change-preview")
    expect(preview).to_be_visible()
    expect(preview.get_by_test_id("preview-adjustment")).to_have_count(2)
    expect(preview.get_by_test_id("preview-item")).to_have_count(3)
    expect(preview.get_by_text("Unused time on Pro plan, 11 Mar – 31 Mar 2026")).to_be_visible()
    amounts = [text.strip() for text in preview.get_by_test_id("preview-amount").all_inner_texts()]
    assert [a.replace("−", "-") for a in amounts] == [
        "-67.74",
        "-100.00",
        "108.39",
        "160.00",
        "160.00",
    ]
    expect(preview.get_by_test_id("preview-total")).to_contain_text("260.65")
    screenshot(f"change-preview-{width}")
    assert page.evaluate(OVERFLOW) <= 0
    assert not SubscriptionChange.objects.exists()  # a preview changes nothing

    page.get_by_test_id("confirm-change").click()
    page.wait_for_url(subscription_url)
    expect(page.locator(".message-success")).to_contain_text(
        "100.00 → 160.00 from 2026-03-11. The next bill run (target date 2026-05-01 or later) "
        "makes 2 adjustments and 3 new items for it."
    )
    expect(page.get_by_test_id("subscription-change")).to_have_count(1)
    expect(page.get_by_test_id("price-segment")).to_contain_text("from 2026-03-11")
    screenshot(f"change-confirmed-{width}")
    assert page.evaluate(OVERFLOW) <= 0

    # the run then makes what the preview showed, and the page marks its adjustments
    bill_run = run(D(2026, 5, 1))
    made = [
        (i.kind, i.service_start, i.service_end, i.amount)
        for i in DocumentItem.objects.filter(document__bill_run=bill_run).order_by(
            "kind", "service_start"
        )
    ]
    assert made == EXAMPLE
    page.reload()
    expect(page.get_by_test_id("adjustment-item")).to_have_count(2)
    screenshot(f"change-billed-{width}")
    assert page.evaluate(OVERFLOW) <= 0

    document = Document.objects.get(bill_run=bill_run)
    page.goto(f"{live_server.url}{document.get_absolute_url()}")
    expect(page.get_by_test_id("adjustment-item")).to_have_count(2)
    screenshot(f"change-document-{width}")
    assert page.evaluate(OVERFLOW) <= 0


def test_the_pdf_of_a_document_with_adjustments_names_them(pro_plan):
    from pypdf import PdfReader

    from billruns.changes import subscription_change_make
    from customers.changes import ChangeRequest

    request = ChangeRequest(
        path="changes[0]",
        change_type="change_price",
        charge=pro_plan.number,
        effective_date=D(2026, 3, 11),
        amount=Decimal("160.00"),
    )
    preview = subscription_change_make(request=request, user=None, today=D(2026, 5, 1))
    subscription_change_make(
        request=request, user=None, today=D(2026, 5, 1), confirm=preview.digest
    )
    document = Document.objects.get(bill_run=run(D(2026, 5, 1)))

    text = " ".join(
        page.extract_text() for page in PdfReader(io.BytesIO(document_pdf(document=document))).pages
    )

    words = " ".join(text.split())
    assert "Unused time on Pro plan, 11 Mar – 31 Mar 2026" in words
    assert "Unused time on Pro plan, 1 Apr – 30 Apr 2026" in words
    assert words.count("Adjustment") + words.count("ADJUSTMENT") >= 2
    assert "260.65" in words
