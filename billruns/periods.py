"""Service periods and their amounts, exactly as BILLING_RULES.md defines them.

Pure functions over dates and Decimals; no database. The engine calls them for
every charge of every account, so they avoid per-day loops: a charge's grid is
reached by month arithmetic, not by walking days.
"""

import calendar
import datetime
import functools
from dataclasses import dataclass
from decimal import (
    ROUND_HALF_UP,
    Context,
    Decimal,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)

from core.money import CENT

ONE_DAY = datetime.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime.date  # inclusive
    end: datetime.date  # exclusive
    amount: Decimal
    cell_days: int = 1  # the days of the whole grid cell it is cut from


@functools.lru_cache(maxsize=65536)  # (month, day) pairs: a few thousand in practice
def cycle_date(month_index: int, bill_cycle_day: int) -> datetime.date:
    """The cycle date of a month: day ``bill_cycle_day``, or the month's last
    day when the month is shorter (BCD 31 in April is the 30th, BCD 29-31 in
    February the 28th or, in a leap year, the 29th). ``month_index`` counts
    months from year 0 (year * 12 + month - 1)."""
    year, month0 = divmod(month_index, 12)
    last_day = calendar.monthrange(year, month0 + 1)[1]
    return datetime.date(year, month0 + 1, min(bill_cycle_day, last_day))


def month_index(day: datetime.date) -> int:
    return day.year * 12 + day.month - 1


def prorate(amount: Decimal, days: int, cell_days: int) -> Decimal:
    """``amount * days / cell_days``, rounded half away from zero to the cent.

    ``amount`` is the exact price (unit price x quantity: up to 6 places);
    the quotient is computed on integers from it, so the one rounding is
    the last step and no intermediate rounding can move a tie.
    """
    if days == cell_days:
        return price_amount(amount)
    exponent = amount.as_tuple().exponent
    # The price in units of its last place (cents, for most: exponent -2).
    scale = 10**-exponent if exponent < 0 else 1
    units = int(amount.scaleb(-exponent)) if exponent < 0 else int(amount)
    numerator = abs(units) * days * 100
    denominator = cell_days * scale
    quotient, remainder = divmod(numerator, denominator)
    if remainder * 2 >= denominator:
        quotient += 1
    return Decimal(-quotient if units < 0 else quotient).scaleb(-2)


# Wide enough for any price the columns allow (an 18-digit amount times an
# 18-digit quantity) to be exact before its one rounding.
EXACT = Context(prec=60, traps=[Inexact, InvalidOperation, Overflow])
ROUNDING = Context(prec=60, rounding=ROUND_HALF_UP, traps=[InvalidOperation, Overflow])


def price(amount: Decimal, quantity: Decimal) -> Decimal:
    """A recurring or one-time charge's price, exact: ``amount x quantity``."""
    if quantity == 1:  # most charges
        return amount
    with localcontext(EXACT):
        return amount * quantity


def price_amount(exact: Decimal) -> Decimal:
    """An exact price rounded once, half away from zero, to the cent."""
    return exact.quantize(CENT, context=ROUNDING)


def _first_grid_month(start: datetime.date, bill_cycle_day: int) -> int:
    """The month of A, the first cycle date on or after ``start``."""
    first_month = month_index(start)
    if cycle_date(first_month, bill_cycle_day) < start:
        first_month += 1  # A is in the next month
    return first_month


def _cell_index(day: datetime.date, first_month: int, period_months: int, bill_cycle_day: int):
    """k such that grid(k) <= day < grid(k + 1), with grid(k) the cycle date
    of month first_month + k * period_months."""
    k = (month_index(day) - first_month) // period_months
    while cycle_date(first_month + k * period_months, bill_cycle_day) > day:
        k -= 1
    while cycle_date(first_month + (k + 1) * period_months, bill_cycle_day) <= day:
        k += 1
    return k


def cell_holding(
    day: datetime.date, *, period_months: int, bill_cycle_day: int, start: datetime.date
) -> tuple[datetime.date, datetime.date]:
    """The grid cell ``[P, Q)`` of a charge starting on ``start`` that holds ``day``."""
    first_month = _first_grid_month(start, bill_cycle_day)
    k = _cell_index(day, first_month, period_months, bill_cycle_day)
    return (
        cycle_date(first_month + k * period_months, bill_cycle_day),
        cycle_date(first_month + (k + 1) * period_months, bill_cycle_day),
    )


def pieces(
    *,
    period_months: int,
    bill_cycle_day: int,
    start: datetime.date,
    end: datetime.date | None,
    charged_through: datetime.date | None,
    target: datetime.date,
    in_arrears: bool = False,
    cuts: tuple[datetime.date, ...] = (),
) -> list[tuple[datetime.date, datetime.date, int]]:
    """The due pieces ``(p, q, cell days)`` of a charge (BILLING_RULES.md,
    Service periods): ``[p, q)`` inside a grid cell of ``cell days``, from
    the charge's start or from ``charged_through`` (where billing stopped:
    a piece boundary), cut at the end date and at each date of ``cuts``
    (sorted: its price changes). Due in advance once started
    (``p <= target``), or in arrears once ended (``q <= target``).

    The engine's hot loop: the grid is reached by month arithmetic and the
    loop is written out, with no callbacks."""
    first_month = _first_grid_month(start, bill_cycle_day)
    p = start if charged_through is None or charged_through < start else charged_through
    k = _cell_index(p, first_month, period_months, bill_cycle_day)  # the cell holding p
    due = []
    cell_start = cycle_date(first_month + k * period_months, bill_cycle_day)
    cell_end = cycle_date(first_month + (k + 1) * period_months, bill_cycle_day)
    cut = 0
    while (end is None or p < end) and p <= target:
        q = cell_end if end is None or cell_end < end else end
        if cuts:
            while cut < len(cuts) and cuts[cut] <= p:
                cut += 1
            if cut < len(cuts) and cuts[cut] < q:
                q = cuts[cut]
        if in_arrears and q > target:
            break
        due.append((p, q, (cell_end - cell_start).days))
        p = q
        if p == cell_end:
            k += 1
            cell_start = cell_end
            cell_end = cycle_date(first_month + (k + 1) * period_months, bill_cycle_day)
    return due


def recurring_periods(
    *,
    amount: Decimal,
    period_months: int,
    bill_cycle_day: int,
    start: datetime.date,
    end: datetime.date | None,
    charged_through: datetime.date | None,
    target: datetime.date,
):
    """The periods of a recurring charge due in a run with target date ``target``.

    ``amount`` is the charge's exact price (amount x quantity). Billed in
    advance: due once a piece has started (``p <= target``). A whole cell
    costs the price, a cut piece its share of the whole cell's days.
    """
    return [
        Period(p, q, prorate(amount, (q - p).days, cell_days), cell_days)
        for p, q, cell_days in pieces(
            period_months=period_months,
            bill_cycle_day=bill_cycle_day,
            start=start,
            end=end,
            charged_through=charged_through,
            target=target,
        )
    ]


def usage_pieces(
    *,
    period_months: int,
    bill_cycle_day: int,
    start: datetime.date,
    end: datetime.date | None,
    charged_through: datetime.date | None,
    target: datetime.date,
):
    """The pieces ``(p, q)`` of a usage charge due in a run with target date
    ``target``: billed in arrears, once a piece has ended (``q <= target``)."""
    return [
        (p, q)
        for p, q, _ in pieces(
            period_months=period_months,
            bill_cycle_day=bill_cycle_day,
            start=start,
            end=end,
            charged_through=charged_through,
            target=target,
            in_arrears=True,
        )
    ]


def one_time_period(
    *,
    amount: Decimal,
    start: datetime.date,
    charged_through: datetime.date | None,
    target: datetime.date,
):
    """A one-time charge (``amount``: its exact price) is due once, in the
    first run whose target date is on or after its start; its service period
    is that single day."""
    if charged_through is not None or start > target:
        return []
    return [Period(start, start + ONE_DAY, price_amount(amount))]
