"""Tax lines of the documents a run makes (BILLING_RULES.md, Taxes; issue 15),
computed by hand: the base is the taxable items' sum, each rate one line
rounded once half up, the type decided on the total, the rates those of the
run's start."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billruns import generation
from billruns.selectors import run_summary
from billruns.services import (
    bill_run_cancel,
    bill_run_create,
    bill_run_delete,
    bill_run_execute,
    bill_run_start,
)
from customers.models import AccountTaxCode, TaxRate
from customers.services import tax_rate_set
from invoices.models import Document, DocumentTax, DocumentType, TenantSettings
from tests.factories import AccountFactory, ChargeFactory, OneTimeChargeFactory, SubscriptionFactory
from tests.test_billrun_adjustments import change_price, remove

D = datetime.date
FEBRUARY = D(2026, 2, 1)


def run(target, **kwargs):
    bill_run = bill_run_create(target_date=target, enqueue=False, **kwargs)
    return bill_run_execute(run_id=bill_run.pk)


def taxed_account(*codes, **kwargs):
    account = AccountFactory(bill_cycle_day=1, **kwargs)
    for position, code in enumerate(codes):
        AccountTaxCode.objects.create(
            account=account, tax_rate=TaxRate.objects.get(code=code), position=position
        )
    return account


def monthly(account, amount, *, start=FEBRUARY, **kwargs):
    return ChargeFactory(
        subscription=SubscriptionFactory(account=account, start_date=start),
        amount=Decimal(amount),
        start_date=start,
        **kwargs,
    )


def lines(document):
    return [(t.code, t.rate, t.amount) for t in DocumentTax.objects.filter(document=document)]


@pytest.fixture
def rates(db):
    tax_rate_set("VAT20", "20", name="VAT 20%")
    tax_rate_set("STATE", "6.25", name="State 6.25%")
    tax_rate_set("CITY", "0.3125", name="City 0.3125%")


@pytest.mark.django_db
def test_a_small_rate_on_a_small_amount_is_rounded_once_half_up(rates):
    account = taxed_account("CITY")
    monthly(account, "29.97")

    [document] = run(D(2026, 2, 1)).documents.all()

    # 29.97 x 0.3125 / 100 = 0.09365625 -> 0.09
    assert lines(document) == [("CITY", Decimal("0.3125"), Decimal("0.09"))]
    assert (document.subtotal, document.amount, document.balance) == (
        Decimal("29.97"),
        Decimal("30.06"),
        Decimal("30.06"),
    )


@pytest.mark.django_db
def test_two_stacked_rates_each_round_on_the_same_base_in_the_accounts_order(rates):
    account = taxed_account("STATE", "CITY")
    monthly(account, "29.97")

    [document] = run(D(2026, 2, 1)).documents.all()

    # 29.97 x 6.25 % = 1.873125 -> 1.87; x 0.3125 % = 0.09365625 -> 0.09
    assert lines(document) == [
        ("STATE", Decimal("6.25"), Decimal("1.87")),
        ("CITY", Decimal("0.3125"), Decimal("0.09")),
    ]
    assert document.amount == Decimal("31.93")
    # The other order of codes gives the other order of lines.
    other = taxed_account("CITY", "STATE")
    monthly(other, "29.97", start=D(2026, 3, 1))
    [second] = run(D(2026, 3, 1)).documents.filter(account=other)
    assert [code for code, _, _ in lines(second)] == ["CITY", "STATE"]


@pytest.mark.django_db
def test_an_account_without_codes_has_no_tax_lines(rates):
    monthly(AccountFactory(bill_cycle_day=1), "29.97")
    [document] = run(D(2026, 2, 1)).documents.all()
    assert lines(document) == []
    assert (document.subtotal, document.amount) == (Decimal("29.97"), Decimal("29.97"))


@pytest.mark.django_db
def test_an_untaxed_one_time_fee_beside_a_taxed_plan(rates):
    account = taxed_account("VAT20")
    plan = monthly(account, "100.00")
    OneTimeChargeFactory(subscription=plan.subscription, amount=Decimal("50.00"), taxable=False)

    [document] = run(D(2026, 2, 1)).documents.all()

    assert lines(document) == [("VAT20", Decimal("20"), Decimal("20.00"))]
    assert (document.subtotal, document.amount) == (Decimal("150.00"), Decimal("170.00"))


@pytest.mark.django_db
def test_a_zero_rate_still_makes_its_line(rates):
    tax_rate_set("ZERO", "0", name="Exempt")
    account = taxed_account("ZERO", "VAT20")
    monthly(account, "10.00")
    [document] = run(D(2026, 2, 1)).documents.all()
    assert lines(document) == [
        ("ZERO", Decimal("0"), Decimal("0.00")),
        ("VAT20", Decimal("20"), Decimal("2.00")),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("advanced_ar", [True, False])
def test_a_negative_subtotal_is_a_credit_memo_or_a_negative_invoice(rates, advanced_ar):
    TenantSettings.objects.update_or_create(id=1, defaults={"advanced_ar_settlement": advanced_ar})
    account = taxed_account("VAT20")
    charge = monthly(account, "100.00")
    run(D(2026, 2, 1))
    remove(charge, D(2026, 2, 1))  # the whole of February is credited

    [document] = run(D(2026, 3, 1)).documents.all()

    # -100.00 x 20 % = -20.00: the tax line is signed as computed.
    assert lines(document) == [("VAT20", Decimal("20"), Decimal("-20.00"))]
    assert document.subtotal == Decimal("-100.00")
    if advanced_ar:
        assert (document.document_type, document.amount) == (
            DocumentType.CREDIT_MEMO,
            Decimal("120.00"),
        )
    else:
        assert (document.document_type, document.amount) == (
            DocumentType.INVOICE,
            Decimal("-120.00"),
        )


@pytest.mark.django_db
def test_the_type_is_decided_on_the_total_with_taxes(rates):
    """A subtotal of 0.00 whose taxes are negative (an untaxed charge back
    beside a taxed credit) makes a credit memo."""
    TenantSettings.objects.update_or_create(id=1, defaults={"advanced_ar_settlement": True})
    account = taxed_account("VAT20")
    taxed = monthly(account, "100.00")
    run(D(2026, 2, 1))
    remove(taxed, D(2026, 2, 1))  # -100.00, taxed: -20.00
    OneTimeChargeFactory(
        subscription=taxed.subscription,
        amount=Decimal("100.00"),
        taxable=False,
        start_date=D(2026, 2, 15),
    )

    [document] = run(D(2026, 3, 1)).documents.all()

    assert document.subtotal == Decimal("0.00")
    assert (document.document_type, document.amount) == (
        DocumentType.CREDIT_MEMO,
        Decimal("20.00"),
    )


@pytest.mark.django_db
def test_an_adjustment_on_a_taxed_charge_reduces_the_tax(rates):
    account = taxed_account("VAT20")
    charge = monthly(account, "100.00")
    fee = monthly(account, "30.00", taxable=False)
    run(D(2026, 2, 1))
    change_price(charge, D(2026, 2, 1), amount="60.00")
    change_price(fee, D(2026, 2, 1), amount="10.00")

    [document] = run(D(2026, 3, 1)).documents.all()

    # taxed: -100 (adjustment) + 60 (Feb) + 60 (Mar) = 20.00 -> tax 4.00;
    # untaxed: -30 + 10 + 10 = -10.00, not in the base.
    assert document.subtotal == Decimal("10.00")
    assert lines(document) == [("VAT20", Decimal("20"), Decimal("4.00"))]
    assert document.amount == Decimal("14.00")


@pytest.mark.django_db
def test_a_rate_changed_between_two_runs_leaves_the_first_runs_documents(rates):
    account = taxed_account("VAT20")
    monthly(account, "100.00")
    first = run(D(2026, 2, 1))
    tax_rate_set("VAT20", "25", name="VAT 25%")

    second = run(D(2026, 3, 1))

    [old] = first.documents.all()
    assert lines(old) == [("VAT20", Decimal("20"), Decimal("20.00"))]
    assert DocumentTax.objects.get(document=old).name == "VAT 20%"
    assert old.amount == Decimal("120.00")
    [new] = second.documents.all()
    assert lines(new) == [("VAT20", Decimal("25"), Decimal("25.00"))]
    assert DocumentTax.objects.get(document=new).name == "VAT 25%"


@pytest.mark.django_db
def test_a_rate_changed_while_the_run_is_processing_does_not_affect_it(rates):
    account = taxed_account("VAT20")
    monthly(account, "100.00")
    bill_run = bill_run_create(target_date=D(2026, 2, 1), enqueue=False)
    bill_run_start(run_id=bill_run.pk, enqueue_chunks=False)  # Processing: rates kept

    tax_rate_set("VAT20", "25")
    tax_rate_set("NEW", "5")
    bill_run = bill_run_execute(run_id=bill_run.pk)  # its chunks now

    [document] = bill_run.documents.all()
    assert lines(document) == [("VAT20", Decimal("20"), Decimal("20.00"))]
    assert sorted(bill_run.tax_rates.values_list("code", "rate")) == [
        ("CITY", Decimal("0.3125")),
        ("STATE", Decimal("6.25")),
        ("VAT20", Decimal("20")),
    ]


@pytest.mark.django_db
def test_a_code_created_after_the_run_started_fails_its_account_alone(rates):
    taxed = taxed_account("VAT20")
    monthly(taxed, "100.00")
    late = taxed_account()
    monthly(late, "100.00")
    bill_run = bill_run_create(target_date=D(2026, 2, 1), enqueue=False)
    bill_run_start(run_id=bill_run.pk, enqueue_chunks=False)
    tax_rate_set("NEW", "5")
    AccountTaxCode.objects.create(
        account=late, tax_rate=TaxRate.objects.get(code="NEW"), position=0
    )

    bill_run = bill_run_execute(run_id=bill_run.pk)

    assert [d.account_id for d in bill_run.documents.all()] == [taxed.id]
    [failure] = bill_run.failures.all()
    assert failure.account_id == late.id
    assert failure.reason.startswith("Tax code NEW has no rate in this run")


@pytest.mark.django_db
def test_canceling_and_deleting_a_run_removes_its_tax_lines(rates, superuser):
    account = taxed_account("VAT20", "CITY")
    monthly(account, "100.00")
    bill_run = run(D(2026, 2, 1))
    assert DocumentTax.objects.count() == 2

    bill_run_cancel(run=bill_run, user=superuser)
    bill_run.refresh_from_db()
    bill_run_delete(run=bill_run, user=superuser)

    assert not Document.objects.exists()
    assert not DocumentTax.objects.exists()


@pytest.mark.django_db
def test_show_json_carries_subtotal_and_taxes_as_interfaces_says(rates):
    TenantSettings.objects.update_or_create(id=1, defaults={"advanced_ar_settlement": True})
    account = taxed_account("STATE", "CITY")
    charge = monthly(account, "29.97")
    monthly(taxed_account("VAT20"), "10.00")
    run(D(2026, 2, 1))
    remove(charge, D(2026, 2, 1))

    shown = run_summary(run(D(2026, 3, 1)), documents=True)

    [credit, invoice] = sorted(shown["documents"], key=lambda d: d["type"])
    assert credit["type"] == "credit_memo"
    assert credit["subtotal"] == "-29.97"
    assert credit["taxes"] == [
        {"code": "STATE", "rate": "6.25", "amount": "-1.87"},
        {"code": "CITY", "rate": "0.3125", "amount": "-0.09"},
    ]
    assert credit["amount"] == "31.93"
    assert invoice["subtotal"] == "10.00"
    assert invoice["taxes"] == [{"code": "VAT20", "rate": "20", "amount": "2.00"}]
    assert invoice["amount"] == "12.00"
    assert shown["totals"] == {"USD": "-19.93"}


@pytest.mark.django_db
def test_a_chunks_queries_do_not_grow_with_its_taxed_documents(rates):
    def chunk_queries(accounts):
        for _ in range(accounts):
            monthly(taxed_account("STATE", "CITY"), "29.97")
        bill_run = bill_run_create(target_date=D(2026, 2, 1), enqueue=False)
        [chunk_id] = bill_run_start(run_id=bill_run.pk, enqueue_chunks=False)
        with CaptureQueriesContext(connection) as queries:
            generation.process_chunk(chunk_id)
        bill_run_execute(run_id=bill_run.pk)
        assert DocumentTax.objects.filter(document__bill_run=bill_run).count() == 2 * accounts
        return len(queries)

    assert chunk_queries(2) == chunk_queries(7)


@pytest.mark.django_db
def test_the_change_preview_carries_taxes(rates):
    account = taxed_account("VAT20")
    monthly(account, "100.00")
    result = generation.account_next_run(account.id, target_date=D(2026, 2, 1))
    assert [(line.code, line.amount) for line in result.taxes] == [("VAT20", Decimal("20.00"))]
    assert (result.subtotal, result.total) == (Decimal("100.00"), Decimal("120.00"))
