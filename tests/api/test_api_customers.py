"""Accounts, subscriptions, changes and usage through the API: the import's
validation, ``amend``'s changes, ``import_usage``'s import."""

import datetime

import pytest

from customers.models import Account, Charge, Subscription, SubscriptionChange, UsageRecord
from tests.api.conftest import error_of
from tests.factories import (
    AccountFactory,
    ChargeFactory,
    DocumentFactory,
    SubscriptionFactory,
    UsageChargeFactory,
)

JAN = datetime.date(2026, 1, 1)
ACCOUNT = {
    "number": "A00000001",
    "name": "Acme Corp",
    "bill_to_email": "ap@acme.example",
    "currency": "USD",
    "bill_cycle_day": 1,
    "subscriptions": [
        {
            "number": "S00000001",
            "start_date": "2026-01-15",
            "charges": [
                {
                    "name": "Pro plan",
                    "type": "recurring",
                    "amount": "100.00",
                    "period": "month",
                    "start_date": "2026-01-15",
                },
                {
                    "name": "API calls",
                    "type": "usage",
                    "period": "month",
                    "unit": "calls",
                    "start_date": "2026-01-15",
                    "pricing": {"model": "per_unit", "unit_price": "0.0025"},
                },
            ],
        }
    ],
}


# --- accounts --------------------------------------------------------------------


@pytest.mark.django_db
def test_create_an_account_with_its_subscriptions_and_charges(api):
    # when
    response = api.post("/api/v1/accounts/", ACCOUNT)
    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["number"] == "A00000001"
    assert body["payment_term_days"] == 30
    (subscription,) = body["subscriptions"]
    plan, usage = subscription["charges"]
    assert plan["amount"] == "100.00" and plan["charged_through"] is None
    assert usage["pricing"] == {"model": "per_unit", "unit_price": "0.0025"}
    assert Charge.objects.count() == 2
    assert api.get("/api/v1/accounts/A00000001/").json() == body


@pytest.mark.django_db
def test_an_account_without_a_number_gets_one(api):
    AccountFactory(number="A00000001")
    response = api.post("/api/v1/accounts/", {"name": "B", "currency": "EUR", "bill_cycle_day": 3})
    assert response.status_code == 201, response.content
    assert response.json()["number"] == "A00000002"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change, field",
    [
        ({"bill_cycle_day": 32}, "bill_cycle_day"),
        ({"name": 7}, "name"),
        ({"extra": 1}, "extra"),
        ({"subscriptions": [{"start_date": "2026-02-30"}]}, "subscriptions[0].start_date"),
    ],
)
def test_an_invalid_account_is_400_with_its_path_and_nothing_written(api, change, field):
    error = error_of(api.post("/api/v1/accounts/", {**ACCOUNT, **change}), 400, "invalid")
    assert field in error["fields"], error
    assert not Account.objects.exists()


@pytest.mark.django_db
def test_an_existing_number_is_refused_409(api):
    AccountFactory(number="A00000001")
    error = error_of(api.post("/api/v1/accounts/", ACCOUNT), 409, "refused")
    assert error["fields"] == {
        "number": ["account A00000001 already exists (importing does not update)"]
    }
    assert Account.objects.count() == 1


@pytest.mark.django_db
def test_list_accounts_with_filters_and_pages(api):
    for n in range(5):
        AccountFactory(number=f"A{n:08d}", batch=1 + n % 2, bill_cycle_day=1)
    AccountFactory(number="A00000099", status="Canceled", bill_cycle_day=9)
    page = api.get("/api/v1/accounts/?limit=2").json()
    assert [a["number"] for a in page["results"]] == ["A00000000", "A00000001"]
    numbers = []
    url = "/api/v1/accounts/?limit=2"
    while url:
        page = api.get(url).json()
        numbers += [a["number"] for a in page["results"]]
        url = page["next"]
    assert len(numbers) == 6 and len(set(numbers)) == 6
    assert len(api.get("/api/v1/accounts/?batch=2").json()["results"]) == 2
    assert [
        a["number"] for a in api.get("/api/v1/accounts/?status=Canceled").json()["results"]
    ] == ["A00000099"]
    assert len(api.get("/api/v1/accounts/?bill_cycle_day=9").json()["results"]) == 1
    error_of(api.get("/api/v1/accounts/?batch=99"), 400, "invalid")
    error_of(api.get("/api/v1/accounts/?limit=101"), 400, "invalid")
    error_of(api.get("/api/v1/accounts/?limit=0"), 400, "invalid")


@pytest.mark.django_db
def test_patch_an_account(api):
    AccountFactory(number="A1")
    response = api.patch(
        "/api/v1/accounts/A1/",
        {"name": "New", "bill_to_email": "x@example.com", "batch": 5, "payment_term_days": 0},
    )
    assert response.status_code == 200, response.content
    account = Account.objects.get()
    assert (account.name, account.bill_to_email, account.batch, account.payment_term_days) == (
        "New",
        "x@example.com",
        5,
        0,
    )
    assert api.patch("/api/v1/accounts/A1/", {"status": "Canceled"}).json()["status"] == "Canceled"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change",
    [
        {"bill_to_email": "not an address"},
        {"batch": 51},
        {"batch": "5"},
        {"payment_term_days": 366},
        {"status": "Closed"},
        {"name": " "},
        {"currency": "EUR"},
    ],
)
def test_a_bad_patch_is_400_and_changes_nothing(api, change):
    AccountFactory(number="A1", name="Old", batch=1)
    error_of(api.patch("/api/v1/accounts/A1/", {"name": "Other", **change}), 400, "invalid")
    assert Account.objects.get().name == "Old"


@pytest.mark.django_db
def test_account_permissions(viewer_api):
    AccountFactory(number="A1")
    assert viewer_api.get("/api/v1/accounts/A1/").status_code == 200
    error_of(viewer_api.patch("/api/v1/accounts/A1/", {"name": "x"}), 403, "forbidden")
    error_of(viewer_api.post("/api/v1/accounts/", ACCOUNT), 403, "forbidden")
    error_of(viewer_api.get("/api/v1/accounts/A404/"), 404, "not_found")
    assert not Account.objects.filter(number="A00000001").exists()


# --- subscriptions and changes -------------------------------------------------------------


@pytest.fixture
def book(db):
    subscription = SubscriptionFactory(number="S1", start_date=JAN)
    ChargeFactory(number="C1", subscription=subscription, start_date=JAN)
    other = SubscriptionFactory(number="S2", start_date=JAN)
    ChargeFactory(number="C2", subscription=other, start_date=JAN)
    return subscription


@pytest.mark.django_db
def test_a_change_is_recorded_as_done_by_the_key(api, book):
    # when
    response = api.post(
        "/api/v1/subscriptions/S1/changes/",
        {
            "type": "change_price",
            "charge": "C1",
            "effective_date": "2026-03-11",
            "amount": "160.00",
        },
    )
    # then
    assert response.status_code == 201, response.content
    change = SubscriptionChange.objects.get()
    assert change.made_by.username == "key:crm"
    body = response.json()
    assert (body["type"], body["charge"], body["made_by"]) == ("change_price", "C1", "key:crm")
    shown = api.get("/api/v1/subscriptions/S1/").json()
    assert shown["changes"] == [body]
    assert [c["number"] for c in shown["charges"]] == ["C1"]


@pytest.mark.django_db
def test_cancel_and_add_take_the_subscription_of_the_path(api, book):
    response = api.post(
        "/api/v1/subscriptions/S1/changes/",
        {
            "type": "add_charge",
            "charge": {
                "name": "Support",
                "type": "recurring",
                "amount": "50.00",
                "period": "month",
                "start_date": "2026-03-01",
            },
        },
    )
    assert response.status_code == 201, response.content
    assert book.charges.count() == 2
    error_of(
        api.post(
            "/api/v1/subscriptions/S1/changes/",
            {"type": "cancel_subscription", "subscription": "S2", "effective_date": "2026-03-11"},
        ),
        400,
        "invalid",
    )


@pytest.mark.django_db
def test_a_refused_change_is_409_with_amends_message(api, book):
    api.post(
        "/api/v1/subscriptions/S1/changes/",
        {"type": "change_price", "charge": "C1", "effective_date": "2026-04-01", "amount": "2"},
    )
    error = error_of(
        api.post(
            "/api/v1/subscriptions/S1/changes/",
            {"type": "change_price", "charge": "C1", "effective_date": "2026-03-01", "amount": "1"},
        ),
        409,
        "refused",
    )
    assert error["message"] == (
        "effective_date: C1: a change effective 2026-03-01 is before the change of 2026-04-01"
    )
    assert SubscriptionChange.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change",
    [
        {"type": "change_price", "charge": "C2", "effective_date": "2026-03-01", "amount": "1"},
        {"type": "change_price", "charge": "C1", "effective_date": "2026-03-01", "amount": 1},
        {"type": "rename", "charge": "C1"},
        {"type": "remove_charge", "charge": "C1", "effective_date": "2026-03-01", "x": 1},
    ],
)
def test_a_malformed_change_is_400(api, book, change):
    error_of(api.post("/api/v1/subscriptions/S1/changes/", change), 400, "invalid")
    assert not SubscriptionChange.objects.exists()


@pytest.mark.django_db
def test_change_permissions_and_missing_subscription(viewer_api, api, book):
    change = {"type": "remove_charge", "charge": "C1", "effective_date": "2026-03-01"}
    error_of(viewer_api.post("/api/v1/subscriptions/S1/changes/", change), 403, "forbidden")
    error_of(api.post("/api/v1/subscriptions/S9/changes/", change), 404, "not_found")
    error_of(api.get("/api/v1/subscriptions/S9/"), 404, "not_found")
    assert viewer_api.get("/api/v1/subscriptions/S1/").status_code == 200
    assert not SubscriptionChange.objects.exists()


# --- usage ------------------------------------------------------------------------------


@pytest.fixture
def usage_charge(db):
    return UsageChargeFactory(number="U1", subscription__start_date=JAN, start_date=JAN)


def records(n, charge="U1", start=0):
    return [
        {"id": f"r{i}", "charge": charge, "date": "2026-01-05", "quantity": "1.5"}
        for i in range(start, start + n)
    ]


@pytest.mark.django_db
def test_usage_is_imported_all_or_nothing(api, usage_charge):
    response = api.post("/api/v1/usage/", {"records": records(3)})
    assert response.status_code == 201, response.content
    assert response.json() == {"imported": 3, "already_recorded": 0}
    again = api.post("/api/v1/usage/", {"records": records(4)})
    assert again.json() == {"imported": 1, "already_recorded": 3}
    assert UsageRecord.objects.count() == 4
    bad = records(2, start=10) + records(1, charge="U404", start=20)
    error = error_of(api.post("/api/v1/usage/", {"records": bad}), 409, "refused")
    assert error["message"].startswith("records[2].charge:"), error
    assert UsageRecord.objects.count() == 4


@pytest.mark.django_db
def test_late_usage_is_refused_409(api, usage_charge):
    # given: a posted invoice billed January's usage
    document = DocumentFactory(account=usage_charge.subscription.account, status="Posted")
    from invoices.models import DocumentItem

    DocumentItem.objects.create(
        document=document,
        subscription=usage_charge.subscription,
        charge=usage_charge,
        charge_name=usage_charge.name,
        service_start=JAN,
        service_end=datetime.date(2026, 1, 31),
        amount="0.00",
        quantity="0",
    )
    # when / then
    error = error_of(api.post("/api/v1/usage/", {"records": records(1)}), 409, "refused")
    assert document.number in error["message"]
    assert not UsageRecord.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        {"records": []},
        {"records": "r1"},
        {"records": [{"id": "r1", "charge": "U1", "date": "2026-01-05", "quantity": 1}]},
        {"records": [{"id": "r1", "charge": "U1", "date": "2026-01-05", "quantity": "-1"}]},
        {"records": [{"id": "r1", "charge": "U1", "date": "2026-13-05", "quantity": "1"}]},
        {"records": [{"id": "r1", "charge": "U1", "date": "2026-01-05"}]},
        {"records": [{"id": "r1", "charge": "U1", "date": "2026-01-05", "quantity": "1", "x": 1}]},
        {"records": records(1001, start=0)},
        {"rows": []},
    ],
)
def test_malformed_usage_is_400(api, usage_charge, body):
    error_of(api.post("/api/v1/usage/", body), 400, "invalid")
    assert not UsageRecord.objects.exists()


@pytest.mark.django_db
def test_a_viewer_cannot_send_usage(viewer_api, usage_charge):
    error_of(viewer_api.post("/api/v1/usage/", {"records": records(1)}), 403, "forbidden")
    assert not UsageRecord.objects.exists()
    assert Subscription.objects.count() == 1
