"""Every date the product accepts lies between 2000-01-01 and 2099-12-31, and
the refusal says so; a payment is not dated after today (INTERFACES.md,
"Numbers and dates, everywhere"; issue 11, item 5).

The audit's dates: a target date of 9999-12-31 (192 accounts failed with
"year 10000 is out of range"), an invoice date of 9999-12-31 (a chunk in
Error), an imported start date of 0001-01-01 (24,303 items in one run), and
payments dated 9999-12-31 and 1900-01-01.
"""

import datetime
import io
import uuid
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from billruns import services
from billruns.forms import BillRunForm
from billruns.models import BillRun
from core.dates import DateInRangeField, parse_date
from customers.models import Subscription
from invoices.models import Document, DocumentStatus, DocumentType, Payment
from invoices.services import PaymentRefused, payment_record
from tests.factories import AccountFactory, SubscriptionFactory
from tests.test_import_accounts import account, counts, import_document, import_text

pytestmark = pytest.mark.django_db

RANGE = "between 2000-01-01 and 2099-12-31"


def one_subscription(start_date, *, charge_start=None, end_date=None):
    charge = {
        "name": "Plan",
        "type": "recurring",
        "amount": "10.00",
        "period": "month",
        "start_date": charge_start or start_date,
        "end_date": end_date,
    }
    return {"accounts": [account(subscriptions=[{"start_date": start_date, "charges": [charge]}])]}


def posted_invoice():
    return Document.objects.create(
        number="INV00000001",
        account=AccountFactory(),
        document_type=DocumentType.INVOICE,
        status=DocumentStatus.POSTED,
        currency="USD",
        amount=Decimal("100.00"),
        balance=Decimal("100.00"),
        invoice_date=datetime.date(2026, 2, 1),
        due_date=datetime.date(2026, 3, 3),
    )


# --- the shared helper -------------------------------------------------------------


@pytest.mark.parametrize("text", ["2000-01-01", "2099-12-31"])
def test_the_first_and_last_days_are_accepted(text):
    assert parse_date(text) == datetime.date.fromisoformat(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1999-12-31", f"The date must be {RANGE}, not 1999-12-31"),
        ("2100-01-01", f"The date must be {RANGE}, not 2100-01-01"),
        ("0001-01-01", f"The date must be {RANGE}, not 0001-01-01"),
        ("9999-12-31", f"The date must be {RANGE}, not 9999-12-31"),
        ("2026-02-30", "'2026-02-30' is not a date (expected YYYY-MM-DD)"),
        ("", "'' is not a date (expected YYYY-MM-DD)"),
    ],
)
def test_a_date_outside_the_range_or_malformed_is_refused_with_the_range(text, message):
    with pytest.raises(ValueError) as refusal:
        parse_date(text)
    assert str(refusal.value) == message


def test_the_form_field_refuses_the_range_and_tells_the_date_picker():
    field = DateInRangeField()

    assert field.widget.attrs["min"] == "2000-01-01"
    assert field.widget.attrs["max"] == "2099-12-31"
    with pytest.raises(Exception, match=f"The date must be {RANGE}, not 9999-12-31."):
        field.clean("9999-12-31")


# --- the import --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "path", "day"),
    [
        (
            one_subscription("0001-01-01", charge_start="2026-01-01"),
            "accounts[0].subscriptions[0].start_date",
            "0001-01-01",
        ),
        (
            one_subscription("2026-01-01", charge_start="1999-12-31"),
            "accounts[0].subscriptions[0].charges[0].start_date",
            "1999-12-31",
        ),
        (
            one_subscription("2026-01-01", end_date="2100-01-01"),
            "accounts[0].subscriptions[0].charges[0].end_date",
            "2100-01-01",
        ),
    ],
    ids=["subscription-start", "charge-start", "charge-end"],
)
def test_the_import_refuses_a_date_outside_the_range(tmp_path, document, path, day):
    code, _, err = import_document(tmp_path, document)

    assert code == 1
    assert err == [f"{path}: must be {RANGE}, not {day}"]
    assert counts() == (0, 0, 0)


def test_the_import_accepts_the_first_and_last_days(tmp_path):
    code, _, err = import_document(tmp_path, one_subscription("2000-01-01", end_date="2099-12-31"))

    assert (code, err) == (0, [])


def test_the_admin_refuses_a_start_date_outside_the_range(client, superuser):
    subscription = SubscriptionFactory()
    client.force_login(superuser)

    response = client.post(
        f"/admin/customers/subscription/{subscription.pk}/change/",
        {
            "number": subscription.number,
            "account": subscription.account.pk,
            "status": "Active",
            "start_date": "0001-01-01",
            "charges-TOTAL_FORMS": "0",
            "charges-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 200
    assert f"The date must be {RANGE}, not 0001-01-01." in response.content.decode()
    assert Subscription.objects.get().start_date == datetime.date(2026, 1, 1)


# --- bill runs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "field", "message"),
    [
        (
            {"target_date": "9999-12-31"},
            "target_date",
            f"The target date must be {RANGE}, not 9999-12-31.",
        ),
        (
            {"target_date": datetime.date(1999, 12, 31)},
            "target_date",
            f"The target date must be {RANGE}, not 1999-12-31.",
        ),
        (
            {"target_date": "2026-02-01", "invoice_date": "9999-12-31"},
            "invoice_date",
            f"The invoice date must be {RANGE}, not 9999-12-31.",
        ),
        (
            {"target_date": "2026-02-01", "invoice_date": ""},
            "invoice_date",
            "'' is not a date (expected YYYY-MM-DD).",
        ),
    ],
)
def test_the_run_service_refuses_a_date_outside_the_range(arguments, field, message):
    with pytest.raises(services.InvalidRunParameters) as refusal:
        services.bill_run_create(**arguments, enqueue=False)

    assert refusal.value.errors == {field: [message]}
    assert not BillRun.objects.exists()


def test_an_invoice_date_years_before_the_target_date_is_allowed():
    run = services.bill_run_create(
        target_date="2026-02-01", invoice_date="2020-02-01", enqueue=False
    )

    assert (run.target_date, run.invoice_date) == (
        datetime.date(2026, 2, 1),
        datetime.date(2020, 2, 1),
    )


def test_the_command_refuses_a_target_date_outside_the_range(superuser):
    with pytest.raises(CommandError) as refusal:
        call_command("billrun", "create", "--target-date", "9999-12-31", stdout=io.StringIO())

    assert str(refusal.value) == (
        f"Error: argument --target-date: the date must be {RANGE}, not 9999-12-31"
    )
    assert not BillRun.objects.exists()


def test_the_run_form_refuses_a_date_outside_the_range(client, clerk):
    client.force_login(clerk)

    response = client.post(
        "/billing/bill-runs/new/",
        {
            "target_date": "9999-12-31",
            "invoice_date": "0001-01-01",
            "mode": "batches",
            "bill_cycle_day": "all",
            "request_key": str(uuid.uuid4()),
        },
    )

    assert response.status_code == 400
    html = response.content.decode()
    assert f"The date must be {RANGE}, not 9999-12-31." in html
    assert f"The date must be {RANGE}, not 0001-01-01." in html
    assert not BillRun.objects.exists()


def test_the_run_form_offers_the_range_to_the_date_picker():
    html = str(BillRunForm()["target_date"])

    assert 'min="2000-01-01"' in html and 'max="2099-12-31"' in html


# --- payments --------------------------------------------------------------------


def record(invoice, payment_date, user):
    return payment_record(
        document_id=invoice.pk,
        amount="10.00",
        payment_date=payment_date,
        method="card",
        user=user,
    )


@pytest.mark.parametrize(
    ("payment_date", "message"),
    [
        ("9999-12-31", f"The payment date must be {RANGE}, not 9999-12-31."),
        ("1900-01-01", f"The payment date must be {RANGE}, not 1900-01-01."),
    ],
)
def test_the_payment_service_refuses_a_date_outside_the_range(clerk, payment_date, message):
    invoice = posted_invoice()

    with pytest.raises(PaymentRefused) as refusal:
        record(invoice, payment_date, clerk)

    assert str(refusal.value) == message
    assert not Payment.objects.exists()


def test_the_payment_service_refuses_a_date_after_today(clerk):
    invoice = posted_invoice()
    today = timezone.localdate()
    tomorrow = today + datetime.timedelta(days=1)

    with pytest.raises(PaymentRefused) as refusal:
        record(invoice, tomorrow, clerk)

    assert str(refusal.value) == (
        f"The payment date must not be after today ({today}), not {tomorrow}."
    )
    assert record(invoice, today, clerk).payment_date == today


@pytest.mark.parametrize(
    ("payment_date", "message"),
    [
        ("9999-12-31", f"The date must be {RANGE}, not 9999-12-31."),
        ("1900-01-01", f"The date must be {RANGE}, not 1900-01-01."),
        ("tomorrow", "The payment date must not be after today"),
    ],
)
def test_the_payment_pages_refuse_a_date_outside_the_range_or_after_today(
    client, clerk, superuser, payment_date, message
):
    invoice = posted_invoice()
    if payment_date == "tomorrow":
        payment_date = (timezone.localdate() + datetime.timedelta(days=1)).isoformat()
    form = {"amount": "10.00", "payment_date": payment_date, "method": "card"}
    superuser.is_staff = True
    superuser.save()

    client.force_login(clerk)
    page = client.post(f"/billing/invoices/{invoice.number}/payments/", form)
    client.force_login(superuser)
    admin = client.post(reverse("admin:invoices_invoice_record_payment", args=[invoice.pk]), form)

    assert page.status_code == 400
    assert message in page.content.decode()
    assert admin.status_code == 200
    assert message in admin.content.decode()
    assert not Payment.objects.exists()


def test_the_payment_date_picker_stops_at_today(client, clerk):
    invoice = posted_invoice()
    client.force_login(clerk)

    html = client.get(f"/billing/invoices/{invoice.number}/").content.decode()

    field = html.split('name="payment_date"')[1].split(">")[0]
    assert f'max="{timezone.localdate().isoformat()}"' in field
    assert 'min="2000-01-01"' in field


# --- the import file's encoding (issue 11, item 15) ----------------------------


def test_the_import_takes_utf8_with_a_byte_order_mark(tmp_path):
    text = '\ufeff{"accounts": [{"name": "Zoë", "currency": "EUR", "bill_cycle_day": 1}]}'

    code, _, err = import_text(tmp_path, text.encode("utf-8"))

    assert (code, err) == (0, [])
    assert counts() == (1, 0, 0)


def test_an_empty_file_name_is_a_malformed_command_line():
    with pytest.raises(CommandError) as refusal:
        call_command("import_accounts", "", stdout=io.StringIO(), stderr=io.StringIO())

    assert str(refusal.value) == "Error: argument FILE: must not be empty"
