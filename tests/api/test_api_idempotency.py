"""``Idempotency-Key``: the same POST twice does its work once; another body
with the same key is 422; keys are scoped to the API key that sends them."""

import datetime

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from api.models import IdempotentRequest
from billruns.models import BillRun
from customers.models import Account, SubscriptionChange, UsageRecord
from invoices.models import DocumentStatus, Payment
from tests.api.conftest import error_of
from tests.factories import ChargeFactory, DocumentFactory, SubscriptionFactory, UsageChargeFactory

JAN = datetime.date(2026, 1, 1)


def twice(api, path, body, key="k-1"):
    first = api.post(path, body, headers={"Idempotency-Key": key})
    second = api.post(path, body, headers={"Idempotency-Key": key})
    assert first.status_code in (201, 202), first.content
    assert (second.status_code, second.json()) == (first.status_code, first.json())
    assert second["Idempotent-Replayed"] == "true"
    return first


@pytest.mark.django_db
def test_one_run(api):
    twice(api, "/api/v1/bill-runs/", {"target_date": "2026-01-01"})
    assert BillRun.objects.count() == 1


@pytest.mark.django_db
def test_one_payment(api):
    invoice = DocumentFactory(status=DocumentStatus.POSTED)
    body = {"amount": "10.00", "date": "2026-02-10"}
    twice(api, f"/api/v1/documents/{invoice.number}/payments/", body)
    assert Payment.objects.count() == 1
    invoice.refresh_from_db()
    assert str(invoice.balance) == "90.00"


@pytest.mark.django_db
def test_one_change(api):
    subscription = SubscriptionFactory(number="S1", start_date=JAN)
    ChargeFactory(number="C1", subscription=subscription, start_date=JAN)
    body = {"type": "change_price", "charge": "C1", "effective_date": "2026-03-01", "amount": "5"}
    twice(api, "/api/v1/subscriptions/S1/changes/", body)
    assert SubscriptionChange.objects.count() == 1


@pytest.mark.django_db
def test_one_usage_import(api):
    UsageChargeFactory(number="U1", subscription__start_date=JAN, start_date=JAN)
    body = {"records": [{"id": "r1", "charge": "U1", "date": "2026-01-05", "quantity": "2"}]}
    first = twice(api, "/api/v1/usage/", body)
    assert first.json() == {"imported": 1, "already_recorded": 0}
    assert UsageRecord.objects.count() == 1
    assert IdempotentRequest.objects.count() == 1


@pytest.mark.django_db
def test_one_account(api):
    twice(api, "/api/v1/accounts/", {"name": "Acme", "currency": "USD", "bill_cycle_day": 1})
    assert Account.objects.count() == 1


@pytest.mark.django_db
def test_the_same_body_in_another_order_is_the_same_request(api):
    api.post(
        "/api/v1/bill-runs/",
        raw='{"target_date": "2026-01-01", "auto_post": false}',
        headers={"Idempotency-Key": "k"},
    )
    again = api.post(
        "/api/v1/bill-runs/",
        raw='{ "auto_post" : false , "target_date":"2026-01-01"}',
        headers={"Idempotency-Key": "k"},
    )
    assert again.status_code == 202
    assert BillRun.objects.count() == 1


@pytest.mark.django_db
def test_another_body_is_422_and_does_nothing(api):
    api.post("/api/v1/bill-runs/", {"target_date": "2026-01-01"}, headers={"Idempotency-Key": "k"})
    error_of(
        api.post(
            "/api/v1/bill-runs/", {"target_date": "2026-01-02"}, headers={"Idempotency-Key": "k"}
        ),
        422,
        "idempotency_mismatch",
    )
    assert BillRun.objects.count() == 1


@pytest.mark.django_db
def test_keys_are_scoped_to_the_api_key(api, clerk_key, db):
    from api.keys import api_key_create
    from tests.api.conftest import Api

    other = Api(api_key_create(name="other", role="clerk")[1])
    api.post("/api/v1/bill-runs/", {"target_date": "2026-01-01"}, headers={"Idempotency-Key": "k"})
    other.post(
        "/api/v1/bill-runs/", {"target_date": "2026-01-01"}, headers={"Idempotency-Key": "k"}
    )
    assert BillRun.objects.count() == 2


@pytest.mark.django_db
def test_a_key_older_than_24_hours_is_a_new_request(api):
    api.post("/api/v1/bill-runs/", {"target_date": "2026-01-01"}, headers={"Idempotency-Key": "k"})
    IdempotentRequest.objects.update(created_at=timezone.now() - datetime.timedelta(hours=25))
    api.post("/api/v1/bill-runs/", {"target_date": "2026-01-02"}, headers={"Idempotency-Key": "k"})
    assert BillRun.objects.count() == 2


@pytest.mark.django_db
def test_a_refusal_is_not_kept_and_is_judged_again(api):
    invoice = DocumentFactory(status=DocumentStatus.DRAFT)
    path = f"/api/v1/documents/{invoice.number}/payments/"
    body = {"amount": "10.00", "date": "2026-02-10"}
    error_of(api.post(path, body, headers={"Idempotency-Key": "k"}), 409, "refused")
    assert not IdempotentRequest.objects.exists()
    invoice.status = DocumentStatus.POSTED
    invoice.save()
    assert api.post(path, body, headers={"Idempotency-Key": "k"}).status_code == 201


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", " ", "x" * 256, "a\nb"])
def test_a_malformed_key_is_400(api, key):
    response = api.post(
        "/api/v1/bill-runs/", {"target_date": "2026-01-01"}, headers={"Idempotency-Key": key}
    )
    error_of(response, 400, "invalid")
    assert not BillRun.objects.exists()


@pytest.mark.django_db
def test_the_database_holds_one_row_per_key(clerk_key):
    key = clerk_key[0]
    IdempotentRequest.objects.create(api_key=key, key="k", method="POST", path="/", body_hash="a")
    with pytest.raises(IntegrityError), transaction.atomic():
        IdempotentRequest.objects.create(
            api_key=key, key="k", method="POST", path="/", body_hash="b"
        )
