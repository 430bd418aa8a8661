"""Rating usage (customers.pricing): per unit, graduated and volume, exact,
rounded once per item, explained as a clerk reads it (issue 13).

The rules' examples, the usage items of every worked example of the second
release (tests/data/second), and hypothesis against an oracle written independently
from the rules: tiers as a table of Fractions, consumed one after the other.
"""

import json
import math
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from customers.pricing import Tier, plain, pricing_problems, rate

EXAMPLES = Path(__file__).parent / "data" / "second"

# BILLING_RULES.md, Usage charges: the example's tiers.
API_TIERS = [
    Tier(Decimal("1000"), Decimal("0")),
    Tier(Decimal("10000"), Decimal("0.002"), Decimal("5.00")),
    Tier(None, Decimal("0.001")),
]
STORAGE_TIERS = [
    Tier(Decimal("100"), Decimal("0.25")),
    Tier(None, Decimal("0.10"), Decimal("2.00")),
]


def test_the_rules_graduated_example_and_its_explanation():
    rating = rate(model="graduated", tiers=API_TIERS, quantity=Decimal("12500"), unit="calls")

    assert rating.amount == Decimal("25.50")
    assert rating.explanation == (
        "12,500 calls: 1,000 × 0 + 9,000 × 0.002 + 5.00 + 2,500 × 0.001 = 25.50"
    )


def test_the_rules_volume_example_the_same_tiers_as_volume():
    rating = rate(model="volume", tiers=API_TIERS, quantity=Decimal("12500"), unit="calls")

    assert rating.amount == Decimal("12.50")
    assert rating.explanation == "12,500 calls: 12,500 × 0.001 = 12.50"


@pytest.mark.parametrize(
    ("model", "tiers", "quantity", "amount", "explanation"),
    [
        # second-handmade: January's storage, a volume tier with a flat fee
        ("volume", STORAGE_TIERS, "150.5", "17.05", "150.5 GB: 150.5 × 0.1 + 2.00 = 17.05"),
        ("volume", STORAGE_TIERS, "100", "25.00", "100 GB: 100 × 0.25 = 25.00"),
        (
            "volume",
            STORAGE_TIERS,
            "100.000001",
            "12.00",
            "100.000001 GB: 100.000001 × 0.1 + 2.00 = 12.00",
        ),
        # February and March's API calls: the flat fee of the tier they reach
        (
            "graduated",
            API_TIERS,
            "3000",
            "9.00",
            "3,000 calls: 1,000 × 0 + 2,000 × 0.002 + 5.00 = 9.00",
        ),
        (
            "graduated",
            API_TIERS,
            "4000",
            "11.00",
            "4,000 calls: 1,000 × 0 + 3,000 × 0.002 + 5.00 = 11.00",
        ),
        ("graduated", API_TIERS, "1000", "0.00", "1,000 calls: 1,000 × 0 = 0.00"),
        # the flat fee comes with the first unit of its tier
        (
            "graduated",
            API_TIERS,
            "1000.000001",
            "5.00",
            "1,000.000001 calls: 1,000 × 0 + 0.000001 × 0.002 + 5.00 = 5.00",
        ),
        # after the change to per unit 0.0015: 4,000 and 2,010 calls
        (
            "per_unit",
            [Tier(None, Decimal("0.0015"))],
            "4000",
            "6.00",
            "4,000 calls: 4,000 × 0.0015 = 6.00",
        ),
        (
            "per_unit",
            [Tier(None, Decimal("0.0015"))],
            "2010",
            "3.02",
            "2,010 calls: 2,010 × 0.0015 = 3.02",
        ),
    ],
)
def test_the_worked_examples_usage_items(model, tiers, quantity, amount, explanation):
    unit = "GB" if tiers is STORAGE_TIERS else "calls"

    rating = rate(model=model, tiers=tiers, quantity=Decimal(quantity), unit=unit)

    assert (rating.amount, rating.explanation) == (Decimal(amount), explanation)


@pytest.mark.parametrize("model", ["per_unit", "graduated", "volume"])
def test_a_piece_with_no_usage_bills_0_00(model):
    tiers = [Tier(None, Decimal("0.0025"))] if model == "per_unit" else API_TIERS

    rating = rate(model=model, tiers=tiers, quantity=Decimal(0), unit="calls")

    assert rating.amount == Decimal("0.00")
    assert str(rating.amount) == "0.00"
    expected = "0 calls: 0 × 0.0025 = 0.00" if model == "per_unit" else "0 calls = 0.00"
    assert rating.explanation == expected


def test_an_item_is_rounded_once_from_its_exact_value_not_per_tier():
    # each tier alone is 0.005, which would round to 0.01 twice
    tiers = [Tier(Decimal("1"), Decimal("0.005")), Tier(None, Decimal("0.005"))]

    rating = rate(model="graduated", tiers=tiers, quantity=Decimal(2), unit="calls")

    assert rating.amount == Decimal("0.01")


def test_half_a_cent_rounds_up():
    tiers = [Tier(None, Decimal("0.0025"))]

    assert rate(model="per_unit", tiers=tiers, quantity=Decimal(3)).amount == Decimal("0.01")
    assert rate(model="per_unit", tiers=tiers, quantity=Decimal(1)).amount == Decimal("0.00")


def test_a_huge_quantity_is_rated_exactly():
    quantity = Decimal("123456789012345678901234567890.123456")

    rating = rate(model="per_unit", tiers=[Tier(None, Decimal("0.000001"))], quantity=quantity)

    assert rating.amount == Decimal("123456789012345678901234.57")
    assert rating.explanation.startswith("123,456,789,012,345,678,901,234,567,890.123456: ")


def test_a_negative_quantity_is_refused():
    with pytest.raises(ValueError, match="not negative"):
        rate(model="per_unit", tiers=[Tier(None, Decimal(1))], quantity=Decimal(-1))


@pytest.mark.parametrize(
    ("value", "text"),
    [("12500.000000", "12,500"), ("150.50", "150.5"), ("0.000000", "0"), ("0.0025", "0.0025")],
)
def test_quantities_and_prices_print_plainly(value, text):
    assert plain(Decimal(value)) == text


# --- Every usage item of the worked examples -----------------------------------


def _pricing(spec):
    if spec["model"] == "per_unit":
        return "per_unit", [Tier(None, Decimal(spec["unit_price"]))]
    tiers = [
        Tier(
            None if t["up_to"] is None else Decimal(t["up_to"]),
            Decimal(t["unit_price"]),
            Decimal(t.get("flat_fee", "0")),
        )
        for t in spec["tiers"]
    ]
    return spec["model"], tiers


def usage_items_of_the_examples():
    """(example, charge, service start, quantity, amount, model, tiers) of
    every usage charge item the examples expect, with the pricing in effect
    on the service start (the book's, or the last price change before it)."""
    cases = []
    for book_path in sorted(EXAMPLES.glob("second-*.book.json")):
        name = book_path.name.removesuffix(".book.json")
        book = json.loads(book_path.read_text())
        steps = json.loads((EXAMPLES / f"{name}.runs.json").read_text())
        pricings = {}
        for account in book["accounts"]:
            for subscription in account.get("subscriptions", []):
                for charge in subscription.get("charges", []):
                    if charge["type"] == "usage":
                        pricings[charge["number"]] = [("0000-00-00", _pricing(charge["pricing"]))]
        seen = set()
        for step in steps:
            for change in step.get("amend", []):
                if change["type"] == "add_charge" and change["charge"]["type"] == "usage":
                    charge = change["charge"]
                    pricings[charge["number"]] = [("0000-00-00", _pricing(charge["pricing"]))]
                if change["type"] == "change_price" and "pricing" in change:
                    pricings[change["charge"]].append(
                        (change["effective_date"], _pricing(change["pricing"]))
                    )
            for document in step.get("expect", {}).get("documents", []):
                for item in document["items"]:
                    number = item.get("charge_number")
                    if item.get("kind") != "charge" or number not in pricings:
                        continue
                    key = (number, item["service_start"], item["quantity"], item["amount"])
                    if key in seen:
                        continue
                    seen.add(key)
                    model, tiers = max(
                        (p for p in pricings[number] if p[0] <= item["service_start"]),
                        key=lambda p: p[0],
                    )[1]
                    cases.append((name, *key, model, tiers))
    return cases


USAGE_ITEMS = usage_items_of_the_examples()


def test_the_examples_have_usage_items_to_check():
    assert len(USAGE_ITEMS) > 50
    assert {case[0] for case in USAGE_ITEMS} == {
        "second-handmade",
        "second-random-1",
        "second-random-2",
    }


@pytest.mark.parametrize(
    ("example_name", "charge", "start", "quantity", "amount", "model", "tiers"),
    USAGE_ITEMS,
    ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in USAGE_ITEMS],
)
def test_every_usage_item_of_the_worked_examples(
    example_name, charge, start, quantity, amount, model, tiers
):
    rating = rate(model=model, tiers=tiers, quantity=Decimal(quantity))

    assert rating.amount == Decimal(amount)


# --- Hypothesis: against an oracle of Fractions ----------------------------------

MICRO = 10**6


def oracle(model, table, quantity):
    """The amount, from the rules, with tiers as a table of Fractions
    (lower, upper or None, unit price, flat fee), consumed one tier after the
    other; rounded half up to the cent with integer arithmetic."""
    q = Fraction(quantity)
    if model == "per_unit":
        exact = q * table[0][2]
    elif model == "graduated":
        exact = Fraction(0)
        remaining = q
        for lower, upper, price, fee in table:
            width = remaining if upper is None else upper - lower
            taken = min(remaining, width)
            if taken > 0:
                exact += taken * price + fee
            remaining -= taken
    else:
        exact = Fraction(0)
        if q > 0:
            lower, upper, price, fee = next(row for row in table if row[1] is None or q <= row[1])
            exact = q * price + fee
    cents = math.floor(exact * 100 + Fraction(1, 2))
    return Fraction(cents, 100)


def table_of(tiers):
    table, lower = [], Fraction(0)
    for tier in tiers:
        upper = None if tier.up_to is None else Fraction(tier.up_to)
        table.append((lower, upper, Fraction(tier.unit_price), Fraction(tier.flat_fee)))
        lower = upper
    return table


def micro(n):
    return Decimal(n).scaleb(-6)


@st.composite
def pricings(draw):
    model = draw(st.sampled_from(["per_unit", "graduated", "volume"]))
    price = st.integers(0, 10**10).map(micro)
    if model == "per_unit":
        return model, [Tier(None, draw(price))]
    bounds = sorted(draw(st.sets(st.integers(1, 10**15), min_size=0, max_size=5)))
    fee = st.integers(0, 10**8).map(lambda cents: Decimal(cents).scaleb(-2))
    tiers = [Tier(micro(b), draw(price), draw(fee)) for b in bounds]
    tiers.append(Tier(None, draw(price), draw(fee)))
    return model, tiers


@st.composite
def pricing_and_quantity(draw):
    model, tiers = draw(pricings())
    bounds = [int(t.up_to * MICRO) for t in tiers if t.up_to is not None]
    at_bound = [b + d for b in bounds for d in (-1, 0, 1) if b + d >= 0]
    units = draw(
        st.one_of(
            st.just(0),
            st.sampled_from(at_bound) if at_bound else st.just(1),
            st.integers(0, 10**18),  # fractional, below 10^12
            st.integers(10**18, 10**36),  # huge: sums of many records
        )
    )
    return model, tiers, micro(units)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(pricing_and_quantity())
@example(("graduated", API_TIERS, Decimal("12500")))
@example(("volume", API_TIERS, Decimal("10000")))
@example(("volume", API_TIERS, Decimal("10000.000001")))
@example(("graduated", API_TIERS, Decimal("0")))
def test_rating_agrees_with_the_fraction_oracle(case):
    model, tiers, quantity = case
    assert pricing_problems(model=model, tiers=tiers) == []

    rating = rate(model=model, tiers=tiers, quantity=quantity, unit="units")

    assert Fraction(rating.amount) == oracle(model, table_of(tiers), quantity)
    assert rating.amount.as_tuple().exponent == -2
    assert rating.explanation.endswith(f" = {rating.amount:,.2f}")
    if quantity > 0:
        used = sum((term.units for term in rating.terms), Decimal(0))
        assert used == quantity


@settings(max_examples=200)
@given(pricings(), st.integers(0, 10**18), st.integers(0, 10**18))
def test_graduated_never_costs_less_for_more(pricing, a, b):
    model, tiers = pricing
    low, high = sorted([micro(a), micro(b)])

    cheaper = rate(model="graduated", tiers=tiers, quantity=low).amount
    dearer = rate(model="graduated", tiers=tiers, quantity=high).amount

    assert cheaper <= dearer
