"""Two requests with one Idempotency-Key at the same moment: one does the
work, the other waits on the key's unique row and answers the same."""

import threading

import pytest
from django.db import connection

from api.keys import api_key_create
from billruns.models import BillRun
from invoices.models import DocumentStatus, Payment
from tests.api.conftest import Api
from tests.factories import DocumentFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def at_once(count, work):
    barrier = threading.Barrier(count)
    answers, errors = [None] * count, []

    def target(index):
        try:
            barrier.wait()
            answers[index] = work()
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return answers


def test_concurrent_duplicates_create_one_run_and_one_payment():
    raw = api_key_create(name="crm", role="clerk")[1]
    invoice = DocumentFactory(status=DocumentStatus.POSTED)

    def run():
        response = Api(raw).post(
            "/api/v1/bill-runs/", {"target_date": "2026-01-01"}, headers={"Idempotency-Key": "r"}
        )
        return response.status_code, response.json()["number"]

    def pay():
        response = Api(raw).post(
            f"/api/v1/documents/{invoice.number}/payments/",
            {"amount": "10.00", "date": "2026-02-10"},
            headers={"Idempotency-Key": "p"},
        )
        return response.status_code, response.json()["amount"]

    runs = at_once(4, run)
    payments = at_once(4, pay)
    assert len(set(runs)) == 1 and runs[0][0] == 202
    assert len(set(payments)) == 1 and payments[0][0] == 201
    assert BillRun.objects.count() == 1
    assert Payment.objects.count() == 1
