"""Tax lines of one document, computed in Python with exact Decimals.

BILLING_RULES.md (Taxes): the taxable base is the sum of the rounded amounts
of the document's items whose charge is taxable (an adjustment follows its
charge); each of the account's rates gives one tax line = base x rate / 100,
rounded once, ROUND_HALF_UP to the cent. Lines keep the order of the
account's tax codes, 0.00 lines included. The total is the subtotal plus the
lines. This module only computes; storing and snapshotting rates is the
caller's job.
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation, Overflow

CENT = Decimal("0.01")
ROUNDING = Context(prec=60, rounding=ROUND_HALF_UP, traps=[InvalidOperation, Overflow])


@dataclass(frozen=True)
class Rate:
    code: str
    name: str
    rate: Decimal


@dataclass(frozen=True)
class TaxLine:
    code: str
    name: str
    rate: Decimal
    amount: Decimal


def tax_lines(items, rates):
    """``items``: iterable of (amount, taxable); ``rates``: the account's
    rates in the order of its tax codes. Returns (subtotal, lines, total)."""
    subtotal = Decimal("0.00")
    base = Decimal("0.00")
    for amount, taxable in items:
        subtotal += amount
        if taxable:
            base += amount
    lines = [
        TaxLine(
            r.code,
            r.name,
            r.rate,
            ROUNDING.multiply(base, r.rate).scaleb(-2).quantize(CENT, context=ROUNDING),
        )
        for r in rates
    ]
    total = subtotal + sum((line.amount for line in lines), Decimal("0.00"))
    return subtotal, lines, total
