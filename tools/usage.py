"""Usage for synthetic books: usage charges written beside an imported book,
and ``import_usage`` files of usage records over the periods a run bills.

The importer takes the first release's charges only (no quantity, no usage
charge; customers/importer, ``CHARGE_FIELDS``), so the demo and the
benchmark add their usage charges after the import, in bulk; their records
go through ``invoices.usage`` as any usage file does.
"""

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from billruns.periods import usage_pieces
from customers.models import Charge, ChargeType, Pricing
from customers.numbers import charge_numbers_allocate
from customers.pricing import Tier
from customers.services import pricing_create
from invoices.usage import HEADER_TEXT

# The rules' example (BILLING_RULES.md, Usage charges): up to 1,000 at 0, up
# to 10,000 at 0.002 with a flat fee of 5.00, then 0.001.
API_CALLS_PRICING = {
    "model": "graduated",
    "tiers": [
        {"up_to": "1000", "unit_price": "0"},
        {"up_to": "10000", "unit_price": "0.002", "flat_fee": "5.00"},
        {"up_to": None, "unit_price": "0.001"},
    ],
}
USAGE_PERIOD_MONTHS = {"month": 1, "quarter": 3, "semi_annual": 6, "annual": 12}
# Charges per bulk insert: a few megabytes of parameters at most.
CHARGE_BATCH = 5000


def pricing_from_document(pricing: dict) -> Pricing:
    """A Pricing written from the import format's ``pricing`` object
    (INTERFACES.md, import_accounts, second release)."""
    return pricing_create(
        model=pricing["model"],
        tiers=[
            Tier(
                None if tier["up_to"] is None else Decimal(tier["up_to"]),
                Decimal(tier["unit_price"]),
                Decimal(tier.get("flat_fee", "0")),
            )
            for tier in pricing["tiers"]
        ],
    )


@dataclass(frozen=True)
class UsageCharge:
    """A usage charge to write on a subscription that exists."""

    subscription_id: int
    currency: str
    start_date: datetime.date
    name: str
    unit: str
    pricing: Pricing
    period: str = "month"


def usage_charges_write(charges: Sequence[UsageCharge]) -> int:
    """Write ``charges`` in bulk, numbered from the charge counter (numbers
    allocated together: ``ChargeNumberField`` would take one query per row).
    Returns how many."""
    numbers = charge_numbers_allocate(len(charges))
    for start in range(0, len(charges), CHARGE_BATCH):
        Charge.objects.bulk_create(
            [
                Charge(
                    number=number,
                    subscription_id=charge.subscription_id,
                    name=charge.name,
                    charge_type=ChargeType.USAGE,
                    amount=None,
                    quantity=None,
                    unit=charge.unit,
                    pricing=charge.pricing,
                    currency=charge.currency,
                    period=charge.period,
                    start_date=charge.start_date,
                )
                for number, charge in zip(
                    numbers[start : start + CHARGE_BATCH],
                    charges[start : start + CHARGE_BATCH],
                    strict=True,
                )
            ]
        )
    return len(charges)


def billed_span(
    *, period: str, bill_cycle_day: int, start: datetime.date, target: datetime.date
) -> tuple[datetime.date, datetime.date] | None:
    """``[first, end)``: the days of the pieces a first run with target date
    ``target`` bills of a usage charge starting on ``start`` (in arrears:
    the pieces that have ended by then); None when it bills none."""
    pieces = usage_pieces(
        period_months=USAGE_PERIOD_MONTHS[period],
        bill_cycle_day=bill_cycle_day,
        start=start,
        end=None,
        charged_through=None,
        target=target,
    )
    if not pieces:
        return None
    return pieces[0][0], pieces[-1][1]


# Quantities of the benchmark's records, in thousandths: 0.000 to 249.999,
# cycled through (997 is prime, so the cycle does not follow the charges').
QUANTITY_CYCLE = [(i * 7919) % 250_000 for i in range(997)]
QUANTITY_TEXT = [f"{q // 1000}.{q % 1000:03d}" for q in QUANTITY_CYCLE]


def quantity_total(records: int) -> Decimal:
    """The sum of the quantities ``benchmark_usage_csv`` writes for ``records``."""
    cycles, rest = divmod(records, len(QUANTITY_CYCLE))
    thousandths = cycles * sum(QUANTITY_CYCLE) + sum(QUANTITY_CYCLE[:rest])
    return Decimal(thousandths) / 1000


def benchmark_usage_csv(
    out, *, charges: Iterable[tuple[str, datetime.date, datetime.date]], records: int
) -> int:
    """Write an ``import_usage`` file of ``records`` records to the text
    stream ``out``, spread over ``charges``: (number, first day, end day
    exclusive), each charge's billed days. Returns how many charges it used.

    Record ``i`` is ``u`` and ten digits, in order; the records go round the
    charges, and each charge's records go round its days, so every day of a
    charge gets about as many as the others. Streaming: one round over the
    charges (a line per charge) is in memory at a time, never the file."""
    charges = list(charges)
    if not charges or records <= 0:
        out.write(HEADER_TEXT + "\n")
        return 0
    first_day = min(first for _, first, _ in charges)
    last_day = max(end for _, _, end in charges)
    days = [
        (first_day + datetime.timedelta(days=offset)).isoformat()
        for offset in range((last_day - first_day).days)
    ]
    plan = [
        (f",{number},", (first - first_day).days, (end - first).days)
        for number, first, end in charges
    ]
    width = len(plan)
    cycle = len(QUANTITY_TEXT)
    out.write(HEADER_TEXT + "\n")
    for round_start in range(0, records, width):
        turn = round_start // width
        out.write(
            "".join(
                [
                    f"u{round_start + c:010d}{middle}{days[first + (turn + c) % span]},"
                    f"{QUANTITY_TEXT[(round_start + c) % cycle]}\n"
                    for c, (middle, first, span) in enumerate(plan[: records - round_start])
                ]
            )
        )
    return min(width, records)
