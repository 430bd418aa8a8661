"""``manage.py import_usage FILE`` exactly as INTERFACES.md says (issue 13):
RFC 4180 CSV, the whole file validated first with line numbers, idempotent by
record id, late usage refused naming the document, hostile input refused
with nothing recorded. On SQLite (bulk inserts) and PostgreSQL (COPY)."""

import datetime
import io
import random
import tracemalloc
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection

from billruns.services import bill_run_create, bill_run_execute
from customers.models import Charge, Status, UsageRecord
from invoices import usage
from invoices.models import Document, DocumentItem
from tests.factories import (
    ChargeFactory,
    SubscriptionFactory,
    UsageChargeFactory,
    UsageRecordFactory,
)

pytestmark = pytest.mark.django_db

JAN = datetime.date(2026, 1, 1)
HEADER = "id,charge,date,quantity\n"


def import_usage(tmp_path, content, *, name="usage.csv"):
    """(exit code, stdout, stderr lines) of ``import_usage`` on ``content``
    (text is written as UTF-8, bytes as they are)."""
    path = tmp_path / name
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return run(str(path))


def run(path, stdin=None):
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        call_command("import_usage", path, stdout=out, stderr=err, stdin=stdin)
    except SystemExit as exit_:
        code = exit_.code
    return code, out.getvalue().strip(), err.getvalue().splitlines()


@pytest.fixture
def api_calls():
    return UsageChargeFactory(number="F-C4", start_date=JAN)


@pytest.fixture
def storage():
    return UsageChargeFactory(number="F-C5", name="Storage", unit="GB", start_date=JAN)


def recorded():
    return {
        r.record_id: (r.charge.number, r.date.isoformat(), r.quantity)
        for r in UsageRecord.objects.select_related("charge")
    }


def invoice(charge, start, end, *, number="INV00000001", status="Draft"):
    document = Document.objects.create(
        document_type="invoice",
        number=number,
        account=charge.subscription.account,
        status=status,
        currency="USD",
        amount=Decimal("1.00"),
        balance=Decimal("1.00"),
        invoice_date=end,
        due_date=end,
    )
    DocumentItem.objects.create(
        document=document,
        charge=charge,
        subscription=charge.subscription,
        charge_name=charge.name,
        service_start=start,
        service_end=end,
        amount=Decimal("1.00"),
        document_canceled=status == "Canceled",
    )
    return document


# --- What it records -------------------------------------------------------------

FIRST_FILE = (
    HEADER + "u1,F-C4,2026-01-10,12000\n"
    "u2,F-C4,2026-01-31,500\n"
    "u3,F-C5,2026-01-05,80\n"
    "u4,F-C5,2026-01-20,70.5\n"
)


def test_it_records_the_file_and_says_how_many(tmp_path, api_calls, storage):
    code, out, err = import_usage(tmp_path, FIRST_FILE)

    assert (code, out, err) == (0, "imported 4 usage records, 0 already recorded", [])
    assert recorded() == {
        "u1": ("F-C4", "2026-01-10", Decimal("12000")),
        "u2": ("F-C4", "2026-01-31", Decimal("500")),
        "u3": ("F-C5", "2026-01-05", Decimal("80")),
        "u4": ("F-C5", "2026-01-20", Decimal("70.5")),
    }


def test_a_file_sent_twice_is_recorded_once(tmp_path, api_calls, storage):
    import_usage(tmp_path, FIRST_FILE)

    code, out, err = import_usage(tmp_path, FIRST_FILE)

    assert (code, out, err) == (0, "imported 0 usage records, 4 already recorded", [])
    assert UsageRecord.objects.count() == 4


def test_the_worked_examples_second_file_records_what_is_new(tmp_path, api_calls, storage):
    import_usage(tmp_path, FIRST_FILE)

    code, out, _ = import_usage(
        tmp_path,
        HEADER + "u1,F-C4,2026-01-10,12000\nu5,F-C4,2026-02-14,3000\nu5b,F-C4,2026-03-10,4000\n",
    )

    assert (code, out) == (0, "imported 2 usage records, 1 already recorded")


@pytest.mark.parametrize("probed", [0, 1000])
def test_an_id_taken_or_repeated_past_the_first_lines_is_sorted_out(
    tmp_path, api_calls, monkeypatch, probed
):
    """PostgreSQL looks up only the first lines' ids before writing the
    records straight into their table: an id recorded before or repeated
    further on fails that writing (the records' key), which is rolled back,
    and the lines are sorted out as always."""
    monkeypatch.setattr(usage, "PROBE_IDS", probed)
    UsageRecordFactory(record_id="old", charge=api_calls, date=JAN, quantity=Decimal(2))
    content = (
        HEADER
        + "".join(f"n{n},F-C4,2026-01-{n % 28 + 1:02d},1\n" for n in range(30))
        + "old,F-C4,2026-01-01,2\nn3,F-C4,2026-01-04,1\nlast,F-C4,2026-01-05,1\n"
    )

    code, out, err = import_usage(tmp_path, content)

    assert (code, out, err) == (0, "imported 31 usage records, 2 already recorded", [])
    assert UsageRecord.objects.count() == 32


def test_a_record_sent_twice_in_one_file_counts_once(tmp_path, api_calls):
    code, out, _ = import_usage(
        tmp_path, HEADER + "u1,F-C4,2026-01-10,5\nu1,F-C4,2026-01-10,5.000\nu2,F-C4,2026-01-11,1\n"
    )

    assert (code, out) == (0, "imported 2 usage records, 1 already recorded")
    assert recorded()["u1"] == ("F-C4", "2026-01-10", Decimal(5))


def test_the_same_record_already_billed_is_already_recorded_not_late(tmp_path, api_calls):
    import_usage(tmp_path, HEADER + "u1,F-C4,2026-01-10,5\n")
    invoice(api_calls, JAN, datetime.date(2026, 1, 31))

    code, out, err = import_usage(tmp_path, HEADER + "u1,F-C4,2026-01-10,5\n")

    assert (code, out, err) == (0, "imported 0 usage records, 1 already recorded", [])


def test_rfc_4180_a_byte_order_mark_crlf_and_quoted_fields(tmp_path, api_calls):
    content = (
        b"\xef\xbb\xbfid,charge,date,quantity\r\n"
        b'"u,1","F-C4","2026-01-10","1.5"\r\n'
        b'"say ""hi""",F-C4,2026-01-11,2\r\n'
        b"u3,F-C4,2026-01-12,0\r\n"
    )

    code, out, err = import_usage(tmp_path, content)

    assert (code, out, err) == (0, "imported 3 usage records, 0 already recorded", [])
    assert set(recorded()) == {"u,1", 'say "hi"', "u3"}
    assert recorded()["u3"][2] == 0


@pytest.mark.parametrize(
    "content",
    [HEADER, "id,charge,date,quantity", "\ufeffid,charge,date,quantity\r\n"],
    ids=["lf", "no-newline", "bom-crlf"],
)
def test_a_file_with_the_header_alone_records_nothing_and_succeeds(tmp_path, content):
    code, out, err = import_usage(tmp_path, content)

    assert (code, out, err) == (0, "imported 0 usage records, 0 already recorded", [])


def test_standard_input(api_calls):
    code, out, _ = run("-", stdin=io.BytesIO(b"id,charge,date,quantity\nu1,F-C4,2026-01-02,3\n"))

    assert (code, out) == (0, "imported 1 usage records, 0 already recorded")


def test_the_largest_quantity_and_the_smallest_fraction(tmp_path, api_calls):
    code, _, err = import_usage(
        tmp_path, HEADER + "u1,F-C4,2026-01-10,999999999999.999999\nu2,F-C4,2026-01-10,0.000001\n"
    )

    assert (code, err) == (0, [])
    assert recorded()["u1"][2] == Decimal("999999999999.999999")
    assert recorded()["u2"][2] == Decimal("0.000001")


def test_a_record_after_the_billed_period_is_recorded(tmp_path, api_calls):
    invoice(api_calls, JAN, datetime.date(2026, 1, 31))

    code, out, _ = import_usage(tmp_path, HEADER + "u1,F-C4,2026-02-01,5\n")

    assert (code, out) == (0, "imported 1 usage records, 0 already recorded")


def test_a_canceled_documents_period_takes_usage_again(tmp_path, api_calls):
    invoice(api_calls, JAN, datetime.date(2026, 1, 31), status="Canceled")

    code, _, err = import_usage(tmp_path, HEADER + "u1,F-C4,2026-01-10,5\n")

    assert (code, err) == (0, [])


# --- What it refuses, with nothing recorded ------------------------------------


def refused(tmp_path, content, **kwargs):
    code, out, err = import_usage(tmp_path, content, **kwargs)
    assert code == 1
    assert out == ""
    assert not UsageRecord.objects.filter(record_id__startswith="new").exists()
    return err


def test_late_usage_is_refused_naming_the_document_that_billed_it(tmp_path, api_calls):
    invoice(api_calls, JAN, datetime.date(2026, 1, 31), number="INV00000007", status="Posted")

    err = refused(tmp_path, HEADER + "new1,F-C4,2026-02-01,1\nnew2,F-C4,2026-01-31,5\n")

    assert err == [
        "line 3, date: 2026-01-31 is in a period of charge F-C4 already billed on INV00000007 "
        "(2026-01-01 to 2026-01-31); cancel that run first, or record the usage on a later date"
    ]


def test_the_same_id_with_other_values_is_refused(tmp_path, api_calls):
    import_usage(tmp_path, HEADER + "u1,F-C4,2026-01-10,5\n")

    err = refused(tmp_path, HEADER + "new1,F-C4,2026-01-10,1\nu1,F-C4,2026-01-10,6\n")

    assert err == [
        "line 3, id: u1 is already recorded with other values (charge F-C4, 2026-01-10, "
        "quantity 5); the same id is the same record"
    ]
    assert recorded()["u1"][2] == 5


def test_an_id_twice_in_the_file_with_other_values_is_refused(tmp_path, api_calls):
    err = refused(
        tmp_path,
        HEADER + "new1,F-C4,2026-01-10,1\nnew1,F-C4,2026-01-11,1\nnew1,F-C4,2026-01-10,1\n",
    )

    assert err == ["line 3, id: new1 is also on line 2 with other values; an id is one record"]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("new1,F-C4,2026-01-10,10000000000000", "quantity: must be below 10^12"),
        ("new1,F-C4,2026-01-10,1000000000000", "quantity: must be below 10^12"),
        ("new1,F-C4,2026-01-10,NaN", "quantity: must be a decimal number 0 or more"),
        ("new1,F-C4,2026-01-10,Infinity", "quantity: must be a decimal number 0 or more"),
        ("new1,F-C4,2026-01-10,-1", "quantity: must be 0 or more, not '-1'"),
        ("new1,F-C4,2026-01-10,0.0000001", "quantity: has at most 6 decimal places"),
        ("new1,F-C4,2026-01-10,1e3", "quantity: must be a decimal number"),
        ("new1,F-C4,2026-01-10, 1", "quantity: must be a decimal number"),
        ("new1,F-C4,2026-01-10,1,5", "expected 4 fields (id,charge,date,quantity), not 5"),
        ("new1,F-C4,2026-01-10,.5", "quantity: must be a decimal number"),
        ("new1,F-C4,2026-01-10,", "quantity: must not be empty"),
        ("new1,F-C4,2026-01-10,٣", "quantity: must be a decimal number"),
        ("new1,F-C4,2026-02-30,1", "date: '2026-02-30' is not a calendar date"),
        ("new1,F-C4,2026-1-5,1", "date: must be a date YYYY-MM-DD, not '2026-1-5'"),
        ("new1,F-C4,1999-12-31,1", "date: the date must be between 2000-01-01 and 2099-12-31"),
        ("new1,F-C4,2025-12-31,1", "date: 2025-12-31 is before the start of charge F-C4"),
        ("nëw1,F-C4,2026-01-10,1", "id: must be printable ASCII characters (U+00EB at position 2)"),
        ("new\t1,F-C4,2026-01-10,1", "id: must be printable ASCII characters (U+0009"),
        (f"new{'x' * 98},F-C4,2026-01-10,1", "id: must be at most 100 characters, not 101"),
        (",F-C4,2026-01-10,1", "id: must not be empty"),
        ("new1,C99999999,2026-01-10,1", "charge: unknown charge 'C99999999'"),
        ("new1,f-c4,2026-01-10,1", "charge: unknown charge 'f-c4'"),
        ("new1,,2026-01-10,1", "charge: must not be empty"),
        ('new1,F-C4,2026-01-10,1"', "quantity: must be a decimal number"),
        ('new1,"F-C4"x,2026-01-10,1', "not CSV: ',' expected after '\"'"),
    ],
)
def test_a_bad_cell_is_refused_with_its_line_and_nothing_is_recorded(
    tmp_path, api_calls, row, message
):
    err = refused(
        tmp_path, HEADER + "new0,F-C4,2026-01-10,1\n" + row + "\nnew9,F-C4,2026-01-11,1\n"
    )

    assert len(err) == 1, err
    assert err[0].startswith("line 3"), err
    assert message in err[0], err


def test_a_field_of_ten_million_digits_is_refused_without_reading_it_all(tmp_path, api_calls):
    err = refused(tmp_path, HEADER + "new1,F-C4,2026-01-10," + "9" * 10**7 + "\n")

    assert err == [
        "line 2: not CSV: a field is longer than 131,072 characters; the rest of the file "
        "was not read"
    ]


def test_a_charge_that_is_not_a_usage_charge_is_refused(tmp_path):
    ChargeFactory(number="C-PLAN")

    err = refused(tmp_path, HEADER + "new1,C-PLAN,2026-01-10,1\n")

    assert err == ["line 2, charge: C-PLAN is a recurring charge, not a usage charge"]


def test_a_charge_of_a_canceled_account_or_subscription_is_refused(tmp_path):
    canceled_account = UsageChargeFactory(number="UA", start_date=JAN)
    account = canceled_account.subscription.account
    account.status = Status.CANCELED
    account.save()
    canceled_subscription = UsageChargeFactory(
        number="US", start_date=JAN, subscription=SubscriptionFactory(status=Status.CANCELED)
    )

    err = refused(tmp_path, HEADER + "new1,UA,2026-01-10,1\nnew2,US,2026-01-10,1\n")

    assert err == [
        f"line 2, charge: UA is a charge of account {account.number}, which is Canceled",
        f"line 3, charge: US is a charge of subscription "
        f"{canceled_subscription.subscription.number}, which is Canceled",
    ]


def test_a_date_on_or_after_the_charges_end_is_refused(tmp_path):
    UsageChargeFactory(number="UE", start_date=JAN, end_date=datetime.date(2026, 3, 1))

    err = refused(tmp_path, HEADER + "new1,UE,2026-02-28,1\nnew2,UE,2026-03-01,1\n")

    assert err == [
        "line 3, date: 2026-03-01 is on or after the end of charge UE (2026-03-01, exclusive)"
    ]


@pytest.mark.parametrize(
    ("content", "encoding"),
    [
        (FIRST_FILE.encode("utf-16"), "UTF-16"),
        (FIRST_FILE.encode("utf-16-be"), "UTF-16 or UTF-32 (it has NUL bytes)"),
        (FIRST_FILE.encode("utf-16-le"), "UTF-16 or UTF-32 (it has NUL bytes)"),
        (FIRST_FILE.encode("utf-32"), "UTF-32"),
    ],
    ids=["utf-16-bom", "utf-16-be", "utf-16-le", "utf-32"],
)
def test_a_file_in_utf_16_is_refused(tmp_path, api_calls, content, encoding):
    err = refused(tmp_path, content)

    assert err == [
        f"line 1: the file is in {encoding}; usage files are UTF-8 text (a byte order mark "
        "is allowed): save it as UTF-8"
    ]


def test_bytes_that_are_not_utf_8_are_refused_on_their_line(tmp_path, api_calls):
    content = (HEADER + "new1,F-C4,2026-01-10,1\n").encode() + b"caf\xe9,F-C4,2026-01-10,1\n"

    err = refused(tmp_path, content)

    assert err == [
        "line 3, id: is not UTF-8 text (byte 0xe9); usage files are UTF-8 text (a byte order "
        "mark is allowed): save it as UTF-8"
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "line 1: the file is empty; it starts with the header id,charge,date,quantity"),
        ("id,charge,date\nu1,F-C4,2026-01-10\n", "line 1: the header must be id,charge,date,"),
        ("ID,charge,date,quantity\n", "line 1: the header must be id,charge,date,quantity, not"),
        ("u1,F-C4,2026-01-10,1\n", "line 1: the header must be"),
        (" id,charge,date,quantity\n", "line 1: the header must be"),
    ],
    ids=["empty", "three-columns", "upper-case", "no-header", "space"],
)
def test_a_bad_header_is_refused(tmp_path, api_calls, content, message):
    err = refused(tmp_path, content)

    assert len(err) == 1 and err[0].startswith(message), err


def test_every_problem_is_listed_by_line_the_first_100_then_how_many_more(tmp_path, api_calls):
    UsageRecordFactory(record_id="taken", charge=api_calls, date=JAN, quantity=1)
    rows = []
    for n in range(150):
        if n % 3 == 0:
            rows.append(f"new{n},F-C4,2026-01-10,-{n}")  # a cell: checked as read
        elif n % 3 == 1:
            rows.append(f"new{n},NOPE,2026-01-10,1")  # the database: checked after
        else:
            rows.append(f"new{n},F-C4,2026-01-10,{n}")
    rows.append("taken,F-C4,2026-01-10,2")

    err = refused(tmp_path, HEADER + "\n".join(rows) + "\n")

    assert len(err) == 101
    assert err[-1] == "... and 1 more problems"
    lines = [int(text.split(",")[0].removeprefix("line ")) for text in err[:100]]
    assert lines == sorted(lines)
    assert err[0] == "line 2, quantity: must be 0 or more, not '-0'"
    assert err[1] == "line 3, charge: unknown charge 'NOPE' (no charge has this number)"
    assert UsageRecord.objects.count() == 1


def test_a_line_number_counts_the_line_breaks_inside_quoted_fields(tmp_path, api_calls):
    err = refused(tmp_path, HEADER + '"new\n1",F-C4,2026-01-10,1\nnew2,F-C4,2026-13-01,1\n')

    assert err == [
        "line 2, id: must be printable ASCII characters (U+000A at position 4)",
        "line 4, date: '2026-13-01' is not a calendar date",
    ]


def test_memory_does_not_grow_with_the_file(tmp_path, api_calls, monkeypatch):
    # PostgreSQL holds one run of lines to sort it (RECORD_RUN, 250,000
    # lines): memory is bounded by the run, not the file. A small run here.
    monkeypatch.setattr(usage, "RECORD_RUN", 2000)

    def peak(lines):
        path = tmp_path / f"{lines}.csv"
        with path.open("w") as file:
            file.write(HEADER)
            for n in range(lines):
                file.write(f"m{lines}-{n},F-C4,2026-01-{n % 28 + 1:02d},{n % 1000}.5\n")
        tracemalloc.start()
        try:
            code, _, err = run(str(path))
            used = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert (code, err) == (0, [])
        return used

    small, large = peak(10_000), peak(50_000)

    assert large < small * 1.5 + 512 * 1024, (small, large)
    assert UsageRecord.objects.count() == 60_000


# --- Order and the records' BRIN (issue 13's speed; customers 0014) -------------


@pytest.mark.parametrize("record_run", [3, 1_000_000])
def test_a_file_in_any_order_is_imported_whole_and_the_run_bills_every_record(
    tmp_path, monkeypatch, record_run
):
    """Lines shuffled over charges and dates, inserted a few lines at a time
    in (charge, date) order or all at once: every record is there and the
    run after the import bills each charge's whole quantity."""
    monkeypatch.setattr(usage, "RECORD_RUN", record_run)
    charges = [UsageChargeFactory(number=f"F-R{n}", start_date=JAN) for n in range(4)]
    lines = [
        (f"r{n:03d}", charges[n % 4].number, JAN + datetime.timedelta(days=n % 31), n)
        for n in range(60)
    ]
    random.Random(13).shuffle(lines)
    content = HEADER + "".join(f"{i},{c},{d.isoformat()},{q}.5\n" for i, c, d, q in lines)

    code, out, err = import_usage(tmp_path, content)

    assert (code, out, err) == (0, "imported 60 usage records, 0 already recorded", [])
    assert recorded() == {i: (c, d.isoformat(), Decimal(f"{q}.5")) for i, c, d, q in lines}
    bill_run = bill_run_create(target_date=datetime.date(2026, 2, 1), enqueue=False)
    bill_run_execute(run_id=bill_run.pk)
    billed = dict(
        DocumentItem.objects.filter(document__bill_run=bill_run).values_list(
            "charge__number", "quantity"
        )
    )
    assert billed == {
        charge.number: sum(Decimal(f"{q}.5") for _, c, _, q in lines if c == charge.number)
        for charge in Charge.objects.filter(pk__in=[c.pk for c in charges])
    }


@pytest.mark.parametrize("record_run", [7, 1_000_000])
def test_each_run_of_lines_is_written_in_charge_and_date_order(tmp_path, monkeypatch, record_run):
    """The table's pages hold each run of lines sorted by charge and date,
    as the BRIN wants (PostgreSQL: the records are written in their table's
    order by one COPY)."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's index is a B-tree")
    monkeypatch.setattr(usage, "RECORD_RUN", record_run)
    charges = [UsageChargeFactory(number=f"F-O{n}", start_date=JAN) for n in range(5)]
    lines = [(f"o{n:03d}", charges[n % 5].number, n % 28 + 1) for n in range(70)]
    random.Random(7).shuffle(lines)
    content = HEADER + "".join(f"{i},{c},2026-01-{d:02d},1\n" for i, c, d in lines)

    assert import_usage(tmp_path, content)[:2] == (
        0,
        "imported 70 usage records, 0 already recorded",
    )

    with connection.cursor() as cursor:
        cursor.execute("SELECT charge_id, date FROM customers_usagerecord ORDER BY ctid")
        written = cursor.fetchall()
    runs = [written[n : n + record_run] for n in range(0, len(written), record_run)]
    assert all(run == sorted(run) for run in runs)
    assert written != sorted(written) or record_run >= len(written)


def test_the_import_leaves_no_range_of_the_brin_unsummarized(tmp_path, api_calls):
    """A run's bitmap scan reads every page of an unsummarized range: the
    import summarizes the ranges it filled (PostgreSQL only)."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's index is a B-tree")
    content = HEADER + "".join(f"s{n},F-C4,2026-01-{n % 28 + 1:02d},1\n" for n in range(3000))
    assert import_usage(tmp_path, content)[0] == 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT brin_summarize_new_values('usage_charge_date_quantity'::regclass)")
        assert cursor.fetchone()[0] == 0
