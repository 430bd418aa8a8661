"""Where clerks read quantities, units, unit prices, ratings and pricings
(issue 13): the document page, the account page and the subscription page."""

import re
from decimal import Decimal

import pytest
from django.urls import reverse

from billruns.services import bill_run_cancel
from core.money import format_plain
from tests.billed_usage import (
    RATING_CALLS,
    RATING_SEATS,
    TIERS_TEXT,
    billed_usage,
    usage_subscription,
)
from tests.factories import AccountFactory, ChargeFactory, DocumentItemFactory, SubscriptionFactory
from tests.view_data import run_row

pytestmark = pytest.mark.django_db


def get(client, url):
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def cells(html, testid):
    """The text of each element marked ``data-testid=testid``, in order."""
    return [
        re.sub(r"<[^>]+>", "", text).strip()
        for text in re.findall(rf'data-testid="{testid}"[^>]*>(.*?)</(?:td|span|a)>', html, re.S)
    ]


# --- core.money.format_plain: the quantities' one way of writing ----------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("12500.000000"), "12,500"),
        (Decimal("150.500000"), "150.5"),
        (Decimal("0.002000"), "0.002"),
        (Decimal("0E-6"), "0"),
        (Decimal("1E+3"), "1,000"),
        (None, "—"),
    ],
)
def test_a_quantity_is_written_plain(value, text):
    assert format_plain(value) == text


def test_a_quantity_is_never_a_float():
    with pytest.raises(TypeError):
        format_plain(1.5)


# --- The document page ------------------------------------------------------


def test_the_document_page_shows_each_items_charge_quantity_unit_price_and_rating(client, viewer):
    # given
    subscription, seats, calls, invoice = billed_usage()
    client.force_login(viewer)
    # when
    html = get(client, reverse("invoices:detail", args=[invoice.number]))
    # then: in item order (the prorated seats, the next month's, the calls)
    assert cells(html, "item-charge") == [seats.number, seats.number, calls.number]
    assert cells(html, "item-quantity") == ["3", "3", "12,500 calls"]
    assert cells(html, "item-unit-price") == ["10.00", "10.00", "—"]
    assert RATING_SEATS in html and RATING_CALLS in html
    assert subscription.get_absolute_url() in html


def test_an_item_without_quantity_or_rating_shows_dashes_and_no_rating(client, viewer):
    item = DocumentItemFactory()
    client.force_login(viewer)
    html = get(client, reverse("invoices:detail", args=[item.document.number]))
    assert cells(html, "item-quantity") == ["—"]
    assert cells(html, "item-unit-price") == ["—"]
    assert 'data-testid="item-rating"' not in html


def test_the_document_pages_queries_do_not_grow_with_its_items(
    client, viewer, django_assert_max_num_queries
):
    _subscription, _seats, _calls, invoice = billed_usage()
    client.force_login(viewer)
    url = reverse("invoices:detail", args=[invoice.number])
    client.get(url)  # warm caches (the session, the content types)
    with django_assert_max_num_queries(30) as few:
        client.get(url)
    for _ in range(5):
        DocumentItemFactory(document=invoice)
    with django_assert_max_num_queries(len(few.captured_queries)):
        html = get(client, url)
    assert html.count('data-testid="document-item"') == 8


# --- The account page -------------------------------------------------------


def test_the_account_page_shows_charge_numbers_quantities_units_and_tiers(client, viewer):
    subscription, seats, calls, _invoice = billed_usage()
    client.force_login(viewer)
    html = get(client, reverse("customers:account_detail", args=[subscription.account.number]))
    assert cells(html, "charge-number") == [seats.number, calls.number]
    assert cells(html, "charge-price") == ["10.00", TIERS_TEXT]
    assert "usage in</span> calls" in html
    assert f'href="{subscription.get_absolute_url()}"' in html


def test_the_account_pages_queries_do_not_grow_with_charges(
    client, viewer, django_assert_max_num_queries
):
    subscription, _seats, _calls, _invoice = billed_usage()
    account = subscription.account
    client.force_login(viewer)
    url = reverse("customers:account_detail", args=[account.number])
    client.get(url)
    with django_assert_max_num_queries(30) as few:
        client.get(url)
    for _ in range(3):
        usage_subscription(account=account)
    with django_assert_max_num_queries(len(few.captured_queries)):
        html = get(client, url)
    assert html.count(TIERS_TEXT) == 4


# --- The subscription page --------------------------------------------------


def test_the_subscription_page_lists_its_charges_and_what_each_billed(client, viewer):
    # given
    subscription, seats, calls, invoice = billed_usage()
    client.force_login(viewer)
    # when
    html = get(client, subscription.get_absolute_url())
    # then
    assert subscription.get_absolute_url() == f"/billing/subscriptions/{subscription.number}/"
    assert cells(html, "charge-number") == [seats.number, calls.number]
    assert cells(html, "charge-price") == ["10.00", TIERS_TEXT]
    assert subscription.account.name in html
    assert html.count('data-testid="billed-item"') == 3
    assert html.count(f'href="{invoice.get_absolute_url()}"') == 3
    assert RATING_SEATS in html and RATING_CALLS in html
    assert "12,500 calls" in html
    assert "2026-01-15 – 2026-01-31" in " ".join(re.sub(r"<[^>]+>", "", html).split())


def test_a_canceled_document_is_not_billed_so_far(client, viewer):
    subscription, _seats, _calls, invoice = billed_usage()
    bill_run_cancel(run=invoice.bill_run, user=None)
    client.force_login(viewer)
    html = get(client, subscription.get_absolute_url())
    assert 'data-testid="billed-item"' not in html
    assert html.count("Not billed yet.") == 2


def test_the_subscription_pages_queries_do_not_grow_with_charges_or_items(
    client, viewer, django_assert_max_num_queries
):
    subscription, _seats, _calls, invoice = billed_usage()
    client.force_login(viewer)
    url = subscription.get_absolute_url()
    client.get(url)
    with django_assert_max_num_queries(30) as few:
        client.get(url)
    for _ in range(4):
        charge = ChargeFactory(subscription=subscription)
        DocumentItemFactory(document=invoice, charge=charge)
    with django_assert_max_num_queries(len(few.captured_queries)):
        html = get(client, url)
    assert html.count('data-testid="billed-item"') == 7


def test_an_unknown_subscription_is_404(client, viewer):
    client.force_login(viewer)
    assert client.get("/billing/subscriptions/S-NOPE/").status_code == 404


def test_the_subscription_page_needs_the_account_view_permission(client, django_user_model):
    subscription, _seats, _calls, _invoice = billed_usage()
    assert client.get(subscription.get_absolute_url()).url.startswith("/accounts/login/")
    client.force_login(django_user_model.objects.create_user("nobody", password="pw"))
    assert client.get(subscription.get_absolute_url()).status_code == 403


def test_a_subscription_without_charges_says_so(client, viewer):
    subscription = SubscriptionFactory(account=AccountFactory())
    client.force_login(viewer)
    html = get(client, subscription.get_absolute_url())
    assert "No charges." in html


# --- The bill run's tabs ----------------------------------------------------


def test_a_runs_invoice_row_expands_to_its_items_with_quantities_and_units(client, viewer):
    # given
    _subscription, seats, calls, invoice = billed_usage()
    client.force_login(viewer)
    # when
    html = get(client, invoice.bill_run.get_absolute_url())
    # then: the row's button shows the hidden row of its items
    assert f'aria-controls="document-items-{invoice.pk}"' in html
    assert f'id="document-items-{invoice.pk}" hidden' in html
    assert html.count('data-testid="run-item"') == 3
    assert "12,500 calls" in html and f"charge {calls.number}" in html
    assert f"charge {seats.number}" in html
    assert RATING_CALLS in html and RATING_SEATS in html


def test_a_runs_tab_exports_no_expand_column(client, viewer):
    _subscription, _seats, _calls, invoice = billed_usage()
    client.force_login(viewer)
    response = client.get(invoice.bill_run.get_absolute_url(), {"_export": "csv"})
    header = b"".join(response.streaming_content if response.streaming else [response.content])
    assert header.decode().splitlines()[0].startswith("Number,")


def test_a_runs_tab_reads_its_items_in_queries_that_do_not_grow_with_rows(
    client, viewer, django_assert_max_num_queries
):
    _subscription, _seats, _calls, invoice = billed_usage()
    run = invoice.bill_run
    client.force_login(viewer)
    client.get(run.get_absolute_url())
    with django_assert_max_num_queries(30) as few:
        client.get(run.get_absolute_url())
    for _ in range(6):
        DocumentItemFactory(document=DocumentItemFactory(document__bill_run=run).document)
    with django_assert_max_num_queries(len(few.captured_queries)):
        html = get(client, run.get_absolute_url())
    assert html.count('data-testid="run-item"') == 3 + 12


def test_a_runs_expanded_row_escapes_what_its_items_say(client, viewer):
    item = DocumentItemFactory(
        document__bill_run=run_row(), charge_name="<b>Seats</b>", rating="<i>3 × 1</i>"
    )
    client.force_login(viewer)
    html = get(client, item.document.bill_run.get_absolute_url())
    assert "&lt;b&gt;Seats&lt;/b&gt;" in html and "&lt;i&gt;3 × 1&lt;/i&gt;" in html
    assert "<b>Seats" not in html and "<i>3" not in html


# --- The admin --------------------------------------------------------------


def test_the_charge_admin_lists_units_and_pricing_tiers(admin_client):
    _subscription, seats, calls, _invoice = billed_usage()
    html = admin_client.get("/admin/customers/charge/").content.decode()
    assert TIERS_TEXT in html and seats.number in html and calls.number in html
    html = admin_client.get(f"/admin/customers/charge/{calls.pk}/change/").content.decode()
    assert TIERS_TEXT in html


def test_the_subscription_admin_shows_its_charges_tiers(admin_client):
    subscription, _seats, _calls, _invoice = billed_usage()
    url = f"/admin/customers/subscription/{subscription.pk}/change/"
    assert TIERS_TEXT in admin_client.get(url).content.decode()


def test_the_document_admin_shows_each_items_charge_quantity_unit_price_and_rating(admin_client):
    _subscription, _seats, calls, invoice = billed_usage()
    html = admin_client.get(f"/admin/invoices/invoice/{invoice.pk}/change/").content.decode()
    assert calls.number in html and "12,500 calls" in html and RATING_CALLS in html


def test_the_charge_admin_list_reads_tiers_in_queries_that_do_not_grow(
    admin_client, django_assert_max_num_queries
):
    billed_usage()
    admin_client.get("/admin/customers/charge/")
    with django_assert_max_num_queries(30) as few:
        admin_client.get("/admin/customers/charge/")
    for _ in range(3):
        usage_subscription()
    with django_assert_max_num_queries(len(few.captured_queries)):
        html = admin_client.get("/admin/customers/charge/").content.decode()
    assert html.count(TIERS_TEXT) == 4
