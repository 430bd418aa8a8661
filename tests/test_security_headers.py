"""Response headers: signed-in responses are never stored (Cache-Control:
private, no-store), and every page carries a strict Content-Security-Policy
that the templates satisfy (no inline script, event handler or style).
tests/browser/test_csp_in_browser.py checks the pages in Chromium."""

import re
from pathlib import Path

import pytest
from django.urls import reverse

from invoices.models import DocumentStatus
from tests.view_data import document_row, run_row

pytestmark = pytest.mark.django_db

PROJECT = Path(__file__).resolve().parent.parent

STRICT_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
    "base-uri": "'self'",
    "object-src": "'none'",
}


def cache_directives(response):
    return {part.strip() for part in response.get("Cache-Control", "").split(",") if part.strip()}


def policy(response):
    directives = [part.strip() for part in response["Content-Security-Policy"].split(";")]
    return dict(part.split(" ", 1) for part in directives if part)


@pytest.fixture
def signed_in(client, viewer):
    client.force_login(viewer)
    return client


def signed_in_urls():
    run = run_row(documents=1)
    invoice = document_row(status=DocumentStatus.POSTED)
    return [
        "/billing/bill-runs/",
        f"/billing/bill-runs/{run.number}/",
        "/billing/invoices/",
        f"/billing/invoices/{invoice.number}/",
        "/billing/invoices/?_export=csv",
        "/billing/accounts/?_export=xlsx",
        reverse("invoices:pdf", args=[invoice.number]),
        "/billing/schedules/",
    ]


def test_signed_in_pages_exports_and_pdfs_are_never_stored(signed_in):
    for url in signed_in_urls():
        response = signed_in.get(url)

        assert response.status_code == 200, url
        assert {"private", "no-store"} <= cache_directives(response), (url, response)
        assert "public" not in cache_directives(response), url


def test_a_signed_in_users_not_found_page_is_not_stored_either(signed_in):
    response = signed_in.get("/billing/invoices/INV99999999/")

    assert response.status_code == 404
    assert {"private", "no-store"} <= cache_directives(response)


def test_static_files_stay_cacheable_for_a_signed_in_user(signed_in):
    response = signed_in.get("/static/css/app.css")

    assert response.status_code == 200
    assert "no-store" not in cache_directives(response)


def test_the_sign_in_page_is_not_stored(client):
    # Django's login view is never_cache: no-store although nobody is signed in
    response = client.get("/accounts/login/")

    assert "no-store" in cache_directives(response)


def test_every_page_sends_a_strict_content_security_policy(client, superuser):
    anonymous = [client.get("/accounts/login/"), client.get("/billing/nowhere/")]
    for response in anonymous:
        assert policy(response) == STRICT_POLICY, response

    client.force_login(superuser)
    for url in [
        *signed_in_urls(),
        "/admin/",
        "/admin/invoices/invoice/",
        "/admin/customers/account/add/",
    ]:
        response = client.get(url)

        assert response.status_code == 200, url
        assert policy(response) == STRICT_POLICY, url


TEMPLATE_DIRS = [PROJECT / "templates", *PROJECT.glob("*/templates")]
# Rendered into a PDF or an email, never served as a page: their inline styles
# meet no browser's policy (an email client ignores <link> stylesheets).
NOT_PAGES = {"invoices/document_print.html", "notifications/emails"}

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE)
STYLE = re.compile(r"<style\b|\sstyle\s*=", re.IGNORECASE)
SCRIPT_URL = re.compile(r"javascript:", re.IGNORECASE)


def page_templates():
    for folder in TEMPLATE_DIRS:
        for path in folder.rglob("*.html"):
            name = path.relative_to(folder).as_posix()
            if not any(name == skip or name.startswith(skip + "/") for skip in NOT_PAGES):
                yield name, path.read_text()


def test_no_page_template_has_inline_script_handlers_or_styles():
    templates = list(page_templates())
    assert len(templates) > 20  # the folders were found

    offending = [
        (name, pattern.pattern)
        for name, text in templates
        for pattern in (INLINE_SCRIPT, EVENT_HANDLER, STYLE, SCRIPT_URL)
        if pattern.search(text)
    ]

    assert offending == []


def test_htmx_injects_no_indicator_style(signed_in):
    # htmx's default adds an inline <style> that the policy refuses; base.html
    # turns it off and app.css has its rules
    html = signed_in.get("/billing/bill-runs/").content.decode()

    assert """<meta name="htmx-config" content='{"includeIndicatorStyles": false, """ in html
    css = (PROJECT / "static/css/app.css").read_text()
    assert ".htmx-request .htmx-indicator" in css
