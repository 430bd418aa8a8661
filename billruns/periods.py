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

    @property
    def is_cut(self) -> bool:
        return (self.end - self.start).days != self.cell_days


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
    sign, digits, exponent = amount.as_tuple()
    units = int("".join(map(str, digits)) or "0")
    scale = 10 ** max(0, -exponent)
    if exponent > 0:
        units *= 10**exponent
    quotient, remainder = divmod(units * days * 100, cell_days * scale)
    if remainder * 2 >= cell_days * scale:
        quotient += 1
    return Decimal(-quotient if sign else quotient).scaleb(-2)


# Wide enough for any price the columns allow (an 18-digit amount times an
# 18-digit quantity) to be exact before its one rounding.
EXACT = Context(prec=60, traps=[Inexact, InvalidOperation, Overflow])
ROUNDING = Context(prec=60, rounding=ROUND_HALF_UP, traps=[InvalidOperation, Overflow])


def price(amount: Decimal, quantity: Decimal) -> Decimal:
    """A recurring or one-time charge's price, exact: ``amount x quantity``."""
    with localcontext(EXACT):
        return amount * quantity


def price_amount(exact: Decimal) -> Decimal:
    """An exact price rounded once, half away from zero, to the cent."""
    return exact.quantize(CENT, context=ROUNDING)


def _grid(*, period_months: int, bill_cycle_day: int, start: datetime.date):
    """The charge's grid as a function of the cell index: ``grid(0)`` is A,
    the first cycle date on or after ``start``."""
    first_month = month_index(start)
    anchor = cycle_date(first_month, bill_cycle_day)
    if anchor < start:
        first_month += 1

    def grid(k: int) -> datetime.date:
        return cycle_date(first_month + k * period_months, bill_cycle_day)

    return first_month, grid


def pieces(
    *,
    period_months: int,
    bill_cycle_day: int,
    start: datetime.date,
    end: datetime.date | None,
    charged_through: datetime.date | None,
    due,
):
    """The unbilled pieces ``(p, q, P, Q)`` of a charge (BILLING_RULES.md,
    Service periods): ``[p, q)`` inside the grid cell ``[P, Q)``, from the
    charge's start or where billing stopped last time (always a piece
    boundary), cut at the end date, while ``due(p, q)``."""
    first_month, grid = _grid(
        period_months=period_months, bill_cycle_day=bill_cycle_day, start=start
    )
    p = start if charged_through is None or charged_through < start else charged_through
    # The grid cell holding p: grid(k) <= p < grid(k + 1).
    k = (month_index(p) - first_month) // period_months
    while grid(k) > p:
        k -= 1
    while grid(k + 1) <= p:
        k += 1
    while end is None or p < end:
        cell_start, cell_end = grid(k), grid(k + 1)
        q = cell_end if end is None or cell_end < end else end
        if not due(p, q):
            return
        yield p, q, cell_start, cell_end
        p = q
        k += 1


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
    periods = []
    for p, q, cell_start, cell_end in pieces(
        period_months=period_months,
        bill_cycle_day=bill_cycle_day,
        start=start,
        end=end,
        charged_through=charged_through,
        due=lambda p, q: p <= target,
    ):
        cell_days = (cell_end - cell_start).days
        periods.append(Period(p, q, prorate(amount, (q - p).days, cell_days), cell_days))
    return periods


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
        for p, q, _, _ in pieces(
            period_months=period_months,
            bill_cycle_day=bill_cycle_day,
            start=start,
            end=end,
            charged_through=charged_through,
            due=lambda p, q: q <= target,
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
