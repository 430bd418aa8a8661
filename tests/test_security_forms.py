"""Forms and action URLs fed bad or tampered input: a clear message on the
page, and nothing changed."""

import uuid
from decimal import Decimal

import pytest

from billruns.models import BillRun, RunStatus, Schedule
from invoices.models import Document, DocumentStatus, Payment
from tests.test_schedules_views import a_schedule, form_data
from tests.view_data import TARGET, billed_account, document_row, run_row

pytestmark = pytest.mark.django_db

NEW_RUN = "/billing/bill-runs/new/"


def new_run(**overrides):
    data = {
        "target_date": TARGET.isoformat(),
        "invoice_date": "",
        "mode": "batches",
        "bill_cycle_day": "all",
        "request_key": str(uuid.uuid4()),
    }
    return {**data, **overrides}


def snapshot():
    """Every row a form or an action could write."""
    return (
        BillRun.objects.count(),
        list(BillRun.objects.order_by("id").values_list("status", flat=True)),
        list(Document.objects.order_by("id").values_list("status", "balance")),
        Payment.objects.count(),
        list(Schedule.objects.order_by("id").values_list("name", "status", "time_zone")),
    )


# --- new run -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"target_date": "2026-02-30"}, "Enter a valid date."),
        ({"target_date": "not a date"}, "Enter a valid date."),
        ({"target_date": "99999-01-01"}, "Enter a valid date."),
        ({"invoice_date": "2026-13-01"}, "Enter a valid date."),
        ({"batches": ["99"]}, "Select a valid choice. 99 is not one of the available choices."),
        ({"batches": ["0"]}, "Select a valid choice."),
        ({"batches": ["1; DROP TABLE"]}, "Select a valid choice."),
        ({"bill_cycle_day": "32"}, "Select a valid choice. 32 is not one of the available"),
        ({"mode": "everything"}, "Select a valid choice."),
        ({"mode": "account", "account": "A-NOPE"}, "There is no account A-NOPE."),
        ({"mode": "account", "account": ""}, "Enter the account number."),
    ],
)
def test_bad_new_run_input_is_a_message_and_makes_no_run(client, clerk, fields, message):
    billed_account()
    client.force_login(clerk)
    before = snapshot()

    response = client.post(NEW_RUN, new_run(**fields))

    assert response.status_code == 400
    assert message in response.content.decode()
    assert snapshot() == before


def test_another_accounts_subscription_is_refused(client, clerk):
    mine, theirs = billed_account(), billed_account()
    their_subscription = theirs.subscriptions.get()
    client.force_login(clerk)
    before = snapshot()

    response = client.post(
        NEW_RUN,
        new_run(mode="account", account=mine.number, subscriptions=their_subscription.number),
    )

    assert response.status_code == 400
    assert (
        f"Not subscriptions of {mine.number}: {their_subscription.number}."
        in response.content.decode()
    )
    assert snapshot() == before


@pytest.mark.parametrize("key", ["garbage", "", "' OR 1=1 --", "0" * 300])
def test_a_tampered_request_key_is_a_clear_message_and_a_fresh_key(client, clerk, key):
    billed_account()
    client.force_login(clerk)
    before = snapshot()

    response = client.post(NEW_RUN, new_run(request_key=key))

    assert response.status_code == 400
    body = response.content.decode()
    assert "This form has expired or was changed; please submit it again." in body
    assert snapshot() == before
    # the page carries a fresh key, so submitting it again works
    fresh = body.split('name="request_key" value="')[1].split('"')[0]
    assert str(uuid.UUID(fresh)) == fresh
    assert client.post(NEW_RUN, new_run(request_key=fresh)).status_code == 302
    assert BillRun.objects.count() == before[0] + 1


def test_the_same_request_key_twice_makes_one_run(client, clerk):
    billed_account()
    client.force_login(clerk)
    data = new_run()

    first = client.post(NEW_RUN, data)
    second = client.post(NEW_RUN, data)

    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"]
    assert BillRun.objects.count() == 1


# --- payments ----------------------------------------------------------------


def payment_url(document):
    return f"/billing/invoices/{document.number}/payments/"


def payment(**fields):
    return {"amount": "10.00", "payment_date": "2026-02-10", "method": "check", **fields}


@pytest.fixture
def posted_invoice():
    return document_row(status=DocumentStatus.POSTED, amount="100.00")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"amount": "abc"}, "Enter a number."),
        ({"amount": "-1"}, "Ensure this value is greater than or equal to 0.01."),
        ({"amount": "0"}, "Ensure this value is greater than or equal to 0.01."),
        ({"amount": "0.001"}, "Ensure that there are no more than 2 decimal places."),
        ({"amount": "NaN"}, "Enter a number."),
        ({"amount": "Infinity"}, "Enter a number."),
        ({"amount": "1" * 40}, "Ensure that there are no more than 18 digits in total."),
        ({"amount": ""}, "This field is required."),
        ({"payment_date": "2026-02-30"}, "Enter a valid date."),
        ({"payment_date": "yesterday"}, "Enter a valid date."),
        ({"method": "bitcoin"}, "Select a valid choice."),
        ({"reference": "x" * 300}, "Ensure this value has at most 255 characters"),
    ],
)
def test_bad_payment_input_is_a_message_and_records_nothing(
    client, clerk, posted_invoice, fields, message
):
    client.force_login(clerk)
    before = snapshot()

    response = client.post(payment_url(posted_invoice), payment(**fields))

    assert response.status_code == 400
    assert message in response.content.decode()
    assert snapshot() == before


@pytest.mark.parametrize("amount", ["1e10", "100.01", "99999999999999.99"])
def test_a_payment_above_the_balance_is_a_message_and_records_nothing(
    client, clerk, posted_invoice, amount
):
    client.force_login(clerk)
    before = snapshot()

    response = client.post(payment_url(posted_invoice), payment(amount=amount), follow=True)

    assert response.status_code == 200
    assert "exceeds" in response.content.decode() or "balance" in response.content.decode()
    assert [m.level_tag for m in response.context["messages"]] == ["error"]
    assert snapshot() == before


@pytest.mark.parametrize(
    "document",
    [
        lambda: document_row(status=DocumentStatus.DRAFT),
        lambda: document_row(status=DocumentStatus.CANCELED),
        lambda: document_row(status=DocumentStatus.POSTED, document_type="credit_memo"),
        lambda: document_row(status=DocumentStatus.POSTED, balance=Decimal("0.00")),
    ],
    ids=["draft", "canceled", "credit-memo", "paid"],
)
def test_a_payment_posted_to_a_document_that_takes_none_is_refused(client, clerk, document):
    target = document()
    client.force_login(clerk)
    before = snapshot()

    response = client.post(payment_url(target), payment(amount="1.00"), follow=True)

    assert response.status_code == 200
    assert [m.level_tag for m in response.context["messages"]] == ["error"]
    assert snapshot() == before


def test_extra_posted_fields_cannot_redirect_a_payment(client, clerk, posted_invoice):
    other = document_row(status=DocumentStatus.POSTED, amount="100.00")
    client.force_login(clerk)

    client.post(
        payment_url(posted_invoice),
        payment(document=other.pk, document_id=other.pk, number=other.number, created_by=999),
    )

    (recorded,) = Payment.objects.all()
    assert recorded.document_id == posted_invoice.pk
    assert recorded.created_by == clerk
    other.refresh_from_db()
    assert other.balance == Decimal("100.00")


def test_a_payment_to_an_unknown_invoice_is_not_found(client, clerk):
    client.force_login(clerk)

    assert client.post("/billing/invoices/INV-NOPE/payments/", payment()).status_code == 404
    assert Payment.objects.count() == 0


# --- schedules ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"time_zone": "Mars/Olympus_Mons"}, "Choose an IANA time zone, such as Europe/Berlin."),
        ({"time_zone": "../../etc/passwd"}, "Choose an IANA time zone"),
        ({"time_zone": ""}, "This field is required."),
        (
            {"start_date": "2026-03-01", "end_date": "2026-02-01"},
            "The end date cannot be before the start date.",
        ),
        ({"start_date": "2026-02-30"}, "Enter a valid date."),
        ({"run_time": "25:00"}, "Enter a valid time."),
        ({"month_day": "32"}, "Choose a day from 1 to 31, or the last day."),
        ({"batches": ["99"]}, "Select a valid choice."),
        ({"target_date_offset_days": "100000"}, "Ensure this value is less than or equal to"),
        ({"repeats": "hourly"}, "Select a valid choice."),
    ],
)
def test_bad_schedule_input_is_a_message_and_saves_nothing(client, clerk, fields, message):
    client.force_login(clerk)
    before = snapshot()

    response = client.post("/billing/schedules/new/", form_data(**fields))

    assert response.status_code == 400
    assert message in response.content.decode()
    assert snapshot() == before


def test_a_bad_edit_leaves_the_schedule_as_it_was(client, clerk):
    schedule = a_schedule(clerk)
    client.force_login(clerk)
    before = snapshot()

    response = client.post(
        f"/billing/schedules/{schedule.pk}/edit/",
        form_data(name="Renamed", time_zone="Nowhere/Land"),
    )

    assert response.status_code == 400
    assert snapshot() == before


@pytest.mark.parametrize(
    "occurrence", ["garbage", "2026-02-30T06:00:00+00:00", "2026-03-01T06:00:00", ""]
)
def test_cancelling_a_tampered_occurrence_changes_nothing(client, clerk, occurrence):
    schedule = a_schedule(clerk)
    client.force_login(clerk)
    before = (snapshot(), Schedule.objects.get().skipped_occurrences)

    response = client.post(
        f"/billing/schedules/{schedule.pk}/cancel/",
        {"scope": "occurrence", "occurrence": occurrence},
        follow=True,
    )

    assert response.status_code == 200
    assert [m.level_tag for m in response.context["messages"]] == ["error"]
    assert (snapshot(), Schedule.objects.get().skipped_occurrences) == before


def test_a_schedule_action_on_an_unknown_id_is_not_found(client, clerk):
    client.force_login(clerk)

    assert client.post("/billing/schedules/999999/pause/").status_code == 404


# --- tampered bill run action URLs ----------------------------------------------

REFUSED = [
    ("post", RunStatus.PENDING),
    ("post", RunStatus.PROCESSING),
    ("post", RunStatus.POSTED),
    ("post", RunStatus.CANCELED),
    ("post", RunStatus.ERROR),
    ("cancel", RunStatus.POSTED),
    ("cancel", RunStatus.PROCESSING),
    ("cancel", RunStatus.CANCELED),
    ("retry", RunStatus.PENDING),
    ("delete", RunStatus.POSTED),
    ("delete", RunStatus.COMPLETED),
]


@pytest.mark.parametrize(("action", "status"), REFUSED)
def test_an_action_on_a_run_in_the_wrong_status_is_a_message_and_changes_nothing(
    client, superuser, action, status
):
    run = run_row(status=status, documents=1, failures=1)
    bystander = run_row(status=RunStatus.COMPLETED, documents=1)
    client.force_login(superuser)
    before = snapshot()

    response = client.post(f"/billing/bill-runs/{run.number}/{action}/", follow=True)

    assert response.status_code == 200
    assert [m.level_tag for m in response.context["messages"]] == ["error"]
    assert snapshot() == before
    bystander.refresh_from_db()
    assert bystander.status == RunStatus.COMPLETED


def test_retrying_a_run_without_failures_is_refused(client, superuser):
    run = run_row(status=RunStatus.COMPLETED, documents=1)
    client.force_login(superuser)
    before = snapshot()

    response = client.post(f"/billing/bill-runs/{run.number}/retry/", follow=True)

    assert [m.level_tag for m in response.context["messages"]] == ["error"]
    assert snapshot() == before


@pytest.mark.parametrize("action", ["post", "cancel", "retry", "email", "delete"])
def test_an_action_on_an_unknown_run_is_not_found(client, superuser, action):
    client.force_login(superuser)

    response = client.post(f"/billing/bill-runs/BR-99999999/{action}/")

    assert response.status_code == 404


def test_posting_an_already_posted_invoice_is_a_message(client, superuser):
    invoice = document_row(status=DocumentStatus.POSTED)
    client.force_login(superuser)
    before = snapshot()

    response = client.post(f"/billing/invoices/{invoice.number}/post/", follow=True)

    assert [m.level_tag for m in response.context["messages"]] == ["error"]
    assert snapshot() == before
