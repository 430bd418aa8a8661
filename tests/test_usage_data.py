"""Charge numbers, quantities, usage charges, pricings and usage records as
data (issue 13): what the database itself holds and refuses. These run on
SQLite (the default) and on PostgreSQL."""

import datetime
import re
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, models, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.models.deletion import ProtectedError
from django.test.utils import CaptureQueriesContext

from core.fields import ExactDecimalField, ExactSum
from customers import selectors
from customers.models import Charge, ChargeType, Pricing, PricingTier, UsageRecord
from customers.numbers import charge_numbers_allocate
from customers.pricing import Tier
from customers.selectors import pricing_tiers, usage_quantities
from customers.services import PricingRefused, pricing_create
from tests.factories import (
    ChargeFactory,
    OneTimeChargeFactory,
    SubscriptionFactory,
    UsageChargeFactory,
    UsageRecordFactory,
)

pytestmark = pytest.mark.django_db

JAN = datetime.date(2026, 1, 1)
FEB = datetime.date(2026, 2, 1)
GRADUATED = [
    Tier(Decimal("1000"), Decimal("0")),
    Tier(Decimal("10000"), Decimal("0.002"), Decimal("5.00")),
    Tier(None, Decimal("0.001")),
]


def refused(**fields):
    """The IntegrityError of writing a charge with ``fields``."""
    with pytest.raises(IntegrityError), transaction.atomic():
        ChargeFactory(**fields)


def counter_value(number: str) -> int:
    return int(number[1:])


# --- Charge numbers ----------------------------------------------------------


def test_a_charge_written_without_a_number_gets_the_next_one():
    first = ChargeFactory()
    second = OneTimeChargeFactory()

    assert re.fullmatch(r"C[0-9]{8}", first.number)
    assert counter_value(second.number) == counter_value(first.number) + 1
    assert Charge.objects.get(pk=second.pk).number == second.number


def test_a_number_given_is_kept():
    assert ChargeFactory(number="F-C3").number == "F-C3"


def test_generated_numbers_skip_one_taken_in_any_case():
    first = ChargeFactory()
    taken = f"c{counter_value(first.number) + 1:08d}"
    ChargeFactory(number=taken)

    following = ChargeFactory()

    assert counter_value(following.number) == counter_value(first.number) + 2


def test_many_numbers_at_once_skip_those_in_use_and_those_about_to_be():
    first = ChargeFactory()
    start = counter_value(first.number)
    ChargeFactory(number=f"C{start + 2:08d}")

    numbers = charge_numbers_allocate(3, taken=[f"c{start + 3:08d}"])

    assert numbers == [f"C{start + n:08d}" for n in (1, 4, 5)]


def test_bulk_created_charges_get_distinct_numbers():
    subscription = SubscriptionFactory()
    charges = Charge.objects.bulk_create(
        Charge(
            subscription=subscription,
            name=f"Plan {n}",
            charge_type=ChargeType.RECURRING,
            amount=Decimal("1.00"),
            currency="USD",
            period="month",
            start_date=JAN,
        )
        for n in range(5)
    )

    numbers = [charge.number for charge in charges]
    assert len(set(numbers)) == 5
    assert sorted(Charge.objects.values_list("number", flat=True)) == sorted(numbers)


def test_the_database_refuses_two_charge_numbers_that_differ_only_in_case():
    ChargeFactory(number="C00000042")
    refused(number="c00000042")
    refused(number="C00000042")


@pytest.mark.postgres
def test_a_row_that_reaches_postgresql_without_a_number_gets_one_from_the_trigger():
    # given a charge written as the import's COPY writes it: an empty number
    subscription = SubscriptionFactory()
    previous = ChargeFactory(subscription=subscription)

    # when
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO customers_charge (number, subscription_id, name, charge_type, amount, "
            "quantity, unit, currency, period, start_date) "
            "VALUES ('', %s, 'Raw', 'recurring', 1, 1, '', 'USD', 'month', %s) RETURNING number",
            [subscription.pk, JAN],
        )
        number = cursor.fetchone()[0]

    # then
    assert counter_value(number) == counter_value(previous.number) + 1


@pytest.mark.django_db(transaction=True)
def test_the_migration_numbers_existing_charges_and_the_counter_goes_on():
    executor = MigrationExecutor(connection)
    graph = executor.loader.graph
    target = next(k for k in graph.nodes if k[0] == "customers" and k[1].endswith("_usage_charges"))
    parent = next(p.key for p in graph.node_map[target].parents if p.key[0] == "customers")
    executor.migrate([parent])
    apps = executor.loader.project_state([parent]).apps
    account = apps.get_model("customers", "Account").objects.create(
        number="A00000001", name="Old", currency="USD", bill_cycle_day=1
    )
    subscription = apps.get_model("customers", "Subscription").objects.create(
        number="S00000001", account=account, start_date=JAN
    )
    old = [
        apps.get_model("customers", "Charge").objects.create(
            subscription=subscription,
            name=f"Old {n}",
            charge_type="recurring",
            amount=Decimal("10.00"),
            currency="USD",
            period="month",
            start_date=JAN,
        )
        for n in range(3)
    ]

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    numbered = dict(Charge.objects.values_list("pk", "number"))
    assert [numbered[charge.pk] for charge in old] == ["C00000001", "C00000002", "C00000003"]
    assert Charge.objects.get(pk=old[0].pk).quantity == Decimal(1)
    assert ChargeFactory(subscription_id=subscription.pk).number == "C00000004"


# --- Quantities ----------------------------------------------------------------


def test_a_charge_has_quantity_1_unless_told_otherwise():
    assert Charge.objects.get(pk=ChargeFactory().pk).quantity == Decimal(1)


@pytest.mark.parametrize("quantity", [Decimal(0), Decimal(-1), None], ids=["0", "-1", "none"])
def test_the_database_refuses_a_recurring_or_one_time_charge_without_a_positive_quantity(
    quantity,
):
    refused(quantity=quantity)
    with pytest.raises(IntegrityError), transaction.atomic():
        OneTimeChargeFactory(quantity=quantity)


@pytest.mark.parametrize(
    "quantity", [Decimal("0.0001"), Decimal("99999999999999.9999"), Decimal("2.5")]
)
def test_a_quantity_is_given_back_exactly(quantity):
    charge = ChargeFactory(quantity=quantity)

    assert Charge.objects.get(pk=charge.pk).quantity == quantity
    assert Charge.objects.filter(quantity=quantity).get() == charge


def test_a_quantity_with_more_than_4_places_is_refused_not_rounded():
    with pytest.raises(ValueError, match="more than 4 decimal places"), transaction.atomic():
        ChargeFactory(quantity=Decimal("1.00005"))
    with pytest.raises(ValueError, match="does not fit"), transaction.atomic():
        ChargeFactory(quantity=Decimal("100000000000000"))


# --- Usage charges -----------------------------------------------------------


def test_a_usage_charge_has_a_unit_and_a_pricing_and_neither_amount_nor_quantity():
    charge = UsageChargeFactory()

    stored = Charge.objects.get(pk=charge.pk)
    assert (stored.charge_type, stored.amount, stored.quantity, stored.unit) == (
        "usage",
        None,
        None,
        "calls",
    )
    assert stored.pricing.model == "per_unit"


@pytest.mark.parametrize(
    "fields",
    [
        {"amount": Decimal("1.00")},
        {"quantity": Decimal(1)},
        {"unit": ""},
        {"pricing": None},
        {"period": ""},
    ],
    ids=["amount", "quantity", "no unit", "no pricing", "no period"],
)
def test_the_database_refuses_a_usage_charge_with_the_wrong_terms(fields):
    with pytest.raises(IntegrityError), transaction.atomic():
        UsageChargeFactory(**fields)


def test_the_database_refuses_a_unit_or_a_pricing_on_a_recurring_charge():
    refused(unit="calls")
    refused(pricing=pricing_create(model="per_unit", tiers=[Tier(None, Decimal("1"))]))
    refused(amount=None)


def test_cleaning_a_charge_names_each_wrong_term_on_its_field():
    usage = UsageChargeFactory.build(
        subscription=SubscriptionFactory(), amount=Decimal("1.00"), quantity=Decimal(1), unit=""
    )
    usage.pricing = None
    with pytest.raises(ValidationError) as usage_problems:
        usage.full_clean()
    recurring = ChargeFactory.build(
        subscription=SubscriptionFactory(), amount=None, quantity=Decimal(0), unit="GB"
    )
    with pytest.raises(ValidationError) as recurring_problems:
        recurring.full_clean()

    assert set(usage_problems.value.message_dict) >= {"amount", "quantity", "unit", "pricing"}
    assert "no amount" in usage_problems.value.message_dict["amount"][0]
    assert set(recurring_problems.value.message_dict) >= {"amount", "quantity", "unit"}
    assert recurring_problems.value.message_dict["quantity"] == ["The quantity must be above 0."]


def test_a_valid_usage_charge_cleans_without_problems():
    charge = UsageChargeFactory()

    charge.full_clean()


def test_a_pricing_in_use_cannot_be_deleted():
    charge = UsageChargeFactory()

    with pytest.raises(ProtectedError):
        charge.pricing.delete()


# --- Pricings and tiers ----------------------------------------------------------


def test_a_pricing_is_written_with_each_tiers_lower_bound():
    pricing = pricing_create(model="graduated", tiers=GRADUATED)

    rows = list(
        pricing.tiers.order_by("from_quantity").values_list(
            "from_quantity", "up_to", "unit_price", "flat_fee"
        )
    )
    assert rows == [
        (Decimal(0), Decimal(1000), Decimal(0), Decimal(0)),
        (Decimal(1000), Decimal(10000), Decimal("0.002"), Decimal("5.00")),
        (Decimal(10000), None, Decimal("0.001"), Decimal(0)),
    ]
    assert pricing_tiers([pricing.pk]) == {pricing.pk: GRADUATED}


def test_unit_prices_and_bounds_keep_six_places_exactly():
    tiers = [
        Tier(Decimal("0.000001"), Decimal("999999999999.999999")),
        Tier(None, Decimal("0.123456"), Decimal("9999999999999.99")),
    ]

    pricing = pricing_create(model="volume", tiers=tiers)

    assert pricing_tiers([pricing.pk])[pricing.pk] == tiers


@pytest.mark.parametrize(
    ("model", "tiers", "where", "message"),
    [
        ("volume", [], "tiers", "at least one tier"),
        ("per_unit", GRADUATED, "tiers", "one unit price"),
        (
            "per_unit",
            [Tier(None, Decimal("1"), Decimal("1.00"))],
            "tiers[0].flat_fee",
            "no flat fee",
        ),
        ("graduated", GRADUATED[:2], "tiers[1].up_to", "the last tier is unbounded"),
        (
            "graduated",
            [GRADUATED[2], *GRADUATED],
            "tiers[0].up_to",
            "only the last tier is unbounded",
        ),
        (
            "graduated",
            [GRADUATED[1], GRADUATED[0], GRADUATED[2]],
            "tiers[1].up_to",
            "must be above the previous tier's 10,000, not 1,000",
        ),
        ("volume", [Tier(Decimal(0), Decimal(1)), GRADUATED[2]], "tiers[0].up_to", "above 0"),
        ("volume", [Tier(None, Decimal("-0.01"))], "tiers[0].unit_price", "0 or more"),
        ("volume", [Tier(None, Decimal("0.0000001"))], "tiers[0].unit_price", "6 decimal places"),
        ("volume", [Tier(None, Decimal(0), Decimal("0.001"))], "tiers[0].flat_fee", "2 decimal"),
        ("volume", [Tier(None, Decimal(0), Decimal("-1"))], "tiers[0].flat_fee", "0 or more"),
        ("volume", [Tier(None, Decimal("NaN"))], "tiers[0].unit_price", "decimal number"),
        ("volume", [Tier(None, Decimal("1E12"))], "tiers[0].unit_price", "below"),
        ("tiered", GRADUATED, "model", 'must be one of "per_unit", "graduated", "volume"'),
    ],
)
def test_a_pricing_whose_tiers_do_not_make_a_whole_is_refused_with_nothing_written(
    model, tiers, where, message
):
    with pytest.raises(PricingRefused) as refusal:
        pricing_create(model=model, tiers=tiers)

    assert any(w == where and message in m for w, m in refusal.value.problems), (
        refusal.value.problems
    )
    assert not Pricing.objects.exists()


def tier(pricing, **fields):
    values = {"from_quantity": Decimal(0), "up_to": None, "unit_price": Decimal(0), **fields}
    with pytest.raises(IntegrityError), transaction.atomic():
        PricingTier.objects.create(pricing=pricing, **values)


def test_the_database_refuses_a_tier_that_breaks_a_rule_of_its_own():
    pricing = pricing_create(model="graduated", tiers=GRADUATED)

    tier(pricing, from_quantity=Decimal(10000), up_to=Decimal(10000))  # empty
    tier(pricing, from_quantity=Decimal(20000), up_to=Decimal(15000))  # backwards
    tier(pricing, from_quantity=Decimal(20000))  # a second unbounded tier
    tier(pricing, from_quantity=Decimal(1000), up_to=Decimal(5000))  # starts twice
    tier(pricing, from_quantity=Decimal(-1), up_to=Decimal(0))
    tier(pricing, from_quantity=Decimal(50000), up_to=Decimal(60000), unit_price=Decimal(-1))
    tier(pricing, from_quantity=Decimal(50000), up_to=Decimal(60000), flat_fee=Decimal(-1))
    assert pricing.tiers.count() == 3


# --- Usage records -------------------------------------------------------------


def test_a_usage_quantity_is_given_back_exactly_at_six_places():
    largest = Decimal("999999999999.999999")
    record = UsageRecordFactory(quantity=largest)

    assert UsageRecord.objects.get(pk=record.pk).quantity == largest
    with pytest.raises(ValueError, match="more than 6 decimal places"), transaction.atomic():
        UsageRecordFactory(quantity=Decimal("0.0000001"))


def test_the_database_refuses_a_negative_quantity_an_empty_id_and_an_id_twice():
    record = UsageRecordFactory()

    for fields in [
        {"quantity": Decimal("-0.000001")},
        {"record_id": ""},
        {"record_id": record.record_id},
    ]:
        with pytest.raises(IntegrityError), transaction.atomic():
            UsageRecord.objects.create(
                **{"record_id": "other", "charge": record.charge, "date": JAN, "quantity": 1}
                | fields
            )


def test_sqlite_refuses_a_record_of_a_charge_that_does_not_exist():
    """On PostgreSQL the import, the only writer of records, records only the
    charges it locked: a check of every statement cost a third of its time."""
    if connection.vendor != "sqlite":
        pytest.skip("a trigger on SQLite only (customers.usage_guard)")
    record = UsageRecordFactory()
    missing = record.charge_id + 1000

    with pytest.raises(IntegrityError), transaction.atomic():
        UsageRecord.objects.create(record_id="orphan", charge_id=missing, date=JAN, quantity=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        UsageRecord.objects.filter(pk=record.pk).update(charge_id=missing)
    assert UsageRecord.objects.get().charge_id == record.charge_id


@pytest.mark.postgres
def test_postgresql_refuses_to_delete_a_charge_with_usage_whatever_deletes_it():
    record = UsageRecordFactory()

    with (
        pytest.raises(IntegrityError, match="has usage records"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM customers_charge WHERE id = %s", [record.charge_id])
    assert Charge.objects.filter(pk=record.charge_id).exists()


def test_a_charge_without_usage_can_still_be_deleted():
    charge = UsageChargeFactory()

    charge.delete()

    assert not Charge.objects.filter(pk=charge.pk).exists()


def test_ids_are_compared_exactly_case_included():
    record = UsageRecordFactory(record_id="abc")

    UsageRecordFactory(record_id="ABC", charge=record.charge)

    assert UsageRecord.objects.count() == 2


def test_a_charge_with_usage_cannot_be_deleted():
    record = UsageRecordFactory()

    with pytest.raises(ProtectedError):
        record.charge.delete()


def test_the_quantities_of_many_records_sum_exactly_past_what_sqlite_sums():
    """10^18 units of 10^-6 each: past 2^63 after ten records."""
    charge = UsageChargeFactory()
    largest = Decimal("999999999999.999999")
    for n in range(12):
        UsageRecordFactory(charge=charge, quantity=largest, date=JAN + datetime.timedelta(n))

    total = UsageRecord.objects.aggregate(total=ExactSum("quantity"))["total"]
    pieces = usage_quantities([(charge.pk, JAN, FEB)])

    assert total == 12 * largest
    assert pieces == {(charge.pk, JAN): 12 * largest}


def test_each_piece_sums_the_records_dated_from_its_start_to_before_its_end():
    first, second = UsageChargeFactory(), UsageChargeFactory()
    for record_id, charge, day, quantity in [
        ("a", first, JAN, "1.5"),
        ("b", first, datetime.date(2026, 1, 31), "2"),
        ("c", first, FEB, "100"),
        ("d", second, datetime.date(2026, 1, 15), "0.000001"),
        ("e", second, datetime.date(2025, 12, 31), "7"),
    ]:
        UsageRecordFactory(record_id=record_id, charge=charge, date=day, quantity=Decimal(quantity))
    march = datetime.date(2026, 3, 1)

    sums = usage_quantities(
        [
            (first.pk, JAN, FEB),
            (first.pk, FEB, march),
            (second.pk, JAN, FEB),
            (second.pk, FEB, march),
        ]
    )

    assert sums == {
        (first.pk, JAN): Decimal("3.5"),
        (first.pk, FEB): Decimal("100"),
        (second.pk, JAN): Decimal("0.000001"),
        (second.pk, FEB): Decimal(0),
    }


def test_a_chunks_usage_sum_is_one_query_however_many_pieces():
    charges = [UsageChargeFactory() for _ in range(3)]
    for n, charge in enumerate(charges):
        UsageRecordFactory(charge=charge, date=JAN, quantity=Decimal(n + 1))
    pieces = [(c.pk, JAN + datetime.timedelta(days=d), FEB) for c in charges for d in range(100)]

    counts = []
    for some in (pieces[:3], pieces[:300]):
        with CaptureQueriesContext(connection) as queries:
            sums = usage_quantities(some)
        # One reads the records; on PostgreSQL one before and one after set
        # and restore its plan's settings (customers.selectors.PLAIN_PLAN).
        assert sum("customers_usagerecord" in q["sql"] for q in queries) == 1
        counts.append(len(queries))
    assert counts[0] == counts[1] == (3 if connection.vendor == "postgresql" else 1)

    assert sums[(charges[2].pk, JAN)] == Decimal(3)


def test_the_usage_sum_reads_the_index_not_the_table():
    UsageRecordFactory()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(
                "EXPLAIN SELECT sum(quantity) FROM customers_usagerecord "
                "WHERE charge_id = 1 AND date >= '2026-01-01' AND date < '2026-02-01'"
            )
        else:
            cursor.execute(
                "EXPLAIN QUERY PLAN SELECT sum(quantity) FROM customers_usagerecord "
                "WHERE charge_id = 1 AND date >= '2026-01-01' AND date < '2026-02-01'"
            )
        plan = " ".join(str(row) for row in cursor.fetchall())

    assert "usage_charge_date_quantity" in plan
    if connection.vendor == "sqlite":
        assert "COVERING INDEX" in plan
    else:
        # A BRIN on PostgreSQL (customers 0014): a bitmap scan of its ranges.
        assert "Bitmap Index Scan" in plan


def test_the_records_index_is_a_brin_on_postgresql_and_a_covering_b_tree_on_sqlite():
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_get_indexdef('usage_charge_date_quantity'::regclass)")
            definition = cursor.fetchone()[0]
            assert "USING brin (charge_id, date)" in definition
            assert "pages_per_range='4'" in definition
        else:
            cursor.execute("PRAGMA index_info('usage_charge_date_quantity')")
            assert [row[2] for row in cursor.fetchall()] == ["charge_id", "date", "quantity"]


@pytest.mark.parametrize(
    ("ids", "spans"),
    [
        ([5], [(5, 5)]),
        ([1, 2, 900, 1900], [(1, 1900)]),
        ([1, 2, 5000, 5001, 90000], [(1, 2), (5000, 5001), (90000, 90000)]),
        # More gaps than spans: the widest split, the others are covered.
        (
            [i * 2000 for i in range(20)] + [10**6],
            [
                (0, 28000),
                (30000, 30000),
                (32000, 32000),
                (34000, 34000),
                (36000, 36000),
                (38000, 38000),
                (10**6, 10**6),
            ],
        ),
    ],
)
def test_a_chunks_charges_are_read_as_a_few_spans_covering_them_all(ids, spans, monkeypatch):
    monkeypatch.setattr(selectors, "USAGE_SPANS", 7)
    found = selectors._charge_spans(ids)
    assert found == spans
    assert all(any(first <= i <= last for first, last in found) for i in ids)


def test_the_sum_of_charges_numbered_far_apart_misses_none_and_adds_none_between():
    """The chunk's charges 1,000,000 and 1,000,600 make one span, 3,000,000
    another; the records of 1,000,300, inside the first, are not summed."""
    charges = {}
    with connection.cursor() as cursor:
        # Charges numbered far apart, as a charge added long after the book.
        for new_id in [10**6, 10**6 + 600, 3 * 10**6, 10**6 + 300]:
            charge = UsageChargeFactory()
            cursor.execute("UPDATE customers_charge SET id = %s WHERE id = %s", [new_id, charge.pk])
            charges[new_id] = Charge.objects.get(pk=new_id)
    for n, charge in enumerate(charges.values()):
        UsageRecordFactory(charge=charge, date=JAN, quantity=Decimal(n + 1))
        UsageRecordFactory(charge=charge, date=FEB, quantity=Decimal(100))

    sums = usage_quantities([(pk, JAN, FEB) for pk in list(charges)[:3]])

    assert sums == {(pk, JAN): Decimal(n + 1) for n, pk in enumerate(list(charges)[:3])}


# --- The exact column itself ----------------------------------------------------


def test_a_column_wider_than_sqlites_integers_is_refused_when_defined():
    with pytest.raises(ValueError, match="at most 18 digits"):
        ExactDecimalField(max_digits=19, decimal_places=6)
    assert isinstance(ExactDecimalField(max_digits=18, decimal_places=6), models.DecimalField)


def test_quantities_and_prices_are_integers_of_their_last_place_on_sqlite():
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's storage")
    UsageRecordFactory(record_id="x", quantity=Decimal("12.5"))
    ChargeFactory(quantity=Decimal("2.5"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT quantity, typeof(quantity) FROM customers_usagerecord")
        assert cursor.fetchone() == (12500000, "integer")
        cursor.execute("SELECT unit_price FROM customers_pricingtier")
        assert cursor.fetchone() == (10000,)  # 0.01 in millionths
        cursor.execute("SELECT quantity FROM customers_charge WHERE unit = ''")
        assert cursor.fetchone() == (25000,)
