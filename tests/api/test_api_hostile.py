"""Hostile input is a clear 4xx in the error shape and changes nothing:
huge bodies, deep JSON, wrong types, unknown fields, forged cursors."""

import json

import pytest
from django.core import signing

from api.pagination import make_cursor
from billruns.models import BillRun
from customers.models import Account, UsageRecord
from invoices.models import Payment
from tests.api.conftest import error_of
from tests.factories import AccountFactory

POSTS = [
    "/api/v1/accounts/",
    "/api/v1/usage/",
    "/api/v1/bill-runs/",
    "/api/v1/subscriptions/S1/changes/",
    "/api/v1/documents/INV1/payments/",
]


def nothing_changed():
    return (
        BillRun.objects.count(),
        Account.objects.count(),
        UsageRecord.objects.count(),
        Payment.objects.count(),
    ) == (0, 0, 0, 0)


@pytest.mark.django_db
@pytest.mark.parametrize("path", POSTS)
def test_a_huge_body_is_413(api, path, settings):
    settings.API_MAX_BODY_BYTES = 10_000
    body = json.dumps({"name": "x" * 20_000})
    error = error_of(api.post(path, raw=body), 413, "too_large")
    assert "10,000 bytes" in error["message"]
    assert nothing_changed()


@pytest.mark.django_db
def test_a_body_over_the_default_limit_is_413(api):
    records = [
        {"id": f"r{i}", "charge": "U1", "date": "2026-01-05", "quantity": "1"}
        for i in range(20_000)
    ]
    error_of(api.post("/api/v1/usage/", {"records": records}), 413, "too_large")
    assert nothing_changed()


@pytest.mark.django_db
@pytest.mark.parametrize("depth", [40, 100_000])
@pytest.mark.parametrize("path", POSTS[:3])
def test_deep_json_is_400(api, path, depth):
    error_of(api.post(path, raw="[" * depth + "]" * depth), 400, "invalid")
    error_of(api.post(path, raw='{"a":' * depth + "1" + "}" * depth), 400, "invalid")
    assert nothing_changed()


@pytest.mark.django_db
@pytest.mark.parametrize("path", POSTS[:3])
@pytest.mark.parametrize("raw", ["null", "1", '"text"', "[]", "\xff\xfe", '{"a": Infinity}', "{"])
def test_bodies_that_are_not_an_object_are_400(api, path, raw):
    error_of(api.post(path, raw=raw), 400, "invalid")
    assert nothing_changed()


@pytest.mark.django_db
def test_a_body_of_another_media_type_is_415(api):
    response = api.client.post("/api/v1/bill-runs/", data="a=1", content_type="text/plain")
    error_of(response, 415, "unsupported_media_type")
    assert nothing_changed()


CURSORS = {
    "not a cursor": lambda: "abc",
    "forged signature": lambda: "W1siL2FwaSJdLDFd:forged",
    "signed for something else": lambda: signing.dumps(["/api/v1/accounts/", 1], salt="another"),
    "of another list": lambda: make_cursor(3, scope="/api/v1/bill-runs/"),
    "not an id": lambda: make_cursor("3", scope="/api/v1/accounts/"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("kind", CURSORS)
def test_a_forged_or_foreign_cursor_is_400(api, kind):
    AccountFactory()
    cursor = CURSORS[kind]()
    response = api.client.get("/api/v1/accounts/", {"cursor": cursor})
    error = error_of(response, 400, "invalid")
    assert "cursor" in error["fields"]


@pytest.mark.django_db
def test_the_next_links_walk_the_list_to_its_end(api):
    for n in range(30):
        AccountFactory(number=f"A{n:08d}")
    page = api.client.get("/api/v1/accounts/", {"limit": 10}).json()
    third = api.client.get(api.client.get(page["next"]).json()["next"]).json()
    assert [a["number"] for a in third["results"]] == [f"A{n:08d}" for n in range(20, 30)]
    assert third["next"] is None


@pytest.mark.django_db
def test_a_very_long_query_value_is_refused(api):
    response = api.client.get("/api/v1/accounts/", {"cursor": "x" * 5000})
    error_of(response, 400, "invalid")
