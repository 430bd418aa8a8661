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

    from core.tables import BaseTable
    from core.templatetags.table_counts import table_count

    class Rows(BaseTable):
        n = tables.Column()

    many = Rows([{"n": n} for n in range(1234)])
    RequestConfig(RequestFactory().get("/", {"page": 3})).configure(many)
    few = Rows([{"n": n} for n in range(3)])
    RequestConfig(RequestFactory().get("/")).configure(few)

    assert table_count(many) == "Showing 51–75 of 1,234 rows"
    assert table_count(few) == "Showing all 3 rows"


def contact_url(account):
    return f"{LIST}{account.number}/bill-to-contact/"


def test_a_clerk_adds_a_missing_bill_to_contact_from_the_account_page(client, clerk):
    # given: an account that runs fail for its missing contact
    account = AccountFactory(bill_to_email="", name="Lost Ltd")
    client.force_login(clerk)
    page = client.get(f"{LIST}{account.number}/").content.decode()
    assert 'data-testid="bill-to-contact-form"' in page
    assert "Add the bill-to contact" in page
    # when
    response = client.post(contact_url(account), {"bill_to_email": "  ap@lost.example "})
    # then: only the contact changed, and the page says so
    assert response.status_code == 302
    assert response.url == f"{LIST}{account.number}/"
    before = {f: getattr(account, f) for f in ("name", "currency", "bill_cycle_day", "batch")}
    account.refresh_from_db()
    assert account.bill_to_email == "ap@lost.example"
    assert {f: getattr(account, f) for f in before} == before
    page = client.get(response.url).content.decode()
    assert f"The bill-to contact of {account.number} is now ap@lost.example." in page
    assert "has no bill-to contact" not in page
    assert "Change the bill-to contact" in page


def test_a_clerk_changes_an_existing_bill_to_contact(client, clerk):
    account = AccountFactory(bill_to_email="old@example.com")
    client.force_login(clerk)
    client.post(contact_url(account), {"bill_to_email": "new@example.com"})
    account.refresh_from_db()
    assert account.bill_to_email == "new@example.com"


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("not-an-email", "“not-an-email” is not a valid email address"),
        ("ap@", "“ap@” is not a valid email address"),
        ("   ", "Enter the bill-to contact&#x27;s email address."),
        ("a" * 250 + "@example.com", "The email address is too long: at most 254 characters."),
    ],
)
def test_a_bad_bill_to_contact_gets_a_clear_message_and_changes_nothing(
    client, clerk, typed, message
):
    account = AccountFactory(bill_to_email="keep@example.com")
    client.force_login(clerk)

    response = client.post(contact_url(account), {"bill_to_email": typed})

    assert response.status_code == 400
    assert message in response.content.decode()
    account.refresh_from_db()
    assert account.bill_to_email == "keep@example.com"


def test_a_viewer_sees_no_contact_form_and_is_refused_on_post(client, viewer):
    account = AccountFactory(bill_to_email="")
    client.force_login(viewer)

    page = client.get(f"{LIST}{account.number}/").content.decode()
    response = client.post(contact_url(account), {"bill_to_email": "ap@example.com"})

    assert 'data-testid="bill-to-contact-form"' not in page
    assert "Add it below" not in page
    assert response.status_code == 403
    account.refresh_from_db()
    assert account.bill_to_email == ""


def test_the_contact_page_takes_only_a_post(client, clerk):
    account = AccountFactory()
    client.force_login(clerk)
    assert client.get(contact_url(account)).status_code == 405


def test_a_retry_bills_the_account_once_its_contact_is_added(client, clerk):
    from billruns.services import bill_run_retry

    run = executed_run(clean=0, without_contact=1)
    account = run.failures.get().account
    client.force_login(clerk)
    client.post(contact_url(account), {"bill_to_email": "ap@found.example"})

    retry = bill_run_retry(run=run, user=clerk, wait=True)

    assert not retry.failures.exists()
    assert retry.documents.get().account == account
