"""Whole runs compared against a small, obviously-correct oracle.

The oracle builds each charge's grid by listing every month's cycle date and
keeping every m-th one through A, then cuts the timeline at the start, the
grid dates and the end; amounts are exact fractions rounded half away from
zero. It shares no code with billruns.periods.
"""

import calendar
import datetime
from collections import Counter
from decimal import Decimal
from fractions import Fraction

from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from billruns import services
from billruns.periods import price, recurring_periods, usage_pieces
from customers.models import PERIOD_MONTHS
from invoices.models import DocumentItem, TenantSettings
from tests.factories import AccountFactory, ChargeFactory, OneTimeChargeFactory, SubscriptionFactory

ONE_DAY = datetime.timedelta(days=1)


def oracle_cycle_dates(first_year, last_year, bcd):
    dates = []
    for year in range(first_year, last_year + 1):
        for month in range(1, 13):
            last = calendar.monthrange(year, month)[1]
            dates.append(datetime.date(year, month, min(bcd, last)))
    return dates


def oracle_round(value: Fraction) -> Decimal:
    cents = abs(value) * 100
    whole = int(cents)
    if cents - whole >= Fraction(1, 2):
        whole += 1
    return (Decimal(whole) / 100 * (1 if value >= 0 else -1)).quantize(Decimal("0.01"))


def oracle_periods(*, amount, months, bcd, start, end, billed_through, target):
    """Every (start, end exclusive, amount) due, by brute force."""
    last = max(start, target, end or start)
    all_dates = oracle_cycle_dates(start.year - 2, last.year + 3, bcd)
    anchor_index = next(i for i, d in enumerate(all_dates) if d >= start)
    grid = [d for i, d in enumerate(all_dates) if (i - anchor_index) % months == 0]
    cuts = sorted({start, *[g for g in grid if g > start and (end is None or g < end)]})
    bounds = [*cuts, end] if end is not None else cuts
    due = []
    for p, q in zip(bounds, bounds[1:], strict=False):
        cell_start = max(g for g in grid if g <= p)
        cell_end = min(g for g in grid if g > p)
        share = Fraction(amount) * (q - p).days / (cell_end - cell_start).days
        if p <= target and (billed_through is None or p >= billed_through):
            due.append((p, q, oracle_round(share)))
    return due


dates = st.dates(datetime.date(2023, 11, 1), datetime.date(2028, 3, 31))
amounts = st.decimals(min_value=-5000, max_value=5000, places=2, allow_nan=False)
periods = st.sampled_from(sorted(PERIOD_MONTHS))
# A charge's quantity: above 0, at most 4 places (mostly 1, as most charges).
quantities = st.one_of(
    st.just(Decimal(1)),
    st.decimals(min_value=Decimal("0.0001"), max_value=10000, places=4, allow_nan=False),
)


@settings(max_examples=400, deadline=None)
@given(
    bcd=st.integers(1, 31),
    months=st.sampled_from([1, 3, 6, 12]),
    start=dates,
    length=st.one_of(st.none(), st.integers(1, 800)),
    target_offset=st.integers(-40, 900),
    amount=amounts,
)
# An end in the grid's last year: the oracle's grid once stopped short of it.
@example(
    bcd=1,
    months=12,
    start=datetime.date(2023, 12, 2),
    length=762,
    target_offset=0,
    amount=Decimal("0.00"),
)
def test_periods_match_the_oracle(bcd, months, start, length, target_offset, amount):
    end = start + datetime.timedelta(days=length) if length else None
    target = start + datetime.timedelta(days=target_offset)
    got = [
        (p.start, p.end, p.amount)
        for p in recurring_periods(
            amount=amount,
            period_months=months,
            bill_cycle_day=bcd,
            start=start,
            end=end,
            charged_through=None,
            target=target,
        )
    ]
    assert got == oracle_periods(
        amount=amount,
        months=months,
        bcd=bcd,
        start=start,
        end=end,
        billed_through=None,
        target=target,
    )


charge_specs = st.lists(
    st.tuples(
        st.booleans(),  # one-time?
        periods,
        dates,
        st.one_of(st.none(), st.integers(1, 500)),
        amounts,
        quantities,
    ),
    min_size=1,
    max_size=4,
)


class WholeRunsAgainstTheOracle(TestCase):
    @settings(max_examples=40, deadline=None)
    @given(
        accounts=st.lists(st.tuples(st.integers(1, 31), charge_specs), min_size=1, max_size=3),
        first_target=dates,
        steps=st.lists(st.integers(0, 200), min_size=1, max_size=3),
        advanced_ar=st.booleans(),
    )
    def test_several_runs_in_a_row_bill_what_the_oracle_says(
        self, accounts, first_target, steps, advanced_ar
    ):
        # given accounts with random charges
        TenantSettings.objects.update_or_create(
            id=1, defaults={"advanced_ar_settlement": advanced_ar}
        )
        charges = []
        for bcd, specs in accounts:
            subscription = SubscriptionFactory(account=AccountFactory(bill_cycle_day=bcd))
            for one_time, period, start, length, amount, quantity in specs:
                if one_time:
                    charge = OneTimeChargeFactory(
                        subscription=subscription,
                        start_date=start,
                        amount=amount,
                        quantity=quantity,
                    )
                else:
                    charge = ChargeFactory(
                        subscription=subscription,
                        period=period,
                        start_date=start,
                        end_date=start + datetime.timedelta(days=length) if length else None,
                        amount=amount,
                        quantity=quantity,
                    )
                charges.append(charge)
        billed_through = {charge.id: None for charge in charges}

        target = first_target
        for step in steps:
            target = target + datetime.timedelta(days=step)
            # when a run bills up to the target date
            run = services.bill_run_create(target_date=target, enqueue=False)
            run = services.bill_run_execute(run_id=run.pk)
            # then it bills exactly what the oracle says is due
            expected = Counter()
            for charge in charges:
                price = Fraction(charge.amount) * Fraction(charge.quantity)
                if charge.charge_type == "one_time":
                    due = (
                        [(charge.start_date, charge.start_date + ONE_DAY, oracle_round(price))]
                        if billed_through[charge.id] is None and charge.start_date <= target
                        else []
                    )
                else:
                    due = oracle_periods(
                        amount=price,
                        months=PERIOD_MONTHS[charge.period],
                        bcd=charge.subscription.account.bill_cycle_day,
                        start=charge.start_date,
                        end=charge.end_date,
                        billed_through=billed_through[charge.id],
                        target=target,
                    )
                for p, q, amount in due:
                    expected[(charge.id, p, q - ONE_DAY, amount)] += 1
                    billed_through[charge.id] = q
            got = Counter(
                (i.charge_id, i.service_start, i.service_end, i.amount)
                for i in DocumentItem.objects.filter(document__bill_run=run)
            )
            assert got == expected
            # and one document per account, typed by the sign of its total
            for document in run.documents.prefetch_related("items"):
                total = sum(item.amount for item in document.items.all())
                if total < 0 and advanced_ar:
                    assert (document.document_type, document.amount) == ("credit_memo", -total)
                else:
                    assert (document.document_type, document.amount) == ("invoice", total)
            assert run.documents.values("account").distinct().count() == run.documents.count()


@settings(max_examples=300, deadline=None)
@given(
    bcd=st.integers(1, 31),
    months=st.sampled_from([1, 3, 6, 12]),
    start=dates,
    length=st.one_of(st.none(), st.integers(1, 800)),
    target_offset=st.integers(-40, 900),
    amount=amounts,
    quantity=quantities,
)
def test_prices_with_quantities_match_the_oracle(
    bcd, months, start, length, target_offset, amount, quantity
):
    """amount x quantity, prorated from the exact price and rounded once."""
    end = start + datetime.timedelta(days=length) if length else None
    target = start + datetime.timedelta(days=target_offset)
    got = [
        (p.start, p.end, p.amount)
        for p in recurring_periods(
            amount=price(amount, quantity),
            period_months=months,
            bill_cycle_day=bcd,
            start=start,
            end=end,
            charged_through=None,
            target=target,
        )
    ]
    assert got == oracle_periods(
        amount=Fraction(amount) * Fraction(quantity),
        months=months,
        bcd=bcd,
        start=start,
        end=end,
        billed_through=None,
        target=target,
    )


@settings(max_examples=300, deadline=None)
@given(
    bcd=st.integers(1, 31),
    months=st.sampled_from([1, 3, 6, 12]),
    start=dates,
    length=st.one_of(st.none(), st.integers(1, 800)),
    target_offset=st.integers(-40, 900),
    billed=st.integers(0, 3),
)
def test_usage_pieces_match_the_oracle(bcd, months, start, length, target_offset, billed):
    """A usage charge's pieces are the recurring pieces, due once ended
    (q <= T), from where billing stopped."""
    end = start + datetime.timedelta(days=length) if length else None
    target = start + datetime.timedelta(days=target_offset)
    horizon = max(target, end or target) + datetime.timedelta(days=400)
    every = oracle_periods(
        amount=0, months=months, bcd=bcd, start=start, end=end, billed_through=None, target=horizon
    )
    billed_through = every[billed - 1][1] if 0 < billed <= len(every) else None
    expected = [
        (p, q)
        for p, q, _ in every
        if q <= target and (billed_through is None or p >= billed_through)
    ]
    assert (
        usage_pieces(
            period_months=months,
            bill_cycle_day=bcd,
            start=start,
            end=end,
            charged_through=billed_through,
            target=target,
        )
        == expected
    )
