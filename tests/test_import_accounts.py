"""`manage.py import_accounts FILE` (INTERFACES.md, "Loading customers"): the
whole file is validated first, every problem is reported with its JSON path,
and on any problem nothing is imported."""

import copy
import datetime
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import transaction
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from customers.models import Account, Charge, Subscription
from tests.factories import AccountFactory, SubscriptionFactory

DATA = Path(__file__).parent / "data"

INTERFACES_EXAMPLE = {
    "accounts": [
        {
            "number": "A00000001",
            "name": "Acme Corp",
            "bill_to_email": "ap@acme.example",
            "currency": "USD",
            "bill_cycle_day": 1,
            "batch": 1,
            "payment_term_days": 30,
            "subscriptions": [
                {
                    "number": "S00000001",
                    "start_date": "2026-01-15",
                    "charges": [
                        {
                            "name": "Pro plan",
                            "type": "recurring",
                            "amount": "100.00",
                            "currency": "USD",
                            "period": "month",
                            "start_date": "2026-01-15",
                            "end_date": None,
                        },
                        {
                            "name": "Setup fee",
                            "type": "one_time",
                            "amount": "50.00",
                            "currency": "USD",
                            "start_date": "2026-01-15",
                        },
                    ],
                }
            ],
        }
    ]
}


def run_import(source, *, stdin=None):
    """Run the command; return (exit code, stdout, stderr lines)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("import_accounts", str(source), stdout=out, stderr=err, stdin=stdin)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue().splitlines()


def import_document(tmp_path, document):
    path = tmp_path / "book.json"
    path.write_text(json.dumps(document))
    return run_import(path)


def import_text(tmp_path, text):
    path = tmp_path / "book.json"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return run_import(path)


def counts():
    return Account.objects.count(), Subscription.objects.count(), Charge.objects.count()


def account(**fields):
    return {"name": "Customer", "currency": "USD", "bill_cycle_day": 1, **fields}


# -- accepted files -----------------------------------------------------------


@pytest.mark.django_db
def test_it_imports_the_interfaces_example_with_every_field(tmp_path):
    # when
    code, out, err = import_document(tmp_path, INTERFACES_EXAMPLE)

    # then
    assert (code, err) == (0, [])
    assert out.strip() == "imported 1 accounts, 1 subscriptions, 2 charges"
    acme = Account.objects.get()
    assert (acme.number, acme.name, acme.bill_to_email) == (
        "A00000001",
        "Acme Corp",
        "ap@acme.example",
    )
    assert (acme.currency, acme.bill_cycle_day, acme.batch) == ("USD", 1, 1)
    assert (acme.payment_term_days, acme.status) == (30, "Active")
    sub = Subscription.objects.get()
    assert (sub.number, sub.account, sub.status) == ("S00000001", acme, "Active")
    assert sub.start_date == datetime.date(2026, 1, 15)
    plan, fee = Charge.objects.order_by("id")
    assert (plan.subscription, plan.name, plan.charge_type) == (sub, "Pro plan", "recurring")
    assert (plan.amount, plan.currency, plan.period) == (Decimal("100.00"), "USD", "month")
    assert (plan.start_date, plan.end_date) == (datetime.date(2026, 1, 15), None)
    assert plan.charged_through_date is None
    assert (fee.name, fee.charge_type, fee.amount, fee.period) == (
        "Setup fee",
        "one_time",
        Decimal("50.00"),
        "",
    )
    assert (fee.start_date, fee.end_date) == (datetime.date(2026, 1, 15), None)


@pytest.mark.django_db
def test_optional_fields_get_their_defaults_and_numbers_are_generated(tmp_path):
    # given only the required fields
    document = {
        "accounts": [
            {
                "name": "Minimal",
                "currency": "EUR",
                "bill_cycle_day": 31,
                "subscriptions": [
                    {
                        "start_date": "2026-02-01",
                        "charges": [
                            {
                                "name": "Plan",
                                "type": "recurring",
                                "amount": "-5.5",
                                "period": "annual",
                                "start_date": "2026-02-01",
                                "end_date": "2027-02-01",
                            }
                        ],
                    }
                ],
            }
        ]
    }

    # when
    code, out, _ = import_document(tmp_path, document)

    # then
    assert code == 0
    minimal = Account.objects.get()
    assert (minimal.number, minimal.bill_to_email, minimal.batch) == ("A00000001", "", 1)
    assert (minimal.payment_term_days, minimal.status) == (30, "Active")
    sub = Subscription.objects.get()
    assert (sub.number, sub.status) == ("S00000001", "Active")
    charge = Charge.objects.get()
    assert (charge.currency, charge.amount) == ("EUR", Decimal("-5.50"))
    assert charge.end_date == datetime.date(2027, 2, 1)


@pytest.mark.django_db
def test_generated_numbers_skip_numbers_in_the_database_and_in_the_file(tmp_path):
    # given A00000001 and S00000001 taken in the database, A00000002 and S00000002 in the file
    SubscriptionFactory(number="S00000001", account=AccountFactory(number="A00000001"))
    document = {
        "accounts": [
            account(subscriptions=[{"start_date": "2026-01-01"}]),
            account(
                number="A00000002",
                subscriptions=[{"number": "S00000002", "start_date": "2026-01-01"}],
            ),
            account(),
        ]
    }

    # when
    code, _, _ = import_document(tmp_path, document)

    # then
    assert code == 0
    assert list(Account.objects.values_list("number", flat=True)) == [
        "A00000001",
        "A00000002",
        "A00000003",
        "A00000004",
    ]
    assert Account.objects.get(number="A00000003").subscriptions.get().number == "S00000003"


@pytest.mark.django_db
def test_generated_numbers_skip_a_run_of_taken_numbers_longer_than_one_lookup(
    tmp_path, monkeypatch
):
    # given the first five numbers taken, and lookups of two candidates at a time
    monkeypatch.setattr("customers.importer.writing.NUMBER_PROBE_SIZE", 2)
    for i in range(1, 6):
        AccountFactory(number=f"A{i:08d}")

    # when
    code, _, _ = import_document(tmp_path, {"accounts": [account(), account(), account()]})

    # then
    assert code == 0
    assert list(Account.objects.values_list("number", flat=True))[5:] == [
        "A00000006",
        "A00000007",
        "A00000008",
    ]


@pytest.mark.django_db
def test_canceled_status_and_a_foreign_charge_currency_are_kept(tmp_path):
    # given a charge whose currency differs from its account's: allowed, it fails in bill runs
    document = {
        "accounts": [
            account(
                status="Canceled",
                bill_to_email="",
                subscriptions=[
                    {
                        "status": "Canceled",
                        "start_date": "2026-01-01",
                        "charges": [
                            {
                                "name": "Abroad",
                                "type": "one_time",
                                "amount": "9999999999999.99",
                                "currency": "GBP",
                                "start_date": "2026-01-01",
                            }
                        ],
                    }
                ],
            )
        ]
    }

    # when
    code, _, _ = import_document(tmp_path, document)

    # then
    assert code == 0
    assert Account.objects.get().status == "Canceled"
    assert Subscription.objects.get().status == "Canceled"
    assert (Charge.objects.get().currency, Charge.objects.get().amount) == (
        "GBP",
        Decimal("9999999999999.99"),
    )


@pytest.mark.django_db
@pytest.mark.parametrize("book", sorted(p.name for p in DATA.glob("*.book.json")))
def test_it_imports_the_example_books(book):
    # given
    document = json.loads((DATA / book).read_text())
    subscriptions = [s for a in document["accounts"] for s in a.get("subscriptions", [])]
    charges = [c for s in subscriptions for c in s.get("charges", [])]

    # when
    code, out, err = run_import(DATA / book)

    # then
    assert (code, err) == (0, [])
    expected = (len(document["accounts"]), len(subscriptions), len(charges))
    assert out.strip() == "imported {} accounts, {} subscriptions, {} charges".format(*expected)
    assert counts() == expected


@pytest.mark.django_db
def test_it_reads_standard_input_for_a_dash():
    # when
    code, out, _ = run_import("-", stdin=io.BytesIO(json.dumps(INTERFACES_EXAMPLE).encode()))

    # then
    assert code == 0
    assert out.strip() == "imported 1 accounts, 1 subscriptions, 2 charges"
    assert counts() == (1, 1, 2)


# -- refused files: each kind of problem, with its path, importing nothing -----

DELETE = object()


def path_of(keys):
    text = ""
    for key in keys:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else key)
    return text


ACCOUNT = ("accounts", 0)
SUB = (*ACCOUNT, "subscriptions", 0)
PLAN = (*SUB, "charges", 0)
FEE = (*SUB, "charges", 1)

REFUSALS = [
    # (where, new value or DELETE, message fragment)
    ((*ACCOUNT, "name"), DELETE, "required field is missing"),
    ((*ACCOUNT, "currency"), DELETE, "required field is missing"),
    ((*ACCOUNT, "bill_cycle_day"), DELETE, "required field is missing"),
    ((*SUB, "start_date"), DELETE, "required field is missing"),
    ((*PLAN, "name"), DELETE, "required field is missing"),
    ((*PLAN, "type"), DELETE, "required field is missing"),
    ((*PLAN, "amount"), DELETE, "required field is missing"),
    ((*PLAN, "start_date"), DELETE, "required field is missing"),
    ((*PLAN, "period"), DELETE, "required field is missing"),
    ((*ACCOUNT, "name"), None, "must not be null"),
    ((*ACCOUNT, "name"), "   ", "must not be empty"),
    ((*ACCOUNT, "name"), "x" * 256, "at most 255 characters"),
    ((*ACCOUNT, "name"), "nul\x00byte", "NUL"),
    ((*ACCOUNT, "name"), 42, "must be a string, not a number"),
    ((*ACCOUNT, "number"), "", "must not be empty"),
    ((*ACCOUNT, "number"), " A1", "must not start or end with spaces"),
    ((*ACCOUNT, "number"), 1, "must be a string, not a number"),
    ((*ACCOUNT, "colour"), "red", "unknown field"),
    ((*SUB, "plan"), "gold", "unknown field"),
    ((*FEE, "quantity"), 2, "must be a decimal string"),
    ((*FEE, "taxable"), "false", "must be true or false, not a string"),
    ((*FEE, "taxable"), 0, "must be true or false, not a number"),
    ((*ACCOUNT, "tax_codes"), "VAT20", "must be an array of tax codes"),
    ((*ACCOUNT, "tax_codes"), {"VAT20": 1}, "must be an array of tax codes"),
    ((*ACCOUNT, "bill_cycle_day"), True, "must be an integer, not a boolean"),
    ((*ACCOUNT, "bill_cycle_day"), "1", "must be an integer, not a string"),
    ((*ACCOUNT, "bill_cycle_day"), 1.0, "must be an integer, not a number"),
    ((*ACCOUNT, "bill_cycle_day"), 0, "must be between 1 and 31, not 0"),
    ((*ACCOUNT, "bill_cycle_day"), 32, "must be between 1 and 31, not 32"),
    ((*ACCOUNT, "batch"), 0, "must be between 1 and 50, not 0"),
    ((*ACCOUNT, "batch"), 51, "must be between 1 and 50, not 51"),
    ((*ACCOUNT, "batch"), False, "must be an integer, not a boolean"),
    ((*ACCOUNT, "payment_term_days"), -1, "must be between 0 and 365, not -1"),
    ((*ACCOUNT, "payment_term_days"), 366, "must be between 0 and 365, not 366"),
    ((*PLAN, "amount"), 100, "must be a decimal string"),
    ((*PLAN, "amount"), 100.5, "must be a decimal string"),
    ((*PLAN, "amount"), "100.001", "at most 2 decimal places"),
    ((*PLAN, "amount"), "1e3", "at most 2 decimal places"),
    ((*PLAN, "amount"), "NaN", "at most 2 decimal places"),
    ((*PLAN, "amount"), "Infinity", "at most 2 decimal places"),
    ((*PLAN, "amount"), "-Infinity", "at most 2 decimal places"),
    ((*PLAN, "amount"), " 100.00", "at most 2 decimal places"),
    ((*PLAN, "amount"), "100,00", "at most 2 decimal places"),
    ((*PLAN, "amount"), "+5", "at most 2 decimal places"),
    ((*PLAN, "amount"), "", "at most 2 decimal places"),
    ((*PLAN, "amount"), "٣", "at most 2 decimal places"),
    ((*PLAN, "amount"), "10000000000000.00", "below 10^13"),
    ((*PLAN, "amount"), "-10000000000000", "below 10^13"),
    ((*PLAN, "amount"), "1" * 40, "below 10^13"),
    ((*SUB, "start_date"), "2026-1-15", "must be a date YYYY-MM-DD"),
    ((*SUB, "start_date"), "2026-01-15T00:00:00", "must be a date YYYY-MM-DD"),
    ((*SUB, "start_date"), "20260115", "must be a date YYYY-MM-DD"),
    ((*SUB, "start_date"), "2026-02-30", "is not a calendar date"),
    ((*SUB, "start_date"), 20260115, "must be a date string YYYY-MM-DD, not a number"),
    ((*PLAN, "start_date"), "15/01/2026", "must be a date YYYY-MM-DD"),
    ((*PLAN, "end_date"), "2026-01-15", "must be after start_date 2026-01-15"),
    ((*PLAN, "end_date"), "2026-01-01", "must be after start_date 2026-01-15"),
    ((*FEE, "period"), "month", "a one_time charge has no period"),
    ((*FEE, "end_date"), "2026-02-15", "a one_time charge has no end date"),
    ((*PLAN, "period"), "weekly", 'must be one of "month", "quarter", "semi_annual", "annual"'),
    ((*PLAN, "period"), "Month", "must be one of"),
    ((*PLAN, "type"), "metered", 'must be one of "recurring", "one_time", "usage"'),
    ((*ACCOUNT, "status"), "active", 'must be one of "Active", "Canceled"'),
    ((*ACCOUNT, "status"), "Suspended", 'must be one of "Active", "Canceled"'),
    ((*SUB, "status"), "Paused", 'must be one of "Active", "Canceled"'),
    ((*ACCOUNT, "currency"), "XYZ", "unknown currency code 'XYZ'"),
    ((*ACCOUNT, "currency"), "usd", "unknown currency code 'usd'"),
    ((*ACCOUNT, "currency"), "JPY", "currency JPY has 0 decimal places"),
    ((*ACCOUNT, "currency"), 840, "must be a three-letter ISO 4217 currency code"),
    ((*PLAN, "currency"), "KWD", "currency KWD has 3 decimal places"),
    ((*PLAN, "currency"), "EURO", "unknown currency code 'EURO'"),
    ((*ACCOUNT, "bill_to_email"), "not-an-email", "is not a valid email address"),
    ((*ACCOUNT, "bill_to_email"), "a@b", "is not a valid email address"),
    ((*ACCOUNT, "bill_to_email"), ["ap@acme.example"], "must be a string, not an array"),
    ((*ACCOUNT, "subscriptions"), {}, "must be an array, not an object"),
    ((*SUB, "charges"), "none", "must be an array, not a string"),
    (ACCOUNT, "Acme", "must be an object, not a string"),
    (SUB, [], "must be an object, not an array"),
    (PLAN, None, "must be an object, not null"),
]


def changed(document, where, value):
    document = copy.deepcopy(document)
    *parents, last = where
    target = document
    for key in parents:
        target = target[key]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return document


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("where", "value", "message"),
    REFUSALS,
    ids=[f"{path_of(w)}={'DELETE' if v is DELETE else repr(v)[:20]}" for w, v, _ in REFUSALS],
)
def test_it_refuses_a_bad_value_naming_its_path_and_imports_nothing(
    tmp_path, where, value, message
):
    # given the INTERFACES.md example with one thing wrong
    document = changed(INTERFACES_EXAMPLE, where, value)

    # when
    code, out, err = import_document(tmp_path, document)

    # then
    assert code == 1
    assert out == ""
    assert len(err) == 1, err
    path, _, said = err[0].partition(": ")
    assert path == path_of(where)
    assert message in said
    assert counts() == (0, 0, 0)


@pytest.mark.django_db
def test_it_refuses_a_number_given_twice_in_the_file(tmp_path):
    # given
    document = {
        "accounts": [
            account(number="A1", subscriptions=[{"number": "S1", "start_date": "2026-01-01"}]),
            account(number="A2", subscriptions=[{"number": "S1", "start_date": "2026-01-01"}]),
            account(number="A1"),
        ]
    }

    # when
    code, _, err = import_document(tmp_path, document)

    # then
    assert code == 1
    assert err == [
        "accounts[2].number: account number A1 appears more than once in the file "
        "(first at accounts[0].number)",
        "accounts[1].subscriptions[0].number: subscription number S1 appears more than once "
        "in the file (first at accounts[0].subscriptions[0].number)",
    ]
    assert counts() == (0, 0, 0)


@pytest.mark.django_db
def test_it_refuses_numbers_already_in_the_database(tmp_path):
    # given
    SubscriptionFactory(number="S00000001", account=AccountFactory(number="A00000001"))
    before = counts()

    # when
    code, _, err = import_document(tmp_path, INTERFACES_EXAMPLE)

    # then
    assert code == 1
    assert err == [
        "accounts[0].number: account A00000001 already exists (importing does not update)",
        "accounts[0].subscriptions[0].number: subscription S00000001 already exists "
        "(importing does not update)",
    ]
    assert counts() == before


@pytest.mark.django_db
def test_a_bad_hundredth_account_stops_the_first_ninety_nine(tmp_path):
    # given 99 good accounts, then a bad one
    document = {"accounts": [account(number=f"A{i:08d}") for i in range(1, 100)]}
    document["accounts"].append(account(bill_cycle_day=32))

    # when
    code, _, err = import_document(tmp_path, document)

    # then
    assert code == 1
    assert err == ["accounts[99].bill_cycle_day: must be between 1 and 31, not 32"]
    assert counts() == (0, 0, 0)


@pytest.mark.django_db
def test_a_consumed_document_is_dropped_as_it_is_validated_and_imports_the_same():
    from customers.importer import accounts_import

    # given
    document = {"accounts": [account(number=f"A{i:08d}") for i in range(1, 4)]}
    kept = copy.deepcopy(document)
    # when
    summary = accounts_import(document=document, consume=True)
    # then: the file's accounts are gone from the parsed document, not from the database
    assert document == {"accounts": [None, None, None]}
    assert str(summary) == "imported 3 accounts, 0 subscriptions, 0 charges"
    assert sorted(Account.objects.values_list("number", flat=True)) == [
        a["number"] for a in kept["accounts"]
    ]


@pytest.mark.django_db
def test_it_reports_the_first_hundred_problems_then_how_many_more(tmp_path):
    # given 130 accounts without a name
    document = {"accounts": [{"currency": "USD", "bill_cycle_day": 1} for _ in range(130)]}

    # when
    code, _, err = import_document(tmp_path, document)

    # then
    assert code == 1
    assert len(err) == 101
    assert err[0] == "accounts[0].name: required field is missing"
    assert err[99] == "accounts[99].name: required field is missing"
    assert err[100] == "... and 30 more problems"
    assert counts() == (0, 0, 0)


@pytest.mark.django_db
def test_it_reports_every_problem_of_one_object(tmp_path):
    # given
    document = {"accounts": [{"name": "", "currency": "JPY", "bill_cycle_day": 0, "batch": 99}]}

    # when
    code, _, err = import_document(tmp_path, document)

    # then
    assert code == 1
    assert [line.split(":")[0] for line in err] == [
        "accounts[0].name",
        "accounts[0].currency",
        "accounts[0].bill_cycle_day",
        "accounts[0].batch",
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"accounts": [}', "invalid JSON at line 1, column 15: Expecting value"),
        ('{"accounts": []\n  "x": 1}', "invalid JSON at line 2, column 3: Expecting ',' delimiter"),
        ("", "invalid JSON at line 1, column 1: Expecting value"),
        ('{"accounts": [NaN]}', "invalid JSON: NaN is not valid JSON"),
        ('{"accounts": [-Infinity]}', "invalid JSON: -Infinity is not valid JSON"),
        ('{"accounts": [' + "1" * 5000 + "]}", "invalid JSON: Exceeds the limit"),
        ("[" * 100_000 + "]" * 100_000, "invalid JSON: nested too deeply"),
        (
            b'{"accounts": ["\xff"]}',
            "the file is not UTF-8 text (byte 0xff at offset 15 is not UTF-8); import files "
            "are UTF-8 text (a byte order mark is allowed)",
        ),
        (
            '{"accounts": []}'.encode("utf-16"),
            "the file is UTF-16 text; import files are UTF-8 text (a byte order mark is "
            "allowed): save it as UTF-8",
        ),
        ('{"accounts": []}'.encode("utf-16-le"), "the file is UTF-16 (little-endian) text;"),
        ('{"accounts": []}'.encode("utf-16-be"), "the file is UTF-16 (big-endian) text;"),
        ('{"accounts": []}'.encode("utf-32"), "the file is UTF-32 text;"),
        ("[]", '(top level): must be a JSON object with an "accounts" array, not an array'),
        ('"accounts"', "(top level): must be a JSON object"),
        ("{}", "accounts: required field is missing"),
        ('{"accounts": {}}', "accounts: must be an array, not an object"),
        ('{"accounts": [], "extra": 1}', "(top level).extra: unknown field"),
        (
            '{"accounts": [{"name": "a", "name": "b", "currency": "USD", "bill_cycle_day": 1}]}',
            "accounts[0].name: field appears more than once",
        ),
    ],
    ids=[
        "syntax",
        "syntax-line-2",
        "empty",
        "nan",
        "infinity",
        "huge-integer",
        "deep-nesting",
        "not-utf8",
        "utf-16-with-bom",
        "utf-16-le",
        "utf-16-be",
        "utf-32",
        "top-level-array",
        "top-level-string",
        "no-accounts",
        "accounts-not-array",
        "unknown-top-level-field",
        "duplicate-key",
    ],
)
def test_it_refuses_a_malformed_file_cleanly(tmp_path, text, expected):
    # when
    code, out, err = import_text(tmp_path, text)

    # then
    assert code == 1
    assert out == ""
    assert len(err) == 1
    assert err[0].startswith(expected)
    assert counts() == (0, 0, 0)


@pytest.mark.django_db
def test_it_refuses_a_file_over_the_size_limit_before_reading_it(tmp_path, settings):
    # given
    settings.IMPORT_MAX_BYTES = 10
    path = tmp_path / "book.json"
    path.write_text(json.dumps(INTERFACES_EXAMPLE))

    # when
    code, _, err = run_import(path)

    # then
    assert code == 1
    assert len(err) == 1
    assert "larger than the import limit of 10 bytes" in err[0]
    assert counts() == (0, 0, 0)


@pytest.mark.django_db
def test_it_refuses_standard_input_over_the_size_limit(settings):
    # given
    settings.IMPORT_MAX_BYTES = 10

    # when
    code, _, err = run_import("-", stdin=io.BytesIO(json.dumps(INTERFACES_EXAMPLE).encode()))

    # then
    assert code == 1
    assert err == [
        "standard input: larger than the import limit of 10 bytes (IMPORT_MAX_BYTES); "
        "nothing was imported"
    ]


@pytest.mark.django_db
def test_a_file_of_exactly_the_limit_is_accepted(tmp_path, settings):
    # given
    raw = json.dumps({"accounts": []}).encode()
    settings.IMPORT_MAX_BYTES = len(raw)

    # when
    code, out, _ = run_import("-", stdin=io.BytesIO(raw))

    # then
    assert code == 0
    assert out.strip() == "imported 0 accounts, 0 subscriptions, 0 charges"


@pytest.mark.django_db
def test_a_missing_file_is_a_clean_error(tmp_path):
    # when
    code, _, err = run_import(tmp_path / "nowhere.json")

    # then
    assert code == 1
    assert len(err) == 1
    assert "nowhere.json: cannot read the file" in err[0]


# -- fuzz: any input is either refused cleanly or imported whole ----------------

junk = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)


def mostly(valid):
    """Usually a plausible value, now and then anything at all."""
    return st.integers(min_value=0, max_value=19).flatmap(lambda n: junk if n == 0 else valid)


dates = st.dates(datetime.date(1999, 1, 1), datetime.date(2100, 12, 31)).map(
    datetime.date.isoformat
)
amounts = st.one_of(
    st.decimals(min_value=-(10**6), max_value=10**6, places=2).map(str),
    st.decimals(min_value=-(10**14), max_value=10**14, places=2).map(str),
    st.from_regex(r"-?[0-9]{1,14}(\.[0-9]{0,3})?", fullmatch=True),
)
currencies = st.sampled_from(["USD", "USD", "EUR", "GBP", "JPY", "XXX"])
quantities = st.one_of(
    st.decimals(min_value=0, max_value=10**4, places=4).map(str),
    st.from_regex(r"-?[0-9]{1,15}(\.[0-9]{0,5})?", fullmatch=True),
)
charge_numbers = st.sampled_from(["C00000001", "c00000001", "C00000002", "C1"])
recurring_charges = st.fixed_dictionaries(
    {
        "name": mostly(st.text(min_size=1, max_size=30)),
        "type": mostly(st.just("recurring")),
        "amount": mostly(amounts),
        "period": mostly(st.sampled_from(["month", "quarter", "semi_annual", "annual"])),
        "start_date": mostly(dates),
    },
    optional={
        "end_date": mostly(st.none() | dates),
        "currency": mostly(currencies),
        "quantity": mostly(quantities),
        "number": mostly(charge_numbers),
    },
)
one_time_charges = st.fixed_dictionaries(
    {
        "name": mostly(st.text(min_size=1, max_size=30)),
        "type": mostly(st.just("one_time")),
        "amount": mostly(amounts),
        "start_date": mostly(dates),
    },
    optional={
        "currency": mostly(currencies),
        "quantity": mostly(quantities),
        "number": mostly(charge_numbers),
    },
)
prices = st.one_of(
    st.decimals(min_value=0, max_value=10**6, places=6).map(str),
    st.from_regex(r"-?[0-9]{1,13}(\.[0-9]{0,7})?", fullmatch=True),
)
tiers = st.lists(
    st.fixed_dictionaries(
        {"up_to": mostly(st.none() | quantities), "unit_price": mostly(prices)},
        optional={"flat_fee": mostly(amounts)},
    ),
    max_size=4,
)
pricings = st.one_of(
    st.fixed_dictionaries({"model": st.just("per_unit"), "unit_price": mostly(prices)}),
    st.fixed_dictionaries(
        {"model": mostly(st.sampled_from(["graduated", "volume"])), "tiers": mostly(tiers)}
    ),
)
usage_charges = st.fixed_dictionaries(
    {
        "name": mostly(st.text(min_size=1, max_size=30)),
        "type": mostly(st.just("usage")),
        "period": mostly(st.sampled_from(["month", "quarter", "semi_annual", "annual"])),
        "start_date": mostly(dates),
        "unit": mostly(st.text(min_size=1, max_size=60)),
        "pricing": mostly(pricings),
    },
    optional={
        "end_date": mostly(st.none() | dates),
        "currency": mostly(currencies),
        "number": mostly(charge_numbers),
    },
)
any_charges = st.fixed_dictionaries(
    {},
    optional=dict.fromkeys(
        ["name", "type", "amount", "period", "start_date", "end_date", "unit", "pricing", "x"],
        junk,
    ),
)
charges = st.one_of(
    recurring_charges, one_time_charges, one_time_charges, usage_charges, any_charges
)
subscriptions = st.fixed_dictionaries(
    {"start_date": mostly(dates)},
    optional={
        "number": mostly(st.sampled_from(["S00000001", "S1", "S2"])),
        "status": mostly(st.sampled_from(["Active", "Canceled"])),
        "charges": st.lists(charges, max_size=3),
    },
)
accounts = st.fixed_dictionaries(
    {
        "name": mostly(st.text(min_size=1, max_size=30)),
        "currency": mostly(currencies),
        "bill_cycle_day": mostly(st.integers(min_value=0, max_value=32)),
    },
    optional={
        "number": mostly(st.sampled_from(["A00000001", "A1", "A2", "Ω-1"])),
        "bill_to_email": mostly(st.sampled_from(["", "ap@acme.example", "bad@", "é@x.example"])),
        "batch": mostly(st.integers(min_value=0, max_value=52)),
        "payment_term_days": mostly(st.integers(min_value=-1, max_value=400)),
        "status": mostly(st.sampled_from(["Active", "Canceled"])),
        "subscriptions": st.lists(subscriptions, max_size=3),
    },
)
documents = st.one_of(
    st.fixed_dictionaries({"accounts": st.lists(accounts, max_size=4)}),
    st.fixed_dictionaries({"accounts": st.lists(accounts, max_size=4)}),
    st.fixed_dictionaries({"accounts": st.lists(accounts, max_size=2)}, optional={"x": junk}),
    junk,
)


def serialized(document, ensure_ascii):
    text = json.dumps(document, ensure_ascii=ensure_ascii)
    # Without ensure_ascii a lone surrogate survives into the bytes: not UTF-8.
    return text.encode("utf-8", errors="surrogatepass")


@pytest.mark.django_db
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    document=documents,
    ensure_ascii=st.booleans(),
    garbage=st.one_of(st.none(), st.none(), st.none(), st.binary(max_size=40)),
)
def test_any_input_is_refused_cleanly_or_imported_whole(document, ensure_ascii, garbage):
    raw = garbage if garbage is not None else serialized(document, ensure_ascii)
    with transaction.atomic():
        AccountFactory(number="A1")
        before = counts()

        # when
        code, out, err = run_import("-", stdin=io.BytesIO(raw))
        event("imported" if code == 0 else "refused")

        # then: a clean refusal that changed nothing, or everything imported
        if code == 0:
            assert err == []
            subs = [s for a in document["accounts"] for s in a.get("subscriptions", [])]
            added = (
                len(document["accounts"]),
                len(subs),
                sum(len(s.get("charges", [])) for s in subs),
            )
            assert counts() == tuple(b + a for b, a in zip(before, added, strict=True))
            assert out.strip() == "imported {} accounts, {} subscriptions, {} charges".format(
                *added
            )
        else:
            assert code == 1
            assert out == ""
            assert 1 <= len(err) <= 101
            assert all(line.strip() for line in err)
            assert counts() == before
        transaction.set_rollback(True)


@pytest.mark.django_db
def test_a_number_taken_by_a_concurrent_writer_is_a_clean_refusal(tmp_path, monkeypatch):
    # given an account that appears after the import checked the numbers,
    # as when another import commits in between
    AccountFactory(number="A00000001")
    monkeypatch.setattr("customers.importer.validation._numbers_in_use", lambda model, numbers: {})
    before = counts()

    # when
    code, _, err = import_document(tmp_path, INTERFACES_EXAMPLE)

    # then
    assert code == 1
    assert len(err) == 1
    assert err[0].startswith("the database refused the import")
    assert err[0].endswith("Nothing was imported.")
    assert counts() == before
