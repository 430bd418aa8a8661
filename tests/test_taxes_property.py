"""Property: the documents a run makes carry the tax lines an independent
computation gives (BILLING_RULES.md, Taxes and Documents a bill run makes).

The oracle works in Fractions: the base is the sum of the taxable charges'
amounts, each of the account's rates (in its codes' order) gives base x rate
/ 100 rounded half away from zero to the cent (tests/test_engine_oracle.py's
rounding), the total is the subtotal plus the lines, and its sign, with the
Advanced AR Settlement switch, decides the document's type and amount."""

import datetime
from decimal import Decimal
from fractions import Fraction

from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from billruns.services import bill_run_create, bill_run_execute
from customers.models import AccountTaxCode, TaxRate
from customers.services import tax_rate_set
from invoices.models import DocumentTax, DocumentType, TenantSettings
from tests.factories import AccountFactory, OneTimeChargeFactory, SubscriptionFactory
from tests.test_engine_oracle import oracle_round

DAY = datetime.date(2026, 2, 1)
CODES = ["A", "B", "C", "D"]

# Round rates and amounts of a few cents too, which make exact halves of a
# cent (0.05 x 10 % = 0.005): where the rounding's direction shows.
rates = st.one_of(
    st.decimals(min_value=0, max_value=100, places=4),
    st.sampled_from([Decimal(r) for r in ("10", "50", "12.5", "0.5", "2.5")]),
)
amounts = st.one_of(
    st.decimals(min_value=-9999, max_value=9999, places=2),
    st.sampled_from([Decimal(a) for a in ("0.05", "-0.05", "0.01", "-0.03", "0.25")]),
)
charges = st.lists(
    st.tuples(amounts, st.booleans()),
    min_size=1,
    max_size=4,
)
accounts = st.lists(
    st.tuples(st.lists(st.sampled_from(CODES), unique=True, max_size=4), charges),
    min_size=1,
    max_size=4,
)


def oracle(items, account_rates, advanced_ar):
    """(type, amount, subtotal, [tax line amounts]) of one account's document."""
    subtotal = sum((Fraction(amount) for amount, _ in items), Fraction(0))
    base = sum((Fraction(amount) for amount, taxable in items if taxable), Fraction(0))
    lines = [oracle_round(base * Fraction(rate) / 100) for rate in account_rates]
    total = Decimal(subtotal.numerator) / subtotal.denominator + sum(lines, Decimal(0))
    total = total.quantize(Decimal("0.01"))
    if total < 0 and advanced_ar:
        return DocumentType.CREDIT_MEMO, -total, subtotal, lines
    return DocumentType.INVOICE, total, subtotal, lines


class RunTaxesMatchTheOracle(TestCase):
    @settings(max_examples=40, deadline=None)
    @example(
        tenant_rates=dict.fromkeys(CODES, Decimal("10")),
        books=[(["A"], [(Decimal("0.05"), True)]), (["B"], [(Decimal("-0.05"), True)])],
        advanced_ar=True,
    )
    @given(
        tenant_rates=st.fixed_dictionaries(dict.fromkeys(CODES, rates)),
        books=accounts,
        advanced_ar=st.booleans(),
    )
    def test_every_document_has_the_oracles_lines_type_and_total(
        self, tenant_rates, books, advanced_ar
    ):
        TenantSettings.objects.update_or_create(
            id=1, defaults={"advanced_ar_settlement": advanced_ar}
        )
        for code, rate in tenant_rates.items():
            tax_rate_set(code, rate, name=f"Tax {code}")
        expected = {}
        for codes, items in books:
            account = AccountFactory(bill_cycle_day=1)
            for position, code in enumerate(codes):
                AccountTaxCode.objects.create(
                    account=account, tax_rate=TaxRate.objects.get(code=code), position=position
                )
            subscription = SubscriptionFactory(account=account, start_date=DAY)
            for amount, taxable in items:
                OneTimeChargeFactory(
                    subscription=subscription, amount=amount, taxable=taxable, start_date=DAY
                )
            expected[account.id] = (
                codes,
                oracle(items, [tenant_rates[c] for c in codes], advanced_ar),
            )

        bill_run = bill_run_execute(run_id=bill_run_create(target_date=DAY, enqueue=False).pk)

        documents = {d.account_id: d for d in bill_run.documents.all()}
        assert set(documents) == set(expected)
        for account_id, (codes, (kind, amount, subtotal, lines)) in expected.items():
            document = documents[account_id]
            assert (document.document_type, document.amount) == (kind, amount)
            assert Fraction(document.subtotal) == subtotal
            taxes = DocumentTax.objects.filter(document=document).order_by("position")
            assert [(t.code, t.rate, t.amount) for t in taxes] == [
                (code, tenant_rates[code], line) for code, line in zip(codes, lines, strict=True)
            ]
