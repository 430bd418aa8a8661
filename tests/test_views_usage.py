"""/billing/usage/ (INTERFACES.md, "Pages"): usage records with their charge
and account and whether they are billed, filtered, sorted and exported; and
an import_usage file uploaded there, imported by the task queue."""

import csv
import datetime
import io
from decimal import Decimal

import openpyxl
import pytest
from django.core.cache import caches
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.uploads import SWEEP_GRACE_SECONDS, UploadStatus
from customers.models import UsageRecord
from invoices import filters
from invoices.models import UsageUpload, UsageUploadPart
from invoices.usage import MAX_REPORTED_PROBLEMS
from invoices.usage_uploads import usage_upload_import, usage_uploads_sweep
from tests.factories import (
    AccountFactory,
    DocumentFactory,
    DocumentItemFactory,
    SubscriptionFactory,
    UsageChargeFactory,
    UsageRecordFactory,
)

pytestmark = pytest.mark.django_db

PAGE = "/billing/usage/"
JAN = datetime.date(2026, 1, 1)
HEADER = "id,charge,date,quantity\n"


@pytest.fixture
def api_calls():
    account = AccountFactory(number="A-ACME", name="Acme Corp")
    return UsageChargeFactory(
        number="C-CALLS",
        name="API calls",
        unit="calls",
        start_date=JAN,
        subscription=SubscriptionFactory(number="S-ACME", account=account, start_date=JAN),
    )


@pytest.fixture
def storage():
    account = AccountFactory(number="A-GLOBEX", name="Globex")
    return UsageChargeFactory(
        number="C-STORE",
        name="Storage",
        unit="GB",
        start_date=JAN,
        subscription=SubscriptionFactory(number="S-GLOBEX", account=account, start_date=JAN),
    )


def bill(charge, start, end, *, status="Draft"):
    """A document whose item of ``charge`` covers ``start``..``end``."""
    document = DocumentFactory(account=charge.subscription.account, status=status)
    DocumentItemFactory(
        document=document,
        charge=charge,
        service_start=start,
        service_end=end,
        document_canceled=status == "Canceled",
    )
    return document


def rows(html):
    return html.count('data-testid="usage-row"')


def listed(client, **params):
    html = client.get(PAGE, params).content.decode()
    return {r.record_id for r in UsageRecord.objects.all() if f">{r.record_id}<" in html}


# --- The list ----------------------------------------------------------------------


def test_anonymous_users_are_sent_to_sign_in(client):
    assert client.get(PAGE).url.startswith("/accounts/login/")


def test_a_user_without_the_role_is_forbidden(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("nobody", password="pw"))
    assert client.get(PAGE).status_code == 403


def test_it_lists_records_with_their_charge_account_and_subscription(client, viewer, api_calls):
    UsageRecordFactory(
        record_id="r-1",
        charge=api_calls,
        date=datetime.date(2026, 1, 10),
        quantity=Decimal("12500.5"),
    )
    client.force_login(viewer)

    response = client.get(PAGE)

    html = response.content.decode()
    assert response.status_code == 200
    assert rows(html) == 1
    for text in ["r-1", "2026-01-10", "12,500.5", "calls", "C-CALLS", "API calls"]:
        assert f">{text}<" in html
    for text in ["A-ACME", "Acme Corp", "S-ACME"]:
        assert text in html
    assert 'href="/billing/accounts/A-ACME/"' in html
    # in the site navigation, marked as the current page
    assert 'href="/billing/usage/" aria-current="page">Usage</a>' in html


def test_a_record_is_billed_when_a_live_item_of_its_charge_covers_its_date(
    client, viewer, api_calls
):
    january = bill(api_calls, JAN, datetime.date(2026, 1, 31))
    canceled = bill(
        api_calls, datetime.date(2026, 2, 1), datetime.date(2026, 2, 28), status="Canceled"
    )
    UsageRecordFactory(record_id="jan", charge=api_calls, date=datetime.date(2026, 1, 31))
    UsageRecordFactory(record_id="feb", charge=api_calls, date=datetime.date(2026, 2, 1))
    UsageRecordFactory(record_id="mar", charge=api_calls, date=datetime.date(2026, 3, 1))
    client.force_login(viewer)

    html = client.get(PAGE, {"sort": "date"}).content.decode()

    assert f'<a href="/billing/invoices/{january.number}/">{january.number}</a>' in html
    assert canceled.number not in html
    assert html.count("Not billed") == 2


def test_the_page_takes_the_same_queries_for_many_records(client, viewer, api_calls, storage):
    client.force_login(viewer)
    bill(api_calls, JAN, datetime.date(2026, 1, 31))
    UsageRecordFactory(charge=api_calls, date=JAN)
    client.get(PAGE)
    caches["pages"].clear()  # (the header's notices: rendered each time, as below)
    with CaptureQueriesContext(connection) as few:
        client.get(PAGE)
    for day in range(1, 21):
        UsageRecordFactory(charge=api_calls if day % 2 else storage, date=JAN.replace(day=day))
    caches["pages"].clear()
    with CaptureQueriesContext(connection) as many:
        html = client.get(PAGE).content.decode()

    assert rows(html) == 21
    assert len(many.captured_queries) == len(few.captured_queries)


def test_filters_by_account_charge_and_dates(client, viewer, api_calls, storage):
    UsageRecordFactory(record_id="calls-5", charge=api_calls, date=JAN.replace(day=5))
    UsageRecordFactory(record_id="calls-20", charge=api_calls, date=JAN.replace(day=20))
    UsageRecordFactory(record_id="store-10", charge=storage, date=JAN.replace(day=10))
    client.force_login(viewer)

    assert listed(client) == {"calls-5", "calls-20", "store-10"}
    assert listed(client, account="A-ACME") == {"calls-5", "calls-20"}
    # numbers are matched exactly, case included (INTERFACES.md)
    assert listed(client, account="a-acme") == set()
    assert listed(client, charge="C-STORE") == {"store-10"}
    assert listed(client, date_from="2026-01-10") == {"calls-20", "store-10"}
    assert listed(client, date_to="2026-01-10") == {"calls-5", "store-10"}
    assert listed(client, account="A-ACME", date_from="2026-01-06", date_to="2026-01-31") == {
        "calls-20"
    }


def test_the_account_filter_reads_the_records_by_the_accounts_charge_ids(
    client, viewer, api_calls, storage
):
    """The records are read by the account's charge ids (which their BRIN
    serves on PostgreSQL), not joined to the account: a join filtered on the
    account's number was a scan of every record (docs/benchmarks.md)."""
    UsageRecordFactory(record_id="calls-5", charge=api_calls, date=JAN.replace(day=5))
    UsageRecordFactory(record_id="store-10", charge=storage, date=JAN.replace(day=10))
    client.force_login(viewer)

    with CaptureQueriesContext(connection) as queries:
        assert listed(client, account="A-ACME") == {"calls-5"}
    records = [
        q["sql"]
        for q in queries.captured_queries
        if 'FROM "customers_usagerecord"' in q["sql"] and "LIMIT 26" in q["sql"]
    ]
    assert records
    for sql in records:
        assert f'"customers_usagerecord"."charge_id" IN ({api_calls.id})' in sql
        # an account with few records: the page reads them by their ids
        assert """"customers_usagerecord"."record_id" IN ('calls-5')""" in sql
        assert '"customers_account"."number" = ' not in sql
    assert listed(client, account="A-NOBODY") == set()


def test_an_account_with_many_records_is_filtered_by_its_charge_ids(
    client, viewer, api_calls, storage, monkeypatch
):
    monkeypatch.setattr(filters, "ACCOUNT_RECORDS_LISTED", 1)
    UsageRecordFactory(record_id="calls-5", charge=api_calls, date=JAN.replace(day=5))
    UsageRecordFactory(record_id="calls-20", charge=api_calls, date=JAN.replace(day=20))
    UsageRecordFactory(record_id="store-10", charge=storage, date=JAN.replace(day=10))
    client.force_login(viewer)

    with CaptureQueriesContext(connection) as queries:
        assert listed(client, account="A-ACME") == {"calls-5", "calls-20"}
    page = [q["sql"] for q in queries.captured_queries if "LIMIT 26" in q["sql"]]
    assert page and all('"customers_usagerecord"."record_id" IN' not in sql for sql in page)


def test_a_bad_date_in_the_filter_is_said_and_lists_nothing(client, viewer, api_calls):
    UsageRecordFactory(charge=api_calls)
    client.force_login(viewer)

    response = client.get(PAGE, {"date_from": "2026-13-40"})

    assert response.status_code == 200
    assert "Enter a valid date." in response.content.decode()
    assert rows(response.content.decode()) == 0


def test_it_sorts_by_quantity_and_pages(client, viewer, api_calls):
    for quantity in [5, 300, 40]:
        UsageRecordFactory(record_id=f"q{quantity}", charge=api_calls, quantity=quantity)
    client.force_login(viewer)

    html = client.get(PAGE, {"sort": "-quantity"}).content.decode()
    assert html.index(">q300<") < html.index(">q40<") < html.index(">q5<")

    html = client.get(PAGE, {"sort": "quantity", "per_page": 2, "page": 2}).content.decode()
    assert rows(html) == 1 and ">q300<" in html


def test_csv_export_has_the_page_filter_and_the_billing_document(
    client, viewer, api_calls, storage
):
    document = bill(api_calls, JAN, datetime.date(2026, 1, 31))
    UsageRecordFactory(record_id="billed", charge=api_calls, date=JAN, quantity=Decimal("0.25"))
    UsageRecordFactory(
        record_id="open", charge=api_calls, date=datetime.date(2026, 2, 3), quantity=12000
    )
    UsageRecordFactory(record_id="other", charge=storage, date=JAN)
    client.force_login(viewer)

    response = client.get(PAGE, {"account": "A-ACME", "sort": "date", "_export": "csv"})

    assert response.status_code == 200
    assert response["Content-Disposition"].endswith('.csv"')
    table = list(csv.reader(io.StringIO(response.content.decode())))
    header = table[0]
    assert header[:3] == ["Id", "Date", "Quantity"]
    by_id = {row[0]: dict(zip(header, row, strict=True)) for row in table[1:]}
    assert set(by_id) == {"billed", "open"}
    assert by_id["billed"]["Billed on"] == document.number
    assert by_id["billed"]["Quantity"] == "0.25"
    assert by_id["billed"]["Account"] == "A-ACME"
    assert by_id["billed"]["Charge"] == "C-CALLS"
    assert by_id["billed"]["Unit"] == "calls"
    assert by_id["open"]["Billed on"] == ""
    assert by_id["open"]["Quantity"] == "12000"


def test_xlsx_export(client, viewer, api_calls):
    UsageRecordFactory(record_id="=HYPERLINK(1)", charge=api_calls)
    client.force_login(viewer)

    response = client.get(PAGE, {"_export": "xlsx"})

    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values[0][0] == "Id"
    # neutralised for spreadsheets, as every export (core.tables)
    assert values[1][0] == "'=HYPERLINK(1)"


# --- Uploading a file --------------------------------------------------------------


def upload_file(client, content, *, name="usage.csv"):
    if isinstance(content, str):
        content = content.encode("utf-8")
    return client.post(PAGE, {"file": SimpleUploadedFile(name, content, "text/csv")})


def test_a_viewer_sees_no_upload_form_and_cannot_upload(client, viewer, api_calls):
    client.force_login(viewer)

    assert 'data-testid="usage-upload-form"' not in client.get(PAGE).content.decode()
    response = upload_file(client, HEADER + "u1,C-CALLS,2026-01-10,5\n")

    assert response.status_code == 403
    assert not UsageUpload.objects.exists() and not UsageRecord.objects.exists()


def test_an_uploaded_file_is_imported_by_the_task_queue(
    client, clerk, api_calls, storage, django_capture_on_commit_callbacks
):
    UsageRecordFactory(record_id="u2", charge=api_calls, date=JAN.replace(day=31), quantity=500)
    client.force_login(clerk)
    assert 'data-testid="usage-upload-form"' in client.get(PAGE).content.decode()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = upload_file(
            client,
            HEADER
            + "u1,C-CALLS,2026-01-10,12000\n"
            + "u2,C-CALLS,2026-01-31,500\n"
            + "u3,C-STORE,2026-01-05,80\n",
        )

    assert len(callbacks) == 1
    upload = UsageUpload.objects.get()
    assert response.status_code == 302 and response.url == f"/billing/usage/uploads/{upload.pk}/"
    assert upload.status == UploadStatus.IMPORTED
    assert upload.summary == "imported 2 usage records, 1 already recorded"
    assert upload.uploaded_by == clerk and upload.file_name == "usage.csv"
    assert upload.started_at <= upload.finished_at
    assert set(UsageRecord.objects.values_list("record_id", flat=True)) == {"u1", "u2", "u3"}
    # the bytes are dropped once the import has ended; the row remains
    assert not UsageUploadPart.objects.exists()

    html = client.get(response.url).content.decode()
    assert "imported 2 usage records, 1 already recorded" in html
    assert "hx-trigger" not in html  # ended: no more polling
    listing = client.get(PAGE).content.decode()
    assert 'data-testid="upload-row"' in listing
    assert "imported 2 usage records, 1 already recorded" in listing


def test_a_refused_file_lists_its_problems_as_the_command_prints_them(
    client, clerk, api_calls, django_capture_on_commit_callbacks
):
    lines = [f"x{n},C-CALLS,2026-01-10,-{n}" for n in range(1, MAX_REPORTED_PROBLEMS + 6)]
    client.force_login(clerk)

    with django_capture_on_commit_callbacks(execute=True):
        response = upload_file(client, HEADER + "ok,C-CALLS,2026-01-10,1\n" + "\n".join(lines))

    upload = UsageUpload.objects.get()
    assert upload.status == UploadStatus.REFUSED
    assert len(upload.problems) == MAX_REPORTED_PROBLEMS + 1
    assert upload.problems[0] == "line 3, quantity: must be 0 or more, not '-1'"
    assert upload.problems[-1] == "... and 5 more problems"
    assert not UsageRecord.objects.exists()

    html = client.get(response.url).content.decode()
    assert "Refused: nothing was imported." in html
    assert "<li>line 3, quantity: must be 0 or more, not &#x27;-1&#x27;</li>" in html
    assert "<li>... and 5 more problems</li>" in html


def test_a_file_that_is_not_utf8_is_refused_with_the_import_message(
    client, clerk, api_calls, django_capture_on_commit_callbacks
):
    client.force_login(clerk)

    with django_capture_on_commit_callbacks(execute=True):
        upload_file(client, (HEADER + "u1,C-CALLS,2026-01-10,5\n").encode("utf-16"))

    upload = UsageUpload.objects.get()
    assert upload.status == UploadStatus.REFUSED
    assert upload.problems == [
        "line 1: the file is in UTF-16; usage files are UTF-8 text (a byte order mark is "
        "allowed): save it as UTF-8"
    ]
    assert not UsageRecord.objects.exists()


def test_a_file_over_the_limit_is_refused_on_the_page_and_nothing_is_stored(
    client, clerk, api_calls, settings, django_capture_on_commit_callbacks
):
    settings.IMPORT_MAX_BYTES = 30
    client.force_login(clerk)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = upload_file(client, HEADER + "u1,C-CALLS,2026-01-10,5\n")

    assert response.status_code == 400
    assert "an upload holds at most 30 bytes (IMPORT_MAX_BYTES)" in response.content.decode()
    assert callbacks == []
    assert not UsageUpload.objects.exists() and not UsageRecord.objects.exists()


@pytest.mark.parametrize(
    ("files", "message"),
    [({}, "This field is required."), ({"file": b""}, "The submitted file is empty.")],
    ids=["no-file", "empty"],
)
def test_no_file_or_an_empty_one_is_refused_on_the_page(client, clerk, files, message):
    client.force_login(clerk)
    data = {name: SimpleUploadedFile("u.csv", content) for name, content in files.items()}

    response = client.post(PAGE, data)

    assert response.status_code == 400
    assert message in response.content.decode()
    assert not UsageUpload.objects.exists()


def test_the_task_run_twice_imports_once(
    client, clerk, api_calls, django_capture_on_commit_callbacks
):
    client.force_login(clerk)
    with django_capture_on_commit_callbacks(execute=True):
        upload_file(client, HEADER + "u1,C-CALLS,2026-01-10,5\nu2,C-CALLS,2026-01-11,6\n")
    upload = UsageUpload.objects.get()
    done = (upload.status, upload.summary, upload.finished_at)

    usage_upload_import(upload_id=upload.pk)

    upload.refresh_from_db()
    assert (upload.status, upload.summary, upload.finished_at) == done
    assert upload.attempts == 1
    assert UsageRecord.objects.count() == 2


def test_a_task_retried_after_its_worker_died_imports_the_stored_file(
    client, clerk, api_calls, django_capture_on_commit_callbacks
):
    client.force_login(clerk)
    # the upload is stored, its task lost with its worker mid-import: Processing
    with django_capture_on_commit_callbacks(execute=False):
        upload_file(client, HEADER + "u1,C-CALLS,2026-01-10,5\n")
    upload = UsageUpload.objects.get()
    UsageUpload.objects.filter(pk=upload.pk).update(status=UploadStatus.PROCESSING, attempts=1)
    html = client.get(f"/billing/usage/uploads/{upload.pk}/").content.decode()
    assert "Being checked and imported" in html
    assert f'hx-get="/billing/usage/uploads/{upload.pk}/status/"' in html

    usage_upload_import(upload_id=upload.pk)

    upload.refresh_from_db()
    assert (upload.status, upload.summary, upload.attempts) == (
        UploadStatus.IMPORTED,
        "imported 1 usage records, 0 already recorded",
        2,
    )
    assert UsageRecord.objects.get().quantity == 5


def test_a_file_larger_than_one_part_is_read_whole(
    client, clerk, api_calls, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr("core.uploads.UPLOAD_PART_BYTES", 7)
    client.force_login(clerk)
    body = "".join(f"u{n},C-CALLS,2026-01-{n:02d},{n}\n" for n in range(1, 29))

    with django_capture_on_commit_callbacks(execute=True):
        upload_file(client, HEADER + body)

    upload = UsageUpload.objects.get()
    assert UsageUploadPart.objects.count() == 0
    assert upload.summary == "imported 28 usage records, 0 already recorded"
    assert sum(UsageRecord.objects.values_list("quantity", flat=True)) == sum(range(1, 29))


def test_the_status_part_polls_until_the_import_ends(client, viewer, clerk):
    upload = UsageUpload.objects.create(file_name="u.csv", size=10, uploaded_by=clerk)
    client.force_login(viewer)
    status = f"/billing/usage/uploads/{upload.pk}/status/"

    pending = client.get(status).content.decode()
    assert 'hx-trigger="every 2s"' in pending and "Pending" in pending

    UsageUpload.objects.filter(pk=upload.pk).update(
        status=UploadStatus.IMPORTED, summary="imported 3 usage records, 0 already recorded"
    )
    done = client.get(status).content.decode()
    assert "hx-trigger" not in done
    assert "imported 3 usage records, 0 already recorded" in done
    assert client.post(status).status_code == 405


# --- An import whose task was lost -------------------------------------------------


def stored_upload(client, content, django_capture_on_commit_callbacks):
    """An upload stored, its task never queued (the process died after the commit)."""
    with django_capture_on_commit_callbacks(execute=False):
        upload_file(client, content)
    return UsageUpload.objects.get()


def test_the_sweep_queues_again_an_upload_left_pending(
    client, clerk, api_calls, django_capture_on_commit_callbacks
):
    client.force_login(clerk)
    upload = stored_upload(
        client, HEADER + "u1,C-CALLS,2026-01-10,5\n", django_capture_on_commit_callbacks
    )
    # within the grace period it is left to the queue
    with django_capture_on_commit_callbacks(execute=True):
        assert usage_uploads_sweep() == 0
    UsageUpload.objects.filter(pk=upload.pk).update(
        uploaded_at=timezone.now() - datetime.timedelta(seconds=SWEEP_GRACE_SECONDS + 1)
    )

    with django_capture_on_commit_callbacks(execute=True):
        assert usage_uploads_sweep() == 1

    upload.refresh_from_db()
    assert upload.status == UploadStatus.IMPORTED
    assert UsageRecord.objects.count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert usage_uploads_sweep() == 0


def test_the_sweep_queues_again_an_upload_its_worker_left_processing(
    client, clerk, api_calls, django_capture_on_commit_callbacks
):
    client.force_login(clerk)
    upload = stored_upload(
        client, HEADER + "u1,C-CALLS,2026-01-10,5\n", django_capture_on_commit_callbacks
    )
    long_ago = timezone.now() - datetime.timedelta(seconds=SWEEP_GRACE_SECONDS + 1)
    UsageUpload.objects.filter(pk=upload.pk).update(
        status=UploadStatus.PROCESSING, attempts=1, started_at=long_ago
    )

    with django_capture_on_commit_callbacks(execute=True):
        assert usage_uploads_sweep() == 1

    upload.refresh_from_db()
    assert (upload.status, upload.attempts) == (UploadStatus.IMPORTED, 2)


def test_the_sweeps_are_scheduled_every_minute():
    from django_q.models import Schedule

    sweeps = Schedule.objects.filter(
        func__in=["invoices.tasks.sweep_usage_uploads", "customers.tasks.sweep_account_uploads"]
    )
    assert sorted(sweeps.values_list("schedule_type", "minutes", "repeats")) == [("I", 1, -1)] * 2


def test_the_default_order_is_by_id(client, viewer, api_calls):
    for record_id in ["b", "c", "a"]:
        UsageRecordFactory(record_id=record_id, charge=api_calls)
    client.force_login(viewer)

    html = client.get(PAGE).content.decode()

    assert html.index(">a<") < html.index(">b<") < html.index(">c<")
