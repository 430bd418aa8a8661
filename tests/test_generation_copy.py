"""A chunk's items as written by COPY on PostgreSQL (billruns.generation
``_item_lines``: one formatted line an item) read back exactly as the engine
computed them, whatever the charge's name holds."""

import datetime
from decimal import Decimal

import pytest

from billruns import generation, services
from invoices.models import DocumentItem
from tests.factories import ChargeFactory, UsageChargeFactory, UsageRecordFactory


def test_the_copy_columns_are_every_column_of_an_item_but_its_id():
    columns = {f.column for f in DocumentItem._meta.concrete_fields if not f.primary_key}
    assert set(generation.ITEM_COPY_COLUMNS) == columns
    assert len(generation.ITEM_COPY_COLUMNS) == len(columns)


@pytest.mark.django_db
@pytest.mark.parametrize("preview", [False, True])
def test_items_read_back_as_computed_with_every_character_copy_escapes(preview):
    # given charges whose names hold what COPY's text format escapes
    names = ["tab\there", "new\nline", "back\\slash\\", "carriage\rreturn", "€ ünïcode ×", "\\N"]
    for index, name in enumerate(names):
        ChargeFactory(
            name=name,
            amount=Decimal("10.00"),
            quantity=Decimal("2.5"),
            start_date=datetime.date(2026, 1, 10 + index),
            subscription__start_date=datetime.date(2026, 1, 10 + index),
        )
    usage = UsageChargeFactory(name="API\tcalls", unit="calls\\x")
    UsageRecordFactory(charge=usage, date=datetime.date(2026, 1, 5), quantity=Decimal("1500"))
    # when
    run = services.bill_run_create(
        target_date=datetime.date(2026, 2, 1), enqueue=False, preview=preview
    )
    run = services.bill_run_execute(run_id=run.pk)
    # then
    items = DocumentItem.all_objects.filter(document__bill_run=run).order_by("id")
    by_name = {}
    for item in items:  # each name's first item (a recurring charge bills in advance)
        by_name.setdefault(item.charge_name, item)
    assert set(by_name) >= {*names, "API\tcalls"}
    first = by_name["tab\there"]
    assert (first.service_start, first.service_end) == (
        datetime.date(2026, 1, 10),
        datetime.date(2026, 1, 31),
    )
    assert first.quantity == Decimal("2.5")
    assert first.unit_price == Decimal("10.00")
    assert first.amount == (Decimal("25.00") * 22 / 31).quantize(Decimal("0.01"))
    assert first.rating  # a cut period says how it was prorated
    assert first.previous_charged_through is None
    assert first.adjusts_id is None and first.pricing_id is None
    assert (first.preview, first.document_canceled, first.fully_reversed) == (preview, False, False)
    calls = by_name["API\tcalls"]
    assert calls.unit == "calls\\x"
    assert calls.quantity == Decimal("1500")
    assert calls.unit_price is None
    assert by_name["\\N"].charge_name == "\\N"
