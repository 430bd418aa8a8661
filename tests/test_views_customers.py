import pytest

from tests.factories import AccountFactory
from tests.view_data import billed_account, executed_run

pytestmark = pytest.mark.django_db

LIST = "/billing/accounts/"


def test_anonymous_users_are_sent_to_sign_in(client):
    assert client.get(LIST).url.startswith("/accounts/login/")


def test_list_search_and_missing_contact_filter(client, viewer):
    acme = AccountFactory(name="Acme Corp")
    lost = AccountFactory(bill_to_email="")
    client.force_login(viewer)

    html = client.get(LIST, {"q": "acme"}).content.decode()
    assert acme.number in html and lost.number not in html

    html = client.get(LIST, {"missing_contact": "true"}).content.decode()
    assert lost.number in html and acme.number not in html


def test_list_exports_csv(client, viewer):
    account = AccountFactory()
    client.force_login(viewer)
    response = client.get(LIST, {"_export": "csv"})
    assert account.number in response.content.decode()


def test_account_page_shows_why_it_failed(client, viewer):
    run = executed_run(clean=0, without_contact=1)
    account = run.failures.get().account
    client.force_login(viewer)

    html = client.get(f"{LIST}{account.number}/").content.decode()

    assert "has no bill-to contact" in html
    assert 'data-testid="account-failure-row"' in html
    assert run.number in html
    assert "Not billed yet" in html


def test_account_page_shows_charged_through_dates_and_documents(client, viewer):
    run = executed_run(clean=1)
    invoice = run.documents.get()
    client.force_login(viewer)

    html = client.get(f"{LIST}{invoice.account.number}/").content.decode()

    assert "2026-03-01" in html
    assert invoice.number in html


def test_account_page_queries_do_not_grow(client, viewer, django_assert_max_num_queries):
    small = billed_account()
    big = billed_account()
    for _ in range(10):
        billed_account().subscriptions.update(account=big)
    client.force_login(viewer)
    with django_assert_max_num_queries(12) as few:
        client.get(f"{LIST}{small.number}/")
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(f"{LIST}{big.number}/")


def count_sentence(html):
    import re

    found = re.search(r'data-testid="table-count">([^<]*)<', html)
    return found.group(1) if found else None


def test_the_list_says_which_accounts_the_page_shows(client, viewer):
    AccountFactory.create_batch(30)
    client.force_login(viewer)

    assert count_sentence(client.get(LIST).content.decode()) == "Showing 1–25 of 30 accounts"
    second = client.get(LIST, {"page": 2}).content.decode()
    assert count_sentence(second) == "Showing 26–30 of 30 accounts"
    AccountFactory(name="Zebra Ltd")
    one = client.get(LIST, {"q": "zebra"}).content.decode()
    assert count_sentence(one) == "Showing 1 account"


def test_the_count_groups_thousands_and_says_all_on_a_single_page():
    import django_tables2 as tables
    from django.test import RequestFactory
    from django_tables2 import RequestConfig

    from customers.tables import BaseTable
    from customers.templatetags.table_counts import table_count

    class Rows(BaseTable):
        n = tables.Column()

    many = Rows([{"n": n} for n in range(1234)])
    RequestConfig(RequestFactory().get("/", {"page": 3})).configure(many)
    few = Rows([{"n": n} for n in range(3)])
    RequestConfig(RequestFactory().get("/")).configure(few)

    assert table_count(many) == "Showing 51–75 of 1,234 rows"
    assert table_count(few) == "Showing all 3 rows"
