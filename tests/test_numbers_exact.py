"""Numbers are compared exactly, case included, everywhere (INTERFACES.md,
"Numbers and dates, everywhere"; issue 11, item 1).

The audit imported ``mixcase1`` and ``MIXCASE1`` as two accounts, and the new
run form, asked for ``mixcase1``, billed ``MIXCASE1``. Now the import refuses
a number equal to another ignoring case (the database enforces it), numbers
with spaces, control or invisible characters are refused, and every form,
filter and command matches a number exactly as typed.
"""

import datetime
import io
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction

from billruns.filters import BillRunFilter
from billruns.models import BillRun
from customers.filters import AccountFilter
from customers.models import Account, Subscription
from invoices.filters import DocumentFilter
from invoices.models import Document
from tests.factories import AccountFactory, ChargeFactory, SubscriptionFactory
from tests.test_import_accounts import account, counts, import_document
from tests.view_data import document_row, run_row

pytestmark = pytest.mark.django_db

NEW_RUN = "/billing/bill-runs/new/"


def subscription(number):
    return {"number": number, "start_date": "2026-01-01"}


def new_run(**fields):
    return {
        "target_date": "2026-02-01",
        "invoice_date": "",
        "mode": "account",
        "bill_cycle_day": "all",
        "request_key": str(uuid.uuid4()),
    } | fields


def customer(account_number, subscription_number):
    """An account with one subscription and one monthly charge."""
    account_row = AccountFactory(number=account_number)
    ChargeFactory(subscription=SubscriptionFactory(number=subscription_number, account=account_row))
    return account_row


# --- the import ------------------------------------------------------------------


def test_the_import_refuses_two_accounts_that_differ_only_in_case(tmp_path):
    # given the audit's file
    document = {
        "accounts": [
            account(number="mixcase1", subscriptions=[subscription("ms1")]),
            account(number="MIXCASE1", subscriptions=[subscription("MS1")]),
        ]
    }

    # when
    code, out, err = import_document(tmp_path, document)

    # then
    assert (code, out) == (1, "")
    assert err == [
        "accounts[1].number: account number MIXCASE1 differs only in case from mixcase1 at "
        "accounts[0].number (numbers must differ in more than case)",
        "accounts[1].subscriptions[0].number: subscription number MS1 differs only in case "
        "from ms1 at accounts[0].subscriptions[0].number (numbers must differ in more than case)",
    ]
    assert counts() == (0, 0, 0)


def test_the_import_refuses_a_number_that_differs_only_in_case_from_one_in_the_database(
    tmp_path,
):
    # given
    customer("mixcase1", "ms1")
    before = counts()

    # when
    code, _, err = import_document(
        tmp_path, {"accounts": [account(number="MIXCASE1", subscriptions=[subscription("Ms1")])]}
    )

    # then
    assert code == 1
    assert err == [
        "accounts[0].number: account number MIXCASE1 differs only in case from account "
        "mixcase1, which already exists (numbers must differ in more than case)",
        "accounts[0].subscriptions[0].number: subscription number Ms1 differs only in case "
        "from subscription ms1, which already exists (numbers must differ in more than case)",
    ]
    assert counts() == before


def test_generated_numbers_skip_a_number_taken_in_another_case(tmp_path):
    # given a00000001 in the database and A00000002 in the file, both "taken"
    AccountFactory(number="a00000001")
    document = {"accounts": [account(number="a00000002"), account()]}

    # when
    code, _, err = import_document(tmp_path, document)

    # then
    assert (code, err) == (0, [])
    assert Account.objects.filter(number="A00000003").exists()


@pytest.mark.parametrize(
    ("number", "code_point", "position"),
    [
        ("A 1", "0020", 2),
        ("A\t1", "0009", 2),
        ("A\u00a01", "00A0", 2),  # no-break space
        ("A\u200b1", "200B", 2),  # zero-width space
        ("A\u20601", "2060", 2),  # word joiner
        ("\ufeffA1", "FEFF", 1),  # byte order mark
        ("A1\u202e", "202E", 3),  # right-to-left override
        ("A\u20281", "2028", 2),  # line separator
        ("A\u20291", "2029", 2),  # paragraph separator
        ("A\u30001", "3000", 2),  # ideographic space
        ("A\x851", "0085", 2),  # next line, a C1 control
    ],
)
def test_the_import_refuses_a_number_with_a_space_control_or_invisible_character(
    tmp_path, number, code_point, position
):
    # when
    code, _, err = import_document(
        tmp_path,
        {"accounts": [account(number="A1", subscriptions=[subscription(number)])]},
    )

    # then
    assert code == 1
    assert err == [
        "accounts[0].subscriptions[0].number: must not contain spaces, control or invisible "
        f"characters (U+{code_point} at position {position})"
    ]
    assert counts() == (0, 0, 0)


def test_letters_of_any_script_are_still_numbers(tmp_path):
    code, _, err = import_document(tmp_path, {"accounts": [account(number="Ωmega-Ü1")]})

    assert (code, err) == (0, [])
    assert Account.objects.filter(number="Ωmega-Ü1").exists()


# --- the database ----------------------------------------------------------------


def test_the_database_refuses_account_numbers_that_differ_only_in_case():
    AccountFactory(number="mixcase1")

    with pytest.raises(IntegrityError), transaction.atomic():
        AccountFactory(number="MIXCASE1")

    assert list(Account.objects.values_list("number", flat=True)) == ["mixcase1"]


def test_the_database_refuses_subscription_numbers_that_differ_only_in_case():
    SubscriptionFactory(number="ms1")

    with pytest.raises(IntegrityError), transaction.atomic():
        SubscriptionFactory(number="MS1")

    assert list(Subscription.objects.values_list("number", flat=True)) == ["ms1"]


def admin_account_form(number):
    return {
        "number": number,
        "name": "x",
        "currency": "USD",
        "bill_cycle_day": "1",
        "batch": "1",
        "payment_term_days": "30",
        "status": "Active",
        "subscriptions-TOTAL_FORMS": "0",
        "subscriptions-INITIAL_FORMS": "0",
    }


def test_the_admin_refuses_a_number_that_differs_only_in_case(client, superuser):
    AccountFactory(number="mixcase1")
    client.force_login(superuser)

    response = client.post("/admin/customers/account/add/", admin_account_form("MIXCASE1"))

    assert response.status_code == 200
    assert "Another account has this number, ignoring case." in response.content.decode()
    assert Account.objects.count() == 1


def test_the_admin_refuses_a_number_with_an_invisible_character(client, superuser):
    client.force_login(superuser)

    response = client.post("/admin/customers/account/add/", admin_account_form("A\u200b1"))

    assert response.status_code == 200
    assert "must not contain spaces, control or invisible characters" in (response.content.decode())
    assert not Account.objects.exists()


# --- the new run form ------------------------------------------------------------


def test_the_run_form_bills_the_account_as_typed_never_another_case(client, clerk):
    # given
    customer("MIXCASE1", "MS1")
    client.force_login(clerk)

    # when the audit's request
    response = client.post(NEW_RUN, new_run(account="mixcase1", subscriptions="ms1"))

    # then it finds no such account and makes no run
    assert response.status_code == 400
    assert "There is no account mixcase1." in response.content.decode()
    assert not BillRun.objects.exists()


def test_the_run_form_matches_subscription_numbers_exactly(client, clerk):
    # given
    mine = customer("mixcase1", "ms1")
    client.force_login(clerk)

    # when
    refused = client.post(NEW_RUN, new_run(account="mixcase1", subscriptions="MS1"))
    made = client.post(NEW_RUN, new_run(account="mixcase1", subscriptions="ms1"))

    # then
    assert refused.status_code == 400
    assert "Not subscriptions of mixcase1: MS1." in refused.content.decode()
    run = BillRun.objects.get()
    assert made.status_code == 302
    assert run.account == mine
    assert [s.number for s in run.subscriptions.all()] == ["ms1"]


def test_the_command_matches_the_account_number_exactly(superuser):
    customer("MIXCASE1", "MS1")

    with pytest.raises(CommandError, match="No account has the number 'mixcase1'"):
        call_command(
            "billrun",
            "create",
            "--target-date",
            "2026-02-01",
            "--account",
            "mixcase1",
            stdout=io.StringIO(),
        )

    assert not BillRun.objects.exists()


# --- the filters -----------------------------------------------------------------


def test_the_account_search_matches_a_number_exactly_and_a_name_in_any_case():
    wanted = AccountFactory(number="MIXCASE1", name="Acme Corp")
    AccountFactory(number="mixcase2", name="Other")

    def found(q):
        return list(AccountFilter({"q": q}, queryset=Account.objects.all()).qs)

    assert found("MIXCASE1") == [wanted]
    assert found("mixcase1") == []
    assert found("acme") == [wanted]


def test_the_invoice_filters_match_numbers_exactly():
    account_row = AccountFactory(number="MIXCASE1")
    run = run_row()
    invoice = document_row(account=account_row, bill_run=run)

    def found(**params):
        return list(DocumentFilter(params, queryset=Document.objects.all()).qs)

    assert found(account="MIXCASE1") == [invoice]
    assert found(account="mixcase1") == []
    assert found(q=invoice.number) == [invoice]
    assert found(q=invoice.number.lower()) == []
    assert found(bill_run=run.number) == [invoice]
    assert found(bill_run=run.number.lower()) == []
    assert found(currency="usd") == [invoice]  # a currency code is not a number


def test_the_bill_run_filter_matches_the_number_exactly_or_by_its_digits():
    run = run_row(target_date=datetime.date(2026, 2, 1))
    digits = str(int(run.number.removeprefix("BR-")))

    def found(number):
        return list(BillRunFilter({"number": number}, queryset=BillRun.objects.all()).qs)

    assert found(run.number) == [run]
    assert found(run.number.lower()) == []
    assert found(digits) == [run]
