"""Playwright against pytest-django's live server, driving Debian's Chromium.

The tests skip when /usr/bin/chromium is missing (.ci/run installs it).
Transactional tests start from a flushed database, which drops the role
groups the migrations made; the users here get their permissions directly.
"""

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "screenshots"

# Playwright's sync API runs an event loop in this thread; Django's ORM calls
# the tests make between browser steps are still plain synchronous code.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed at /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


@pytest.fixture
def screenshot(page):
    SCREENSHOTS.mkdir(exist_ok=True)

    def take(name):
        page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)

    return take


@pytest.fixture
def sign_in(page, live_server):
    # Every browser user's password is "pw".
    def sign_in_as(username):
        page.goto(f"{live_server.url}/accounts/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill("pw")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{live_server.url}/billing/bill-runs/")

    return sign_in_as


@pytest.fixture
def browser_clerk(django_user_model):
    return django_user_model.objects.create_superuser("clerk", "clerk@example.com", "pw")


@pytest.fixture
def browser_viewer(django_user_model):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("viewer", "viewer@example.com", "pw")
    user.user_permissions.set(
        Permission.objects.filter(
            codename__startswith="view_",
            content_type__app_label__in=["billruns", "invoices", "customers"],
        )
    )
    return user
