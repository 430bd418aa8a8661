"""Reads of customers' data shared by the engine, the pages and the commands."""

import datetime
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from decimal import Decimal

from django.db import connection, transaction

from core.fields import SUM_SPLIT
from customers.models import (
    USAGE_QUANTITY,
    AccountTaxCode,
    Charge,
    Pricing,
    PricingTier,
    UsageRecord,
)
from customers.pricing import Tier

Piece = tuple[int, datetime.date, datetime.date]

_PLACES = USAGE_QUANTITY["decimal_places"]
_TABLE = UsageRecord._meta.db_table


def usage_quantities(pieces: Iterable[Piece]) -> dict[tuple[int, datetime.date], Decimal]:
    """The quantity of each piece ``(charge_id, start, end)``, keyed by
    ``(charge_id, start)``: ``usage_range_quantities`` for pieces that do
    not share a start."""
    return {
        (charge_id, start): total
        for (charge_id, start, _), total in usage_range_quantities(pieces).items()
    }


def usage_range_quantities(
    ranges: Iterable[Piece],
) -> dict[tuple[int, datetime.date, datetime.date], Decimal]:
    """The quantity of each range ``(charge_id, start, end)``: the sum of the
    charge's usage records dated ``start <= date < end`` (0 without any),
    keyed by the range.

    One grouped query for all the ranges (a run asks for a whole chunk's).
    On PostgreSQL the index ``usage_charge_date_quantity`` is a BRIN on
    (charge, date) (customers 0014): the records of the ranges' charges are
    read in one bitmap heap scan over a few spans of charge ids
    (``_charge_spans``), then joined to the ranges; a BRIN probed once per
    range would read its whole summary each time. On SQLite it is a B-tree
    holding the quantities: a range scan each, the records not read. Exact
    on both databases: numeric on PostgreSQL; on SQLite integer units,
    summed in two parts so that no sum nears 2^63 (as ``ExactSum``)."""
    ranges = list(dict.fromkeys(ranges))
    if not ranges:
        return {}
    # (atomic: the settings below last to the end of a transaction; in a
    # chunk's, they are restored after the statement)
    postgresql = connection.vendor == "postgresql"
    with transaction.atomic(savepoint=False) if postgresql else nullcontext():
        return _usage_sums(ranges, postgresql)


def _usage_sums(ranges, postgresql):
    with connection.cursor() as cursor:
        if postgresql:
            saved = _plain_plan(cursor)
            spans = _charge_spans(sorted({p[0] for p in ranges}))
            between = " OR ".join(["u.charge_id BETWEEN %s AND %s"] * len(spans))
            cursor.execute(
                "SELECT p.charge_id, p.start, p.stop, COALESCE(SUM(r.quantity), 0) "  # noqa: S608
                "FROM unnest(%s::bigint[], %s::date[], %s::date[]) AS p(charge_id, start, stop) "
                f"LEFT JOIN (SELECT u.charge_id, u.date, u.quantity FROM {_TABLE} AS u "
                f"WHERE ({between}) AND u.date >= %s AND u.date < %s) AS r "
                "ON r.charge_id = p.charge_id AND r.date >= p.start AND r.date < p.stop "
                "GROUP BY p.charge_id, p.start, p.stop",
                [
                    [p[0] for p in ranges],
                    [p[1] for p in ranges],
                    [p[2] for p in ranges],
                    *[bound for span in spans for bound in span],
                    min(p[1] for p in ranges),
                    max(p[2] for p in ranges),
                ],
            )
            found = {
                (charge_id, start, stop): total
                for charge_id, start, stop, total in cursor.fetchall()
            }
            _restore_plan(cursor, saved)
            return found
        sums = {}
        # SQLite binds at most 999 parameters: three per range.
        step = (connection.features.max_query_params or 999) // 3
        for first in range(0, len(ranges), step):
            chunk = ranges[first : first + step]
            values = ", ".join(["(%s, %s, %s)"] * len(chunk))
            cursor.execute(
                f"WITH p(charge_id, start, stop) AS (VALUES {values}) "  # noqa: S608
                "SELECT p.charge_id, p.start, p.stop, "
                f"COALESCE(SUM(r.quantity / {SUM_SPLIT}), 0), "
                f"COALESCE(SUM(r.quantity %% {SUM_SPLIT}), 0) "
                f"FROM p LEFT JOIN {_TABLE} AS r ON r.charge_id = p.charge_id "
                "AND r.date >= p.start AND r.date < p.stop "
                "GROUP BY p.charge_id, p.start, p.stop",
                [value for piece in chunk for value in piece],
            )
            for charge_id, start, stop, high, low in cursor.fetchall():
                units = high * SUM_SPLIT + low
                key = (
                    charge_id,
                    datetime.date.fromisoformat(start),
                    datetime.date.fromisoformat(stop),
                )
                sums[key] = Decimal(f"{units}E-{_PLACES}")
        return sums


# A gap of more charge ids than this between two of a chunk's charges starts
# a new span; at most USAGE_SPANS spans (the widest gaps split them).
USAGE_SPAN_GAP = 1000
USAGE_SPANS = 16


# Planned for a chunk's 200,000 records, the usage statement was compiled by
# PostgreSQL's JIT (28-65 ms of a 190 ms statement) and scanned by parallel
# workers that only compete with the run's other workers for the cores
# (a run's parallelism is its chunks): 189 -> 135 ms without either
# (docs/benchmarks.md, session 11). For this statement only.
PLAIN_PLAN = {"jit": "off", "max_parallel_workers_per_gather": "0"}


def _plain_plan(cursor):
    """Set PLAIN_PLAN for the transaction, in one statement; the settings it
    replaced (read first: a materialized CTE is read before the outer
    query's columns are computed)."""
    names = list(PLAIN_PLAN)
    reads = ", ".join(f"current_setting(%s) AS s{i}" for i in range(len(names)))
    columns = ", ".join(f"old.s{i}" for i in range(len(names)))
    sets = ", ".join(["set_config(%s, %s, true)"] * len(names))
    cursor.execute(
        f"WITH old AS MATERIALIZED (SELECT {reads}) SELECT {columns}, {sets} FROM old",  # noqa: S608
        [*names, *[value for pair in PLAIN_PLAN.items() for value in pair]],
    )
    return dict(zip(names, cursor.fetchone()[: len(names)], strict=True))


def _restore_plan(cursor, settings):
    cursor.execute(
        "SELECT " + ", ".join(["set_config(%s, %s, true)"] * len(settings)),  # noqa: S608
        [value for pair in settings.items() for value in pair],
    )


def _charge_spans(charge_ids: list[int]) -> list[tuple[int, int]]:
    """Sorted ``charge_ids`` as at most USAGE_SPANS ``(first, last)`` spans
    covering them, split at the widest gaps wider than USAGE_SPAN_GAP: a
    chunk's charges are mostly numbered together (a book's import writes an
    account's charges together), and a charge added later lands far off."""
    gaps = sorted(
        (
            (charge_ids[i + 1] - charge_ids[i], i)
            for i in range(len(charge_ids) - 1)
            if charge_ids[i + 1] - charge_ids[i] > USAGE_SPAN_GAP
        ),
        reverse=True,
    )[: USAGE_SPANS - 1]
    spans, first = [], 0
    for _, i in sorted(gaps, key=lambda gap: gap[1]):
        spans.append((charge_ids[first], charge_ids[i]))
        first = i + 1
    spans.append((charge_ids[first], charge_ids[-1]))
    return spans


def pricings(pricing_ids: Sequence[int]) -> dict[int, tuple[str, list[Tier]]]:
    """Each pricing's model and tiers in order, for rating, in two queries."""
    tiers = pricing_tiers(pricing_ids)
    models = Pricing.objects.filter(id__in=list(pricing_ids)).values_list("id", "model")
    return {pricing_id: (model, tiers[pricing_id]) for pricing_id, model in models}


def pricing_tiers(pricing_ids: Sequence[int]) -> dict[int, list[Tier]]:
    """Each pricing's tiers in order, for rating, in one query."""
    tiers: dict[int, list[Tier]] = {pricing_id: [] for pricing_id in pricing_ids}
    rows = (
        PricingTier.objects.filter(pricing_id__in=list(pricing_ids))
        .order_by("pricing_id", "from_quantity")
        .values_list("pricing_id", "up_to", "unit_price", "flat_fee")
    )
    for pricing_id, up_to, unit_price, flat_fee in rows:
        tiers[pricing_id].append(Tier(up_to, unit_price, flat_fee))
    return tiers


def account_has_billed_charges(account_id: int) -> bool:
    """Whether a charge of the account is billed (its charged-through date
    set): its bill cycle day is then frozen (BILLING_RULES.md, Subscription
    changes)."""
    return Charge.objects.filter(
        subscription__account_id=account_id, charged_through_date__isnull=False
    ).exists()


def account_tax_codes(account_ids: Iterable[int]) -> dict[int, list[str]]:
    """The tax codes of each account of ``account_ids``, in their order (the
    order of the import's ``tax_codes``, which the documents' tax lines
    follow), in one query; an account without codes is absent."""
    codes: dict[int, list[str]] = {}
    rows = (
        AccountTaxCode.objects.filter(account_id__anyof=list(account_ids))
        .order_by("account_id", "position")
        .values_list("account_id", "tax_rate__code")
    )
    for account_id, code in rows:
        codes.setdefault(account_id, []).append(code)
    return codes
