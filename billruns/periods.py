"""Service periods and their amounts, exactly as BILLING_RULES.md defines them.

Pure functions over dates and Decimals; no database. The engine calls them for
every charge of every account, so they avoid per-day loops: a charge's grid is
reached by month arithmetic, not by walking days.
"""

import calendar
import datetime
import functools
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from core.money import CENT

ONE_DAY = datetime.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime.date  # inclusive
    end: datetime.date  # exclusive
    amount: Decimal


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

    Computed on integer cents so that no intermediate rounding can move a tie.
    """
    if days == cell_days:
        return amount.quantize(CENT, rounding=ROUND_HALF_UP)
    cents = int((amount * 100).to_integral_value(rounding=ROUND_HALF_UP))
    numerator = abs(cents) * days
    quotient, remainder = divmod(numerator, cell_days)
    if remainder * 2 >= cell_days:
        quotient += 1
    signed = -quotient if cents < 0 else quotient
    return Decimal(signed).scaleb(-2)


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

    The grid is the cycle dates ``period_months`` apart through A, the first
    cycle date on or after the charge's start. Periods are the grid cells from
    the start on, the first cut at the start, the last at the end date; a cut
    period costs its share of the whole cell's days. Due: starts on or before
    the target and on or after the charged-through date.
    """
    first_month = month_index(start)
    anchor = cycle_date(first_month, bill_cycle_day)
    if anchor < start:
        first_month += 1
        anchor = cycle_date(first_month, bill_cycle_day)

    def grid(k: int) -> datetime.date:
        return cycle_date(first_month + k * period_months, bill_cycle_day)

    # The first period to consider: the charge's start, or where billing
    # stopped last time (always a period boundary).
    p = start if charged_through is None or charged_through < start else charged_through
    # The grid cell holding p: grid(k) <= p < grid(k + 1).
    k = (month_index(p) - first_month) // period_months
    while grid(k) > p:
        k -= 1
    while grid(k + 1) <= p:
        k += 1

    periods = []
    while p <= target and (end is None or p < end):
        cell_start, cell_end = grid(k), grid(k + 1)
        q = cell_end if end is None or cell_end < end else end
        if p == cell_start and q == cell_end:
            cost = amount.quantize(CENT, rounding=ROUND_HALF_UP)
        else:
            cost = prorate(amount, (q - p).days, (cell_end - cell_start).days)
        periods.append(Period(p, q, cost))
        p = q
        k += 1
    return periods


def one_time_period(
    *,
    amount: Decimal,
    start: datetime.date,
    charged_through: datetime.date | None,
    target: datetime.date,
):
    """A one-time charge is due once, in the first run whose target date is on
    or after its start; its service period is that single day."""
    if charged_through is not None or start > target:
        return []
    return [Period(start, start + ONE_DAY, amount.quantize(CENT, rounding=ROUND_HALF_UP))]
