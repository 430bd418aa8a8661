"""Property: after a change, once a run has passed the day the billed items
went stale, the live items of every grid cell (charge items and their
adjustments) sum to what the cell costs under the charge as it is now
(BILLING_RULES.md, Subscription changes and adjustments; issue 14).

The cost of a cell is computed here independently: the oracle of
tests/test_engine_oracle.py lists the grid cells by brute force, and each
cell is cut at the change and the end and prorated with Fractions.
"""

import datetime
from collections import defaultdict
from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from billruns.services import bill_run_create, bill_run_execute
from customers.models import PERIOD_MONTHS
from invoices.models import DocumentItem
from tests.factories import AccountFactory, ChargeFactory, SubscriptionFactory
from tests.test_billrun_adjustments import change_price, remove
from tests.test_engine_oracle import oracle_cycle_dates, oracle_round

ONE_DAY = datetime.timedelta(days=1)
START = datetime.date(2026, 1, 1)


def run(target):
    bill_run = bill_run_create(target_date=target, enqueue=False)
    return bill_run_execute(run_id=bill_run.pk)


def cell_costs(*, price_on, months, bcd, start, end, cuts, through):
    """{first day billed in the cell: the cell's cost now}: each piece of the
    cell (cut at the start, the cuts and the end) prorated over the whole
    cell's days at the price of its first day, rounded."""
    dates = oracle_cycle_dates(start.year - 1, through.year + 1, bcd)
    anchor = next(i for i, d in enumerate(dates) if d >= start)
    grid = [d for i, d in enumerate(dates) if (i - anchor) % months == 0]
    costs = {}
    for cell_start, cell_end in zip(grid, grid[1:], strict=False):
        p, q = max(cell_start, start), cell_end
        if end is not None:
            q = min(q, end)
        if q <= p or p > through:
            continue
        bounds = sorted({p, q, *(c for c in cuts if p < c < q)})
        days = (cell_end - cell_start).days
        costs[p] = sum(
            (
                oracle_round(price_on(a) * Fraction((b - a).days, days))
                for a, b in zip(bounds, bounds[1:], strict=False)
            ),
            Decimal("0.00"),
        )
    return costs


class AdjustmentsSumToTheCellsCost(TestCase):
    @settings(max_examples=60, deadline=None)
    @given(
        bcd=st.integers(1, 31),
        months=st.sampled_from([1, 3]),
        amount=st.decimals(min_value=1, max_value=999, places=2),
        billed_days=st.integers(0, 200),
        change_days=st.integers(1, 250),
        new_amount=st.one_of(st.none(), st.decimals(min_value=0, max_value=999, places=2)),
    )
    def test_live_items_of_each_cell_sum_to_its_cost_now(
        self, bcd, months, amount, billed_days, change_days, new_amount
    ):
        account = AccountFactory(bill_cycle_day=bcd)
        period = {1: "month", 3: "quarter"}[months]
        assert PERIOD_MONTHS[period] == months
        charge = ChargeFactory(
            subscription=SubscriptionFactory(account=account),
            period=period,
            amount=amount,
            start_date=START,
        )
        run(START + datetime.timedelta(days=billed_days))  # a billing history
        day = START + datetime.timedelta(days=change_days)
        if new_amount is None:
            remove(charge, day)
        elif new_amount != amount:
            change_price(charge, day, amount=str(new_amount))
        else:
            return  # not a valid change: the new terms must differ
        through = datetime.date(2027, 1, 1)
        run(through)  # past the stale day and past every change

        charge.refresh_from_db()

        def price_on(d):
            return Fraction(new_amount if new_amount is not None and d >= day else amount)

        expected = cell_costs(
            price_on=price_on,
            months=months,
            bcd=bcd,
            start=START,
            end=charge.end_date,
            cuts=[day],
            through=through,
        )
        got = defaultdict(lambda: Decimal("0.00"))
        for item in DocumentItem.objects.filter(charge=charge, document_canceled=False):
            cells = [p for p in expected if p <= item.service_start]
            # An item outside every cell (a billed piece past a removal) is
            # corrected to 0 by its adjustment: keyed apart, it must net 0.
            got[max(cells) if cells else None] += item.amount
        assert {p: got[p] for p in expected} == expected
        assert set(got) - set(expected) <= {None} and got.get(None, 0) == 0
