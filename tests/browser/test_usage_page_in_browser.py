"""The usage page as a clerk uploads a usage file, on a laptop and on a
phone: a refused file shows its lines' problems, the corrected one imports,
and the records appear in the list (issue 13, item 4). The task queue runs
its tasks inline in tests, so the upload's page shows the outcome at once."""

import datetime
import json

import pytest
from playwright.sync_api import expect

from customers.models import Account, UsageRecord
from tests.factories import AccountFactory, SubscriptionFactory, UsageChargeFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
JAN = datetime.date(2026, 1, 1)
LONG_NAME = "Northwind Traders International Holdings and Subsidiaries Limited"


def usage_file(*lines):
    return {
        "name": "january-usage.csv",
        "mimeType": "text/csv",
        "buffer": "\n".join(["id,charge,date,quantity", *lines, ""]).encode(),
    }


@pytest.mark.parametrize(("width", "height"), [(1366, 900), (390, 844)], ids=["1366", "390"])
def test_a_clerk_uploads_a_usage_file_and_sees_the_result(
    page, live_server, sign_in, browser_clerk, screenshot, width, height
):
    account = AccountFactory(number="A00000042", name=LONG_NAME)
    UsageChargeFactory(
        number="C00000007",
        name="API calls, metered per request",
        unit="calls",
        start_date=JAN,
        subscription=SubscriptionFactory(account=account, start_date=JAN),
    )
    page.set_viewport_size({"width": width, "height": height})
    sign_in("clerk")
    page.get_by_role("link", name="Usage", exact=True).click()
    expect(page.get_by_role("heading", name="Usage", exact=True)).to_be_visible()
    screenshot(f"usage-empty-{width}")
    assert page.evaluate(OVERFLOW) <= 0

    form = page.get_by_test_id("usage-upload-form")
    form.get_by_label("Usage file").set_input_files(
        usage_file("u1,C00000007,2026-01-10,12000", "u2,C00000007,2026-01-32,5")
    )
    form.get_by_role("button", name="Upload and import").click()
    expect(page.get_by_test_id("upload-status")).to_have_text("Refused")
    expect(page.get_by_test_id("upload-problems")).to_contain_text(
        "line 3, date: '2026-01-32' is not a calendar date"
    )
    screenshot(f"usage-refused-{width}")
    assert page.evaluate(OVERFLOW) <= 0
    assert not UsageRecord.objects.exists()

    page.get_by_role("link", name="Usage records").click()
    page.get_by_test_id("usage-upload-form").get_by_label("Usage file").set_input_files(
        usage_file("u1,C00000007,2026-01-10,12000", "u2,C00000007,2026-01-31,5")
    )
    page.get_by_role("button", name="Upload and import").click()
    expect(page.get_by_test_id("upload-status")).to_have_text("Imported")
    expect(page.get_by_test_id("upload-summary")).to_have_text(
        "imported 2 usage records, 0 already recorded"
    )
    screenshot(f"usage-imported-{width}")
    assert page.evaluate(OVERFLOW) <= 0

    page.get_by_role("link", name="Usage records").click()
    expect(page.get_by_test_id("usage-row")).to_have_count(2)
    expect(page.get_by_test_id("upload-row")).to_have_count(2)
    screenshot(f"usage-list-{width}")
    assert page.evaluate(OVERFLOW) <= 0
    assert UsageRecord.objects.count() == 2


@pytest.mark.parametrize(("width", "height"), [(1366, 900), (390, 844)], ids=["1366", "390"])
def test_a_clerk_imports_accounts_from_the_accounts_page(
    page, live_server, sign_in, browser_clerk, screenshot, width, height
):
    # The same mechanism as the usage page (core.uploads), for import_accounts.
    good = {"number": "A00000077", "name": LONG_NAME, "currency": "USD", "bill_cycle_day": 1}
    bad = {**good, "number": "A00000078", "bill_cycle_day": 40}
    page.set_viewport_size({"width": width, "height": height})
    sign_in("clerk")
    page.get_by_role("link", name="Accounts", exact=True).click()
    page.get_by_test_id("import-accounts").click()

    def upload(*accounts):
        page.get_by_test_id("account-upload-form").get_by_label("Accounts file").set_input_files(
            {
                "name": "accounts.json",
                "mimeType": "application/json",
                "buffer": json.dumps({"accounts": list(accounts)}).encode(),
            }
        )
        page.get_by_role("button", name="Upload and import").click()

    upload(good, bad)
    expect(page.get_by_test_id("upload-status")).to_have_text("Refused")
    expect(page.get_by_test_id("upload-problems")).to_contain_text("accounts[1].bill_cycle_day")
    screenshot(f"accounts-import-refused-{width}")
    assert page.evaluate(OVERFLOW) <= 0

    page.get_by_role("link", name="Import accounts").click()
    upload(good)
    expect(page.get_by_test_id("upload-summary")).to_have_text(
        "imported 1 accounts, 0 subscriptions, 0 charges"
    )
    page.get_by_role("link", name="Import accounts").click()
    expect(page.get_by_test_id("upload-row")).to_have_count(2)
    screenshot(f"accounts-import-{width}")
    assert page.evaluate(OVERFLOW) <= 0
    assert list(Account.objects.values_list("number", flat=True)) == ["A00000077"]
