"""The account page as a clerk fixes a missing bill-to contact, on a laptop
and on a phone (issue 11, item 13)."""

import pytest
from playwright.sync_api import expect

from customers.models import Account
from tests.view_data import executed_run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


@pytest.mark.parametrize(("width", "height"), [(1366, 900), (390, 844)], ids=["1366", "390"])
def test_a_clerk_adds_the_missing_bill_to_contact(
    page, live_server, sign_in, browser_clerk, screenshot, width, height
):
    run = executed_run(clean=0, without_contact=1)
    account = run.failures.get().account
    page.set_viewport_size({"width": width, "height": height})
    sign_in("clerk")

    page.goto(f"{live_server.url}/billing/accounts/{account.number}/")
    expect(page.get_by_text("This account has no bill-to contact")).to_be_visible()
    screenshot(f"account-missing-contact-{width}")
    assert page.evaluate(OVERFLOW) <= 0

    form = page.get_by_test_id("bill-to-contact-form")
    form.get_by_label("Bill-to contact").fill("not an email")
    form.get_by_role("button", name="Save contact").click()
    expect(page.get_by_text("“not an email” is not a valid email address")).to_be_visible()
    screenshot(f"account-contact-refused-{width}")
    assert page.evaluate(OVERFLOW) <= 0

    page.get_by_test_id("bill-to-contact-form").get_by_label("Bill-to contact").fill(
        "ap@found.example"
    )
    page.get_by_role("button", name="Save contact").click()
    expect(page.get_by_text(f"The bill-to contact of {account.number} is now")).to_be_visible()
    expect(page.get_by_text("This account has no bill-to contact")).to_have_count(0)
    screenshot(f"account-contact-saved-{width}")
    assert page.evaluate(OVERFLOW) <= 0
    assert Account.objects.get(pk=account.pk).bill_to_email == "ap@found.example"


def test_a_viewer_sees_no_contact_form(page, live_server, sign_in, browser_viewer):
    run = executed_run(clean=0, without_contact=1)
    account = run.failures.get().account
    sign_in("viewer")
    page.goto(f"{live_server.url}/billing/accounts/{account.number}/")
    expect(page.get_by_text("This account has no bill-to contact")).to_be_visible()
    expect(page.get_by_test_id("bill-to-contact-form")).to_have_count(0)
