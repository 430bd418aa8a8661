"""docs/api.md's curl session, call for call, through the test client."""

import pytest

from invoices.models import Document

ACCOUNT = {
    "number": "A90000001",
    "name": "Acme Corp",
    "bill_to_email": "ap@acme.example",
    "currency": "USD",
    "bill_cycle_day": 1,
    "subscriptions": [
        {
            "number": "S90000001",
            "start_date": "2026-01-01",
            "charges": [
                {
                    "number": "C90000001",
                    "name": "Pro plan",
                    "type": "recurring",
                    "amount": "100.00",
                    "period": "month",
                    "start_date": "2026-01-01",
                },
                {
                    "number": "C90000002",
                    "name": "API calls",
                    "type": "usage",
                    "period": "month",
                    "unit": "calls",
                    "start_date": "2026-01-01",
                    "pricing": {"model": "per_unit", "unit_price": "0.002"},
                },
            ],
        }
    ],
}
USAGE = {
    "records": [
        {"id": "acme-2026-01-a", "charge": "C90000002", "date": "2026-01-10", "quantity": "12000"},
        {"id": "acme-2026-01-b", "charge": "C90000002", "date": "2026-01-20", "quantity": "8000"},
    ]
}


@pytest.mark.django_db
def test_the_documented_session(api, django_capture_on_commit_callbacks):
    def post(path, body=None, key=None):
        with django_capture_on_commit_callbacks(execute=True):
            return api.post(f"/api/v1/{path}", body, headers={"Idempotency-Key": key})

    assert post("accounts/", ACCOUNT, "acct-acme").status_code == 201
    assert post("usage/", USAGE, "usage-2026-01").json() == {"imported": 2, "already_recorded": 0}
    run = post("bill-runs/", {"target_date": "2026-02-01", "account": "A90000001"}, "run")
    assert run.status_code == 202
    number = run.json()["number"]
    assert api.get(f"/api/v1/bill-runs/{number}/").json()["status"] == "Completed"
    assert post(f"bill-runs/{number}/post/", None, f"post-{number}").status_code == 202
    shown = api.get(f"/api/v1/bill-runs/{number}/").json()
    assert shown["status"] == "Posted"
    (invoice,) = api.get(f"/api/v1/bill-runs/{number}/documents/").json()["results"]
    charges = {item["charge_number"] for item in invoice["items"]}
    assert charges == {"C90000001", "C90000002"}
    usage = [item for item in invoice["items"] if item["charge_number"] == "C90000002"]
    assert [item["quantity"] for item in usage] == ["20000"]
    pdf = api.get(f"/api/v1/documents/{invoice['number']}/pdf/")
    assert pdf.content.startswith(b"%PDF")
    body = {"amount": "50.00", "date": "2026-02-10", "reference": "wire 17"}
    paid = post(f"documents/{invoice['number']}/payments/", body, f"pay-{invoice['number']}")
    assert paid.status_code == 201
    balance = Document.objects.get(number=invoice["number"]).balance
    assert paid.json()["balance"] == f"{balance:.2f}"
