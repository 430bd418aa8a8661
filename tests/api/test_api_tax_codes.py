"""An account's tax codes through the API (INTERFACES.md, import format and
HTTP API): created as the import takes them, shown in order, replaced by a
PATCH under the account's lock; an unknown code is 400 and changes nothing."""

import copy
import json

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext

from customers.models import Account, AccountTaxCode
from customers.services import tax_rate_set
from tests.api.conftest import error_of
from tests.api.test_api_customers import ACCOUNT
from tests.factories import AccountFactory, ChargeFactory

ACCOUNTS = "/api/v1/accounts/"


@pytest.fixture
def rates(db):
    return {code: tax_rate_set(code, rate) for code, rate in [("VAT20", "20"), ("GST", "5")]}


def codes_of(number):
    return list(
        AccountTaxCode.objects.filter(account__number=number)
        .order_by("position")
        .values_list("tax_rate__code", flat=True)
    )


@pytest.mark.django_db
def test_an_account_is_created_with_its_tax_codes_in_order(api, rates):
    # when
    response = api.post(ACCOUNTS, {**ACCOUNT, "tax_codes": ["VAT20", "GST"]})
    # then
    assert response.status_code == 201, response.content
    assert response.json()["tax_codes"] == ["VAT20", "GST"]
    assert codes_of("A00000001") == ["VAT20", "GST"]
    assert api.get(f"{ACCOUNTS}A00000001/").json()["tax_codes"] == ["VAT20", "GST"]
    listed = api.get(ACCOUNTS).json()["results"]
    assert [a["tax_codes"] for a in listed] == [["VAT20", "GST"]]


@pytest.mark.django_db
def test_an_account_without_tax_codes_shows_an_empty_list(api, rates):
    response = api.post(ACCOUNTS, copy.deepcopy(ACCOUNT))
    assert response.status_code == 201, response.content
    assert response.json()["tax_codes"] == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("codes", "field", "words"),
    [
        (["VAT20", "NOPE"], "tax_codes[1]", "no tax rate has the code NOPE"),
        (["VAT20", "VAT20"], "tax_codes[1]", "appears more than once"),
        (["vat 20"], "tax_codes[0]", "must be 1 to 20 characters"),
        ("VAT20", "tax_codes", "must be an array"),
    ],
)
def test_a_bad_tax_code_at_creation_is_400_at_its_path_and_nothing_written(
    api, rates, codes, field, words
):
    # when
    error = error_of(api.post(ACCOUNTS, {**ACCOUNT, "tax_codes": codes}), 400, "invalid")
    # then
    assert field in error["fields"], error
    assert words in error["fields"][field][0]
    assert not Account.objects.exists() and not AccountTaxCode.objects.exists()


@pytest.mark.django_db
def test_a_patch_replaces_the_tax_codes_in_the_order_given(api, rates):
    # given
    api.post(ACCOUNTS, {**ACCOUNT, "tax_codes": ["VAT20"]})
    # when
    swapped = api.patch(f"{ACCOUNTS}A00000001/", {"tax_codes": ["GST", "VAT20"]})
    # then
    assert swapped.status_code == 200, swapped.content
    assert swapped.json()["tax_codes"] == ["GST", "VAT20"]
    assert codes_of("A00000001") == ["GST", "VAT20"]
    # the same list again changes nothing; an empty list removes them all
    assert api.patch(f"{ACCOUNTS}A00000001/", {"tax_codes": ["GST", "VAT20"]}).status_code == 200
    assert codes_of("A00000001") == ["GST", "VAT20"]
    cleared = api.patch(f"{ACCOUNTS}A00000001/", {"tax_codes": [], "name": "Acme"})
    assert cleared.json()["tax_codes"] == [] and cleared.json()["name"] == "Acme"
    assert codes_of("A00000001") == []


def history_of(number):
    account = Account.objects.get(number=number)
    return [
        (entry.user.username, entry.action_flag, json.loads(entry.change_message))
        for entry in LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(Account), object_id=str(account.pk)
        ).order_by("id")
    ]


@pytest.mark.django_db
def test_a_patch_of_the_tax_codes_is_recorded_in_the_accounts_history_as_the_key(api, rates):
    # given
    api.post(ACCOUNTS, {**ACCOUNT, "tax_codes": ["VAT20"]})
    account = Account.objects.get()
    vat, gst = rates["VAT20"].pk, rates["GST"].pk
    # when
    api.patch(f"{ACCOUNTS}A00000001/", {"tax_codes": ["GST", "VAT20"], "name": "Acme Corp"})
    # then one entry by the key, as the admin's save writes it: the rows
    # written, then the rows deleted (the name was the same: not a change)
    name = "account tax code"
    assert history_of("A00000001") == [
        (
            "key:crm",
            CHANGE,
            [
                {"added": {"name": name, "object": f"{account.pk}: {gst} (1)"}},
                {"added": {"name": name, "object": f"{account.pk}: {vat} (2)"}},
                {"deleted": {"name": name, "object": f"{account.pk}: {vat} (1)"}},
            ],
        )
    ]
    # the same codes again write no entry; a name and no codes, the field's
    api.patch(f"{ACCOUNTS}A00000001/", {"tax_codes": ["GST", "VAT20"]})
    api.patch(f"{ACCOUNTS}A00000001/", {"tax_codes": [], "name": "Acme"})
    *_, (user, _, cleared) = history_of("A00000001")
    assert len(history_of("A00000001")) == 2 and user == "key:crm"
    assert cleared == [
        {"changed": {"fields": ["Name"]}},
        {"deleted": {"name": name, "object": f"{account.pk}: {gst} (1)"}},
        {"deleted": {"name": name, "object": f"{account.pk}: {vat} (2)"}},
    ]
    # and the admin's History page reads it as its own
    entry = LogEntry.objects.order_by("id").last()
    assert entry.get_change_message().startswith("Changed Name. Deleted account tax code")


@pytest.mark.django_db
def test_a_refused_patch_records_nothing(api, rates):
    api.post(ACCOUNTS, {**ACCOUNT, "tax_codes": ["VAT20"]})
    api.patch(f"{ACCOUNTS}A00000001/", {"name": "Other", "tax_codes": ["GST", "NOPE"]})
    assert history_of("A00000001") == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("codes", "field", "words"),
    [
        (["GST", "NOPE"], "tax_codes[1]", "No tax rate has the code NOPE"),
        (["GST", "GST"], "tax_codes[1]", "appears more than once"),
        (["vat 20"], "tax_codes[0]", "must be 1 to 20 characters"),
        ([7], "tax_codes[0]", "Must be a JSON string"),
        ("GST", "tax_codes", "list"),
        (None, "tax_codes", "null"),
    ],
)
def test_a_bad_tax_code_in_a_patch_is_400_and_changes_nothing(api, rates, codes, field, words):
    # given
    api.post(ACCOUNTS, {**ACCOUNT, "tax_codes": ["VAT20"]})
    # when
    error = error_of(
        api.patch(f"{ACCOUNTS}A00000001/", {"name": "Other", "tax_codes": codes}), 400, "invalid"
    )
    # then
    assert field in error["fields"], error
    assert words in error["fields"][field][0], error
    assert codes_of("A00000001") == ["VAT20"]
    assert Account.objects.get().name == "Acme Corp"


@pytest.mark.django_db
def test_the_next_run_taxes_at_the_patched_codes_in_their_order(
    api, rates, django_capture_on_commit_callbacks
):
    # given
    account = AccountFactory(number="A1")
    ChargeFactory(subscription__account=account)
    api.patch("/api/v1/accounts/A1/", {"tax_codes": ["GST", "VAT20"]})
    # when
    with django_capture_on_commit_callbacks(execute=True):
        number = api.post(
            "/api/v1/bill-runs/", {"target_date": "2026-01-01", "preview": True}
        ).json()["number"]
    # then
    (document,) = api.get(f"/api/v1/bill-runs/{number}/documents/").json()["results"]
    assert [(t["code"], t["rate"]) for t in document["taxes"]] == [("GST", "5"), ("VAT20", "20")]


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL")
def test_the_tax_codes_are_rewritten_under_the_accounts_lock(api, rates):
    # given
    api.post(ACCOUNTS, {**ACCOUNT, "tax_codes": ["VAT20"]})
    # when
    with CaptureQueriesContext(connection) as queries:
        api.patch(f"{ACCOUNTS}A00000001/", {"tax_codes": ["GST"]})
    # then
    sql = [q["sql"] for q in queries.captured_queries]
    lock = next(i for i, q in enumerate(sql) if '"customers_account"' in q and " FOR " in q)
    delete = next(
        i for i, q in enumerate(sql) if q.startswith('DELETE FROM "customers_accounttaxcode"')
    )
    assert lock < delete
