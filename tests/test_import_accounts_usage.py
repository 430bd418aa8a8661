"""import_accounts, second release (INTERFACES.md, "Loading customers"): a
charge's number and quantity, and usage charges with their unit and pricing.

The first release's fields are tests/test_import_accounts.py; taxes
(``taxable``, ``tax_codes``) are tests/test_taxes.py's."""

import copy
import datetime
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from customers.models import Charge, Pricing, PricingTier
from tests.factories import ChargeFactory, UsageChargeFactory
from tests.test_import_accounts import (
    DELETE,
    INTERFACES_EXAMPLE,
    account,
    changed,
    import_document,
    path_of,
)

SECOND = Path(__file__).parent / "data" / "second"

GRADUATED = {
    "model": "graduated",
    "tiers": [
        {"up_to": "1000", "unit_price": "0"},
        {"up_to": "10000", "unit_price": "0.002", "flat_fee": "5.00"},
        {"up_to": None, "unit_price": "0.001"},
    ],
}

BOOK = {
    "accounts": [
        account(
            number="A1",
            subscriptions=[
                {
                    "number": "S1",
                    "start_date": "2026-01-15",
                    "charges": [
                        {
                            "number": "C-SEATS",
                            "name": "Seats",
                            "type": "recurring",
                            "amount": "12.50",
                            "quantity": "2.5",
                            "period": "month",
                            "start_date": "2026-01-15",
                        },
                        {
                            "name": "Setup fee",
                            "type": "one_time",
                            "amount": "50.00",
                            "quantity": "3",
                            "start_date": "2026-01-15",
                        },
                        {
                            "number": "C-CALLS",
                            "name": "API calls",
                            "type": "usage",
                            "period": "month",
                            "start_date": "2026-01-15",
                            "unit": "calls",
                            "pricing": copy.deepcopy(GRADUATED),
                        },
                        {
                            "name": "Storage",
                            "type": "usage",
                            "period": "quarter",
                            "start_date": "2026-01-15",
                            "end_date": "2027-01-15",
                            "unit": "GB",
                            "pricing": {"model": "per_unit", "unit_price": "0.0025"},
                        },
                    ],
                }
            ],
        )
    ]
}

CHARGES = ("accounts", 0, "subscriptions", 0, "charges")
SEATS, FEE, CALLS, STORAGE = ((*CHARGES, i) for i in range(4))


def stored_counts():
    return Charge.objects.count(), Pricing.objects.count(), PricingTier.objects.count()


def tiers_of(charge):
    return [
        (tier.from_quantity, tier.up_to, tier.unit_price, tier.flat_fee)
        for tier in charge.pricing.tiers.order_by("from_quantity")
    ]


# -- accepted ------------------------------------------------------------------


@pytest.mark.django_db
def test_it_stores_quantities_units_and_pricings_exactly(tmp_path):
    # when
    code, out, err = import_document(tmp_path, BOOK)

    # then
    assert (code, err) == (0, [])
    assert out.strip() == "imported 1 accounts, 1 subscriptions, 4 charges"
    seats, fee, calls, storage = Charge.objects.order_by("id")
    assert (seats.number, seats.amount, seats.quantity) == (
        "C-SEATS",
        Decimal("12.50"),
        Decimal("2.5"),
    )
    assert (seats.unit, seats.pricing) == ("", None)
    assert (fee.charge_type, fee.amount, fee.quantity) == ("one_time", Decimal("50.00"), 3)
    assert (calls.number, calls.charge_type, calls.period, calls.unit) == (
        "C-CALLS",
        "usage",
        "month",
        "calls",
    )
    assert (calls.amount, calls.quantity) == (None, None)
    assert calls.pricing.model == "graduated"
    assert tiers_of(calls) == [
        (Decimal("0"), Decimal("1000"), Decimal("0"), Decimal("0")),
        (Decimal("1000"), Decimal("10000"), Decimal("0.002"), Decimal("5.00")),
        (Decimal("10000"), None, Decimal("0.001"), Decimal("0")),
    ]
    assert (storage.period, storage.unit, storage.end_date) == (
        "quarter",
        "GB",
        datetime.date(2027, 1, 15),
    )
    assert storage.pricing.model == "per_unit"
    assert tiers_of(storage) == [(Decimal("0"), None, Decimal("0.0025"), Decimal("0"))]
    assert calls.pricing != storage.pricing


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("where", "value", "expected"),
    [
        ((*SEATS, "quantity"), "0.0001", Decimal("0.0001")),
        ((*SEATS, "quantity"), "99999999999999.9999", Decimal("99999999999999.9999")),
        ((*SEATS, "quantity"), "007", Decimal("7")),
        ((*SEATS, "quantity"), "1.5000", Decimal("1.5")),
    ],
)
def test_a_quantity_is_stored_to_the_last_place(tmp_path, where, value, expected):
    # given amount 0.00, so that the price stays below 10^13 at any quantity
    document = changed(changed(BOOK, where, value), (*SEATS, "amount"), "0.00")

    # when
    code, _, err = import_document(tmp_path, document)

    # then
    assert (code, err) == (0, [])
    assert Charge.objects.get(number="C-SEATS").quantity == expected


@pytest.mark.django_db
def test_unit_prices_and_bounds_keep_six_places_and_fees_two(tmp_path):
    # given
    pricing = {
        "model": "volume",
        "tiers": [
            {"up_to": "0.000001", "unit_price": "999999999999.999999", "flat_fee": "0.01"},
            {"up_to": "123456.654321", "unit_price": "0.000001"},
            {"up_to": None, "unit_price": "0", "flat_fee": "9999999999999.99"},
        ],
    }
    document = changed(BOOK, (*CALLS, "pricing"), pricing)

    # when
    code, _, err = import_document(tmp_path, document)

    # then
    assert (code, err) == (0, [])
    calls = Charge.objects.get(number="C-CALLS")
    assert calls.pricing.model == "volume"
    assert tiers_of(calls) == [
        (Decimal("0"), Decimal("0.000001"), Decimal("999999999999.999999"), Decimal("0.01")),
        (Decimal("0.000001"), Decimal("123456.654321"), Decimal("0.000001"), Decimal("0")),
        (Decimal("123456.654321"), None, Decimal("0"), Decimal("9999999999999.99")),
    ]


def counter_value(number):
    """The charge counter's value that gave ``number`` (C00000007: 7)."""
    assert re.fullmatch(r"C[0-9]{8}", number), number
    return int(number[1:])


def numbered(value, prefix="C"):
    return f"{prefix}{value:08d}"


@pytest.mark.django_db
def test_a_first_release_file_imports_as_before_with_quantity_one(tmp_path):
    # when
    code, out, err = import_document(tmp_path, INTERFACES_EXAMPLE)

    # then
    assert (code, err) == (0, [])
    assert out.strip() == "imported 1 accounts, 1 subscriptions, 2 charges"
    plan, fee = Charge.objects.order_by("id")
    assert [(c.quantity, c.unit, c.pricing) for c in (plan, fee)] == [(1, "", None)] * 2
    assert (plan.amount, fee.amount) == (Decimal("100.00"), Decimal("50.00"))
    # numbered by the charge counter, in the file's order
    assert counter_value(fee.number) == counter_value(plan.number) + 1


@pytest.mark.django_db
def test_charge_numbers_are_generated_skipping_those_in_the_file_and_the_database(tmp_path):
    # given a charge numbered by the counter (PostgreSQL's sequence does not
    # restart between tests), and the counter's next number, in lower case,
    # given in the file between charges without a number
    first = counter_value(ChargeFactory().number)
    plan = INTERFACES_EXAMPLE["accounts"][0]["subscriptions"][0]["charges"][0]
    given = numbered(first + 1, prefix="c")
    document = changed(BOOK, CHARGES, [dict(plan), {**plan, "number": given}, dict(plan)])

    # when
    code, _, err = import_document(tmp_path, document)

    # then
    assert (code, err) == (0, [])
    assert list(Charge.objects.order_by("id").values_list("number", flat=True)) == [
        numbered(first),
        numbered(first + 2),
        given,
        numbered(first + 3),
    ]
    # and the counter goes on after them: the next charge made elsewhere
    assert ChargeFactory().number == numbered(first + 4)


@pytest.mark.django_db
def test_a_charge_number_taken_outside_the_counter_is_skipped_too(tmp_path):
    # given the counter's next number written by hand, in lower case
    first = counter_value(ChargeFactory().number)
    ChargeFactory(number=numbered(first + 1, prefix="c"))

    # when
    code, _, err = import_document(tmp_path, INTERFACES_EXAMPLE)

    # then
    assert (code, err) == (0, [])
    assert list(Charge.objects.order_by("id").values_list("number", flat=True))[2:] == [
        numbered(first + 2),
        numbered(first + 3),
    ]


# -- numbers given twice -------------------------------------------------------


@pytest.mark.django_db
def test_a_charge_number_given_twice_in_the_file_is_refused_ignoring_case(tmp_path):
    # given C-SEATS again, exactly and in other case, in a second account
    second = changed(BOOK, ("accounts", 0, "number"), "A2")
    second = changed(second, ("accounts", 0, "subscriptions", 0, "number"), "S2")
    second = changed(second, (*CALLS, "number"), "c-seats")
    second = changed(second, (*STORAGE, "number"), "C-SEATS")
    document = {"accounts": [BOOK["accounts"][0], second["accounts"][0]]}

    # when
    code, out, err = import_document(tmp_path, document)

    # then
    assert (code, out) == (1, "")
    first = "accounts[0].subscriptions[0].charges[0].number"
    assert err == [
        f"accounts[1].subscriptions[0].charges[0].number: charge number C-SEATS appears more "
        f"than once in the file (first at {first})",
        f"accounts[1].subscriptions[0].charges[2].number: charge number c-seats differs only "
        f"in case from C-SEATS at {first} (numbers must differ in more than case)",
        f"accounts[1].subscriptions[0].charges[3].number: charge number C-SEATS appears more "
        f"than once in the file (first at {first})",
    ]
    assert stored_counts() == (0, 0, 0)


@pytest.mark.django_db
def test_a_charge_number_in_the_database_is_refused_ignoring_case(tmp_path):
    # given
    ChargeFactory(number="C-SEATS")
    UsageChargeFactory(number="c-calls")
    before = stored_counts()

    # when
    code, _, err = import_document(tmp_path, BOOK)

    # then
    assert code == 1
    assert err == [
        "accounts[0].subscriptions[0].charges[0].number: charge C-SEATS already exists "
        "(importing does not update)",
        "accounts[0].subscriptions[0].charges[2].number: charge number C-CALLS differs only "
        "in case from charge c-calls, which already exists (numbers must differ in more "
        "than case)",
    ]
    assert stored_counts() == before


# -- refused: each problem with its path and exact message, nothing imported ---

P = "pricing"
T = (*CALLS, P, "tiers")

REFUSALS = [
    # (where, new value or DELETE, the exact message)
    (
        (*SEATS, "number"),
        "C 1",
        "must not contain spaces, control or invisible characters (U+0020 at position 2)",
    ),
    ((*SEATS, "number"), "", "must not be empty (leave it out to generate one)"),
    ((*SEATS, "number"), "C/1", "must not contain a slash or a backslash"),
    (
        (*SEATS, "quantity"),
        2,
        'must be a decimal string such as "3" or "2.5", not a number '
        "(a JSON number would lose digits)",
    ),
    ((*SEATS, "quantity"), "0", "must be above 0, not 0"),
    ((*SEATS, "quantity"), "0.0000", "must be above 0, not 0.0000"),
    ((*SEATS, "quantity"), "-1", "must be above 0, not -1"),
    (
        (*SEATS, "quantity"),
        "1.23456",
        "must be a decimal string with at most 4 decimal "
        'places such as "3" or "2.5", not "1.23456"',
    ),
    (
        (*SEATS, "quantity"),
        "1e3",
        'must be a decimal string with at most 4 decimal places such as "3" or "2.5", not "1e3"',
    ),
    (
        (*SEATS, "quantity"),
        "",
        'must be a decimal string with at most 4 decimal places such as "3" or "2.5", not ""',
    ),
    ((*SEATS, "quantity"), "100000000000000", "must be below 10^14"),
    (
        (*SEATS, "quantity"),
        "800000000000",
        "amount × quantity (12.50 × 800,000,000,000) must be below 10^13 in absolute value",
    ),
    ((*SEATS, "unit"), "calls", "only a usage charge has a unit"),
    (
        (*FEE, "pricing"),
        {"model": "per_unit", "unit_price": "1"},
        "only a usage charge has a pricing",
    ),
    ((*FEE, "period"), "month", "a one_time charge has no period"),
    ((*FEE, "end_date"), "2026-02-15", "a one_time charge has no end date"),
    ((*CALLS, "amount"), "1.00", "a usage charge has no amount: its pricing rates its usage"),
    ((*CALLS, "quantity"), "1", "a usage charge has no quantity: its usage is its quantity"),
    ((*CALLS, "period"), DELETE, "required field is missing"),
    (
        (*CALLS, "period"),
        "week",
        'must be one of "month", "quarter", "semi_annual", "annual", not "week"',
    ),
    ((*CALLS, "end_date"), "2026-01-15", "must be after start_date 2026-01-15, not 2026-01-15"),
    ((*CALLS, "unit"), DELETE, "required field is missing"),
    ((*CALLS, "unit"), " ", "must not be empty"),
    ((*CALLS, "unit"), "x" * 51, "must be at most 50 characters long"),
    ((*CALLS, "unit"), 5, "must be a string, not a number"),
    ((*CALLS, P), DELETE, "required field is missing"),
    ((*CALLS, P), None, "must not be null"),
    ((*CALLS, P), "per_unit", "must be an object, not a string"),
    ((*CALLS, P, "model"), DELETE, "required field is missing"),
    (
        (*CALLS, P, "model"),
        "tiered",
        'must be one of "per_unit", "graduated", "volume", not "tiered"',
    ),
    ((*CALLS, P, "colour"), "red", "unknown field"),
    ((*CALLS, P, "unit_price"), "0.1", "a graduated pricing gives its unit prices in its tiers"),
    ((*CALLS, P, "tiers"), DELETE, "required field is missing"),
    ((*CALLS, P, "tiers"), {}, "must be an array, not an object"),
    ((*CALLS, P, "tiers"), [], "must have at least one tier"),
    ((*T, 0), "1000", "must be an object, not a string"),
    (
        (*T, 0, "up_to"),
        DELETE,
        "required field is missing (null for the last tier, which is unbounded)",
    ),
    (
        (*T, 0, "up_to"),
        1000,
        'must be a decimal string such as "1000", not a number (a JSON number would lose digits)',
    ),
    ((*T, 0, "up_to"), "1,000", 'must be a decimal string such as "1000", not "1,000"'),
    ((*T, 0, "up_to"), "0", "must be above 0, not 0"),
    ((*T, 0, "up_to"), "-5", "must be 0 or more, not -5"),
    ((*T, 0, "up_to"), "0.0000001", "a bound has at most 6 decimal places, not 0.0000001"),
    ((*T, 0, "up_to"), None, "only the last tier is unbounded (null)"),
    ((*T, 1, "up_to"), "1000", "must be above the previous tier's 1,000, not 1,000"),
    ((*T, 1, "up_to"), "999.5", "must be above the previous tier's 1,000, not 999.5"),
    ((*T, 2, "up_to"), "20000", "the last tier is unbounded (null), not 20000"),
    ((*T, 0, "unit_price"), DELETE, "required field is missing"),
    (
        (*T, 0, "unit_price"),
        "0.0000001",
        "a unit price has at most 6 decimal places, not 0.0000001",
    ),
    ((*T, 0, "unit_price"), "-0.01", "must be 0 or more, not -0.01"),
    ((*T, 0, "unit_price"), "1000000000000", "must be below 1,000,000,000,000, not 1000000000000"),
    (
        (*T, 0, "unit_price"),
        0.5,
        'must be a decimal string such as "0.0025", not a number (a JSON number would lose digits)',
    ),
    ((*T, 1, "flat_fee"), "5.001", "a flat fee has at most 2 decimal places, not 5.001"),
    ((*T, 1, "flat_fee"), "-5", "must be 0 or more, not -5"),
    ((*T, 1, "flat_fee"), "10000000000000", "must be below 10,000,000,000,000, not 10000000000000"),
    ((*T, 1, "ceiling"), "1", "unknown field"),
    ((*STORAGE, P, "unit_price"), DELETE, "required field is missing"),
    (
        (*STORAGE, P, "unit_price"),
        "0.1234567",
        "a unit price has at most 6 decimal places, not 0.1234567",
    ),
    ((*STORAGE, P, "unit_price"), "-1", "must be 0 or more, not -1"),
    (
        (*STORAGE, P, "tiers"),
        GRADUATED["tiers"],
        "a per_unit pricing has one unit_price, not tiers",
    ),
    ((*STORAGE, P, "flat_fee"), "1.00", "unknown field"),
    ((*SEATS, "taxable"), "no", "must be true or false, not a string"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("where", "value", "message"),
    REFUSALS,
    ids=[f"{path_of(w[4:])}={'DELETE' if v is DELETE else repr(v)[:20]}" for w, v, _ in REFUSALS],
)
def test_it_refuses_a_bad_charge_value_naming_its_path_and_imports_nothing(
    tmp_path, where, value, message
):
    # given the book with one thing wrong
    document = changed(BOOK, where, value)

    # when
    code, out, err = import_document(tmp_path, document)

    # then
    assert (code, out) == (1, "")
    assert err == [f"{path_of(where)}: {message}"]
    assert stored_counts() == (0, 0, 0)


@pytest.mark.django_db
def test_every_problem_of_a_pricing_is_reported_and_nothing_is_imported(tmp_path):
    # given a pricing wrong in three places, and a bad quantity in another account
    pricing = {
        "model": "volume",
        "tiers": [
            {"up_to": "500", "unit_price": "0.1234567"},
            {"up_to": "100", "unit_price": "1", "flat_fee": "-1"},
            {"up_to": "1000", "unit_price": "1"},
        ],
    }
    bad = changed(BOOK, (*CALLS, "pricing"), pricing)
    plan = INTERFACES_EXAMPLE["accounts"][0]["subscriptions"][0]["charges"][0]
    other = account(
        number="A2",
        subscriptions=[{"start_date": "2026-01-01", "charges": [{**plan, "quantity": "0"}]}],
    )
    document = {"accounts": [bad["accounts"][0], other]}

    # when
    code, _, err = import_document(tmp_path, document)

    # then
    at = "accounts[0].subscriptions[0].charges[2].pricing.tiers"
    assert code == 1
    assert err == [
        f"{at}[0].unit_price: a unit price has at most 6 decimal places, not 0.1234567",
        f"{at}[1].flat_fee: must be 0 or more, not -1",
        f"{at}[1].up_to: must be above the previous tier's 500, not 100",
        f"{at}[2].up_to: the last tier is unbounded (null), not 1000",
        "accounts[1].subscriptions[0].charges[0].quantity: must be above 0, not 0",
    ]
    assert stored_counts() == (0, 0, 0)


@pytest.mark.django_db
def test_a_usage_charge_whose_type_is_missing_is_not_asked_for_an_amount(tmp_path):
    # when
    code, _, err = import_document(tmp_path, changed(BOOK, (*CALLS, "type"), DELETE))

    # then
    assert code == 1
    assert err == ["accounts[0].subscriptions[0].charges[2].type: required field is missing"]


# -- the second-release example books ------------------------------------------


def without_taxes(document):
    """The book as this release imports it: no tax rates, tax codes or taxable."""
    document = copy.deepcopy(document)
    document.pop("tax_rates", None)
    for acc in document["accounts"]:
        acc.pop("tax_codes", None)
        for sub in acc.get("subscriptions", []):
            for charge in sub.get("charges", []):
                charge.pop("taxable", None)
    return document


@pytest.mark.django_db
@pytest.mark.parametrize("book", sorted(p.name for p in SECOND.glob("second-*.book.json")))
def test_it_imports_the_second_release_books_less_their_taxes(tmp_path, book):
    # given
    document = without_taxes(json.loads((SECOND / book).read_text()))
    charges = [
        charge
        for acc in document["accounts"]
        for sub in acc.get("subscriptions", [])
        for charge in sub.get("charges", [])
    ]

    # when
    code, out, err = import_document(tmp_path, document)

    # then every charge is stored as the book says
    assert (code, err) == (0, [])
    assert out.strip().endswith(f"{len(charges)} charges")
    stored = {c.number: c for c in Charge.objects.select_related("pricing")}
    assert sorted(stored) == sorted(c["number"] for c in charges)
    for given in charges:
        charge = stored[given["number"]]
        if given["type"] == "usage":
            assert (charge.unit, charge.pricing.model) == (given["unit"], given["pricing"]["model"])
            tiers = given["pricing"].get("tiers") or [
                {"up_to": None, "unit_price": given["pricing"]["unit_price"]}
            ]
            assert [
                (t.up_to, t.unit_price, t.flat_fee)
                for t in charge.pricing.tiers.order_by("from_quantity")
            ] == [
                (
                    None if t["up_to"] is None else Decimal(t["up_to"]),
                    Decimal(t["unit_price"]),
                    Decimal(t.get("flat_fee", "0")),
                )
                for t in tiers
            ]
        else:
            assert (charge.amount, charge.quantity) == (
                Decimal(given["amount"]),
                Decimal(given.get("quantity", "1")),
            )


@pytest.mark.django_db
def test_the_second_release_books_tax_codes_need_their_rates(tmp_path):
    # given no tax rate at all

    # when the book is imported without its rates
    document = json.loads((SECOND / "second-handmade.book.json").read_text())
    document.pop("tax_rates")
    code, _, err = import_document(tmp_path, document)

    # then each code is refused where the file gives it, and nothing is imported
    assert code == 1
    assert err[:2] == [
        "accounts[2].tax_codes[0]: no tax rate has the code VAT20 (tax_rate --list shows them)",
        "accounts[3].tax_codes[0]: no tax rate has the code STATE (tax_rate --list shows them)",
    ]
    assert stored_counts() == (0, 0, 0)
