"""One money format for people (issue 11, item 12): core.money and the money template filter."""

from decimal import Decimal
from pathlib import Path

import pytest
from django.template import Context, Template

from core.money import format_money, plain_decimal

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (Decimal("5817.72"), "CAD", "5,817.72 CAD"),
        (Decimal("19999999999999.98"), "USD", "19,999,999,999,999.98 USD"),
        (Decimal("-1234567.89"), "EUR", "-1,234,567.89 EUR"),
        (Decimal("-0.00"), "USD", "0.00 USD"),
        (Decimal("0"), "", "0.00"),
        ("1234.5", "GBP", "1,234.50 GBP"),
        (42, "CHF", "42.00 CHF"),
        (None, "USD", "—"),
    ],
)
def test_amounts_are_written_with_thousands_separated_and_the_code_after(amount, currency, text):
    assert format_money(amount, currency) == text


def test_a_float_is_refused():
    with pytest.raises(TypeError):
        format_money(5817.72, "CAD")


def test_a_string_that_is_no_amount_is_refused():
    with pytest.raises(ValueError, match="not an amount"):
        format_money("abc", "CAD")


def test_the_template_filter_writes_the_same():
    template = Template("{% load money %}{{ amount|money:currency }}|{{ amount|money }}")
    html = template.render(Context({"amount": Decimal("-5817.7"), "currency": "CAD"}))
    assert html == "-5,817.70 CAD|-5,817.70"


def test_no_template_writes_money_its_own_way():
    """floatformat, or a bare {{ currency }} {{ amount }}, would be a second format."""
    offenders = []
    for path in TEMPLATES.rglob("*"):
        if path.suffix not in {".html", ".txt"}:
            continue
        text = path.read_text()
        for bad in ("|floatformat", "{{ currency }} {{ amount }}", "{{ amount }} {{ currency }}"):
            if bad in text:
                offenders.append(f"{path.relative_to(TEMPLATES)}: {bad}")
    assert offenders == []


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("12500.000000"), "12500"),
        (Decimal("1.25E+4"), "12500"),
        (Decimal("150.500000"), "150.5"),
        (Decimal("0E-6"), "0"),
        (Decimal("-0"), "0"),
        (Decimal("0.312500"), "0.3125"),
        (Decimal("999999999999.999999"), "999999999999.999999"),
        (Decimal("-2.50"), "-2.5"),
    ],
)
def test_quantities_are_plain_decimals_for_machines(value, text):
    # given / when / then: INTERFACES.md, "quantities and rates print as plain decimals"
    assert plain_decimal(value) == text
