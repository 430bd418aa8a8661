"""Each rule of the service periods (docs/billing-rules.md), as its own test."""

import datetime
from decimal import Decimal

from billruns.periods import cycle_date, month_index, one_time_period, prorate, recurring_periods

D = datetime.date


def periods(*, amount="100.00", months=1, bcd=1, start, end=None, through=None, target):
    return [
        (p.start, p.end, p.amount)
        for p in recurring_periods(
            amount=Decimal(amount),
            period_months=months,
            bill_cycle_day=bcd,
            start=start,
            end=end,
            charged_through=through,
            target=target,
        )
    ]


def test_the_rules_own_example_bills_a_partial_then_a_full_month():
    assert periods(start=D(2026, 1, 15), target=D(2026, 2, 1)) == [
        (D(2026, 1, 15), D(2026, 2, 1), Decimal("54.84")),
        (D(2026, 2, 1), D(2026, 3, 1), Decimal("100.00")),
    ]


def test_a_cycle_day_past_the_months_end_falls_on_its_last_day():
    assert cycle_date(month_index(D(2026, 2, 1)), 31) == D(2026, 2, 28)
    assert cycle_date(month_index(D(2026, 4, 1)), 31) == D(2026, 4, 30)
    assert cycle_date(month_index(D(2028, 2, 1)), 30) == D(2028, 2, 29)
    assert cycle_date(month_index(D(2026, 3, 1)), 31) == D(2026, 3, 31)


def test_bcd_31_walks_the_month_ends():
    got = periods(amount="290.00", bcd=31, start=D(2026, 2, 10), target=D(2026, 4, 30))
    assert [(p, q) for p, q, _ in got] == [
        (D(2026, 2, 10), D(2026, 2, 28)),
        (D(2026, 2, 28), D(2026, 3, 31)),
        (D(2026, 3, 31), D(2026, 4, 30)),
        (D(2026, 4, 30), D(2026, 5, 31)),
    ]
    # the first, cut period is prorated over its whole cell, 31 Jan to 28 Feb
    assert got[0][2] == Decimal("186.43")  # 290 * 18 / 28


def test_a_start_on_a_cycle_date_has_no_partial_period():
    assert periods(bcd=15, start=D(2026, 1, 15), target=D(2026, 1, 15)) == [
        (D(2026, 1, 15), D(2026, 2, 15), Decimal("100.00"))
    ]


def test_an_end_date_cuts_the_period_that_holds_it_and_nothing_starts_after():
    got = periods(
        amount="920.00",
        months=3,
        bcd=15,
        start=D(2026, 1, 1),
        end=D(2026, 5, 1),
        target=D(2026, 12, 31),
    )
    assert got == [
        (D(2026, 1, 1), D(2026, 1, 15), Decimal("140.00")),  # 14 of 92 days
        (D(2026, 1, 15), D(2026, 4, 15), Decimal("920.00")),
        (D(2026, 4, 15), D(2026, 5, 1), Decimal("161.76")),  # 16 of 91 days
    ]


def test_a_period_cut_at_both_ends_divides_by_the_whole_cell():
    # monthly, BCD 1, from the 10th to the 20th of a 30-day month: 10 of 30 days
    assert periods(start=D(2026, 4, 10), end=D(2026, 4, 20), target=D(2026, 5, 1)) == [
        (D(2026, 4, 10), D(2026, 4, 20), Decimal("33.33"))
    ]


def test_billing_is_in_advance_a_period_starting_on_the_target_date_is_due():
    assert periods(start=D(2026, 1, 1), target=D(2026, 2, 1))[-1][0] == D(2026, 2, 1)
    assert periods(start=D(2026, 1, 1), target=D(2026, 1, 31))[-1][0] == D(2026, 1, 1)


def test_catch_up_bills_every_period_due_as_its_own_item():
    assert len(periods(start=D(2026, 1, 1), target=D(2026, 6, 1))) == 6


def test_nothing_before_the_charged_through_date_is_billed_again():
    assert periods(start=D(2026, 1, 1), through=D(2026, 3, 1), target=D(2026, 3, 15)) == [
        (D(2026, 3, 1), D(2026, 4, 1), Decimal("100.00"))
    ]
    assert periods(start=D(2026, 1, 1), through=D(2026, 4, 1), target=D(2026, 3, 15)) == []


def test_a_charge_starting_after_the_target_date_is_not_due():
    assert periods(start=D(2026, 3, 2), target=D(2026, 3, 1)) == []


def test_an_annual_charge_from_a_leap_day_keeps_to_february_ends():
    got = periods(amount="1200.00", months=12, bcd=29, start=D(2028, 2, 29), target=D(2030, 3, 1))
    assert [(p, q) for p, q, _ in got] == [
        (D(2028, 2, 29), D(2029, 2, 28)),
        (D(2029, 2, 28), D(2030, 2, 28)),
        (D(2030, 2, 28), D(2031, 2, 28)),
    ]
    assert {amount for _, _, amount in got} == {Decimal("1200.00")}


def test_a_semi_annual_grid_is_six_months_apart_through_the_first_cycle_date():
    got = periods(months=6, bcd=10, start=D(2026, 1, 20), target=D(2026, 8, 10))
    assert [(p, q) for p, q, _ in got] == [
        (D(2026, 1, 20), D(2026, 2, 10)),
        (D(2026, 2, 10), D(2026, 8, 10)),
        (D(2026, 8, 10), D(2027, 2, 10)),
    ]
    # the first cell is 10 Aug 2025 to 10 Feb 2026: 184 days, 21 of them billed
    assert got[0][2] == Decimal("11.41")


def test_rounding_is_half_away_from_zero_once_per_item():
    assert prorate(Decimal("0.25"), 1, 2) == Decimal("0.13")
    assert prorate(Decimal("-0.25"), 1, 2) == Decimal("-0.13")
    assert prorate(Decimal("100.00"), 17, 31) == Decimal("54.84")
    assert prorate(Decimal("-100.00"), 17, 31) == Decimal("-54.84")


def test_a_credit_is_prorated_like_a_charge():
    assert periods(amount="-40.00", start=D(2026, 1, 16), target=D(2026, 1, 16)) == [
        (D(2026, 1, 16), D(2026, 2, 1), Decimal("-20.65"))  # 16 of 31 days
    ]


def test_a_one_time_charge_is_due_once_on_its_start_day():
    fee = Decimal("50.00")
    assert (
        one_time_period(
            amount=fee, start=D(2026, 1, 15), charged_through=None, target=D(2026, 1, 14)
        )
        == []
    )
    [period] = one_time_period(
        amount=fee, start=D(2026, 1, 15), charged_through=None, target=D(2026, 1, 15)
    )
    assert (period.start, period.end, period.amount) == (D(2026, 1, 15), D(2026, 1, 16), fee)
    assert (
        one_time_period(
            amount=fee, start=D(2026, 1, 15), charged_through=D(2026, 1, 16), target=D(2026, 12, 31)
        )
        == []
    )
