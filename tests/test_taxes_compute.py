"""Hand-computed tax lines (invoices/taxes.py)."""

from decimal import Decimal as D

from invoices.taxes import Rate, tax_lines


def test_small_rate_on_29_97():
    # 29.97 x 0.3125 / 100 = 0.093656.. -> 0.09
    sub, lines, total = tax_lines([(D("29.97"), True)], [Rate("ST", "State", D("0.3125"))])
    assert (sub, [x.amount for x in lines], total) == (D("29.97"), [D("0.09")], D("30.06"))


def test_two_rates_rounded_each_once():
    rates = [Rate("S", "State", D("6.25")), Rate("C", "City", D("2.5"))]
    # base 10.10: 0.63125 -> 0.63; 0.2525 -> 0.25
    sub, lines, total = tax_lines([(D("10.10"), True)], rates)
    assert [x.amount for x in lines] == [D("0.63"), D("0.25")]
    assert total == D("10.98")


def test_untaxed_fee_beside_taxed_plan():
    sub, lines, total = tax_lines(
        [(D("100.00"), True), (D("50.00"), False)], [Rate("VAT20", "VAT", D("20"))]
    )
    assert (sub, lines[0].amount, total) == (D("150.00"), D("20.00"), D("170.00"))


def test_negative_base_half_away_from_zero():
    # -0.625 x 20 / 100 = -0.125 -> -0.13
    sub, lines, total = tax_lines([(D("-0.63"), True), (D("0.005") * 0, True)], [])
    assert lines == [] and total == sub == D("-0.63")
    _, lines, total = tax_lines([(D("-0.65"), True)], [Rate("V", "V", D("20"))])
    assert lines[0].amount == D("-0.13") and total == D("-0.78")


def test_adjustment_reduces_the_tax():
    _, lines, _ = tax_lines([(D("30.00"), True), (D("-10.00"), True)], [Rate("V", "V", D("20"))])
    assert lines[0].amount == D("4.00")


def test_no_codes_no_lines_zero_lines_kept():
    _, lines, total = tax_lines([(D("0.00"), True)], [Rate("V", "V", D("20"))])
    assert [x.amount for x in lines] == [D("0.00")] and total == D("0.00")
