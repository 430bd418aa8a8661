"""One way to write an amount of money for people: pages, tables, emails and
the PDF. Exports and the JSON keep plain decimals ("1234.50"), which machines
read.

    {% load money %}{{ document.amount|money:document.currency }}  ->  5,817.72 CAD

The amount comes first, thousands separated by commas, always two decimals,
the ISO code after it; a negative amount has a leading minus (-1,234.50 EUR).
"""

from decimal import Context, Decimal, Inexact, InvalidOperation

# The smallest amount of every currency the product accepts (two decimal
# places, customers.currencies): what amounts are quantized to.
CENT = Decimal("0.01")

EMPTY = "—"

# normalize() in this context drops trailing zeros and nothing else: 200
# digits hold every quantity and unit price the columns allow, and a value
# that would need rounding raises rather than show something it is not.
_EXACT = Context(prec=200, traps=[Inexact, InvalidOperation])


def format_money(amount, currency: str = "") -> str:
    """``amount`` (a Decimal, an int or a decimal string) as people read it,
    with ``currency`` after it when given; "—" for no amount. A float is
    refused: money is never a float."""
    if amount is None or amount == "":
        return EMPTY
    if isinstance(amount, float):
        raise TypeError("money is never a float: pass a Decimal or a decimal string")
    try:
        value = Decimal(amount)
    except (InvalidOperation, TypeError, ValueError):
        raise ValueError(f"{amount!r} is not an amount of money") from None
    if value == 0:
        value = abs(value)  # no "-0.00"
    text = f"{value:,.2f}"
    return f"{text} {currency}" if currency else text


def format_signed_money(amount) -> str:
    """A change in money as pages write it, with its sign: "+12.00", "-3.50",
    "0.00"; "—" for none."""
    text = format_money(amount)
    return f"+{text}" if amount not in (None, "") and Decimal(amount) > 0 else text


def format_percent_change(change, previous) -> str:
    """A change in percent of the ``previous`` amount, to one place, signed
    ("+30.0%", "-100.0%"); "new" where there was no previous amount or it was 0."""
    if previous is None or previous == 0:
        return "new"
    percent = (Decimal(change) * 100 / abs(Decimal(previous))).quantize(Decimal("0.1"))
    return f"{percent:+}%"


def plain_decimal(value: Decimal) -> str:
    """A quantity or a rate as the JSON writes it (INTERFACES.md): no
    exponent, no trailing zeros, no separators ("12500", "150.5", "0",
    "0.3125"). Quantities have at most 18 digits, within the default
    context's 28, so normalizing does not round."""
    if value == 0:
        return "0"  # neither "0E-6" nor "-0"
    return f"{value.normalize():f}"


def format_plain(value) -> str:
    """A quantity or unit price as people read it: thousands separated, no
    trailing zeros, no exponent (``12,500``, ``150.5``, ``0.002``, ``0``);
    "—" for none. Like money, never a float."""
    if value is None or value == "":
        return EMPTY
    if isinstance(value, float):
        raise TypeError("a quantity is never a float: pass a Decimal or a decimal string")
    value = Decimal(value)
    return f"{value.normalize(_EXACT):,f}" if value else "0"
