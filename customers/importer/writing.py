"""Writing a validated import: numbers for the records that have none, then
every row in bulk (COPY on PostgreSQL, ``bulk_create`` elsewhere), in the
caller's transaction: accounts, subscriptions, the pricings of the usage
charges with their tiers, the charges, then the accounts' tax codes.

A usage charge's pricing is written as ``customers.services.pricing_create``
writes one (a Pricing, then its tiers, each with the previous one's bound as
its lower bound: ``tier_bounds``), for all charges at once; the file's
pricings were judged by ``pricing_problems`` as that service judges them."""

from django.db import IntegrityError, connection
from django.db.models.functions import Lower
from django.utils import timezone

from core import bulk
from customers.importer.problems import ImportRefused
from customers.importer.validation import Row
from customers.models import (
    Account,
    AccountTaxCode,
    Charge,
    Pricing,
    PricingTier,
    Subscription,
)
from customers.numbers import charge_numbers_allocate
from customers.pricing import tier_bounds

# Rows per INSERT where bulk_create is used (not PostgreSQL, which COPYs):
# an account row has ~10 columns, and Django lowers the batch further to the
# database's own parameter limit (999 on SQLite).
INSERT_BATCH_SIZE = 2000

# Candidate numbers looked up per query when generating numbers: a database
# whose low numbers are all taken is skipped through in a few large steps.
NUMBER_PROBE_SIZE = 10_000

ACCOUNT_NUMBER_FORMAT = ("A", 8)
SUBSCRIPTION_NUMBER_FORMAT = ("S", 8)


def _free_numbers(model, *, prefix: str, digits: int, count: int, taken: set[str]) -> list[str]:
    """The ``count`` lowest numbers ``<prefix><digits>`` used neither in the
    file (``taken``, lowered) nor in the database, ignoring case."""
    found: list[str] = []
    candidate = 1
    while len(found) < count:
        wanted: list[str] = []
        while len(wanted) < max(count - len(found), NUMBER_PROBE_SIZE):
            number = f"{prefix}{candidate:0{digits}d}"
            candidate += 1
            if number.lower() not in taken:
                wanted.append(number)
        # Fixed-width numbers sort like their values, so one range scan of the
        # index on lower(number) finds every candidate already in use.
        in_use = set(
            model.objects.annotate(lowered=Lower("number"))
            .filter(lowered__gte=wanted[0].lower(), lowered__lte=wanted[-1].lower())
            .order_by()
            .values_list("lowered", flat=True)
        )
        found.extend(number for number in wanted if number.lower() not in in_use)
    return found[:count]


def assign_numbers(rows: list[Row], model, number_format: tuple[str, int]) -> None:
    missing = [row for row in rows if row.values["number"] is None]
    if not missing:
        return
    prefix, digits = number_format
    taken = {row.values["number"].lower() for row in rows if row.values["number"] is not None}
    numbers = _free_numbers(model, prefix=prefix, digits=digits, count=len(missing), taken=taken)
    for row, number in zip(missing, numbers, strict=True):
        row.values["number"] = number


def assign_charge_numbers(rows: list[Row]) -> None:
    """Numbers from the charge counter for the charges without one, skipping
    those the file gives (and those in the database, ignoring case). All at
    once, in Python: on PostgreSQL the COPY trigger would number a row
    without one, but it cannot know the numbers of rows later in the file."""
    missing = [row for row in rows if row.values["number"] is None]
    if not missing:
        return
    given = [row.values["number"] for row in rows if row.values["number"] is not None]
    for row, number in zip(
        missing, charge_numbers_allocate(len(missing), taken=given), strict=True
    ):
        row.values["number"] = number


def _tier_rows(terms) -> list[dict]:
    """The PricingTier values of a pricing's tiers (``pricing_tiers_write``'s)."""
    return [
        {
            "from_quantity": lower,
            "up_to": tier.up_to,
            "unit_price": tier.unit_price,
            "flat_fee": tier.flat_fee,
        }
        for tier, (lower, _) in zip(terms.tiers, tier_bounds(terms.tiers), strict=True)
    ]


def insert_rows(accounts: list[Row], tax_rate_ids: dict[str, int] | None = None) -> None:
    """Insert the accounts with their subscriptions and charges, and the
    accounts' tax codes in their order (``tax_rate_ids``: each code's rate).
    A row the database refuses (a number another writer took meanwhile)
    raises ImportRefused; the caller's transaction then writes nothing."""
    try:
        if connection.vendor == "postgresql":
            account_ids = _insert_with_copy(accounts)
        else:
            account_ids = _insert_with_bulk_create(accounts)
        _insert_tax_codes(accounts, account_ids, tax_rate_ids or {})
    except IntegrityError as exc:
        # PostgreSQL adds DETAIL and CONTEXT lines; the first one says it.
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise ImportRefused(
            [
                f"the database refused the import ({reason}); another import may have "
                "taken the same numbers meanwhile. Nothing was imported."
            ]
        ) from exc


def _insert_tax_codes(accounts: list[Row], account_ids: list[int], tax_rate_ids) -> None:
    """The accounts' tax codes, positions from 1 in the file's order (most
    accounts of a large file have none: nothing is built for them)."""
    AccountTaxCode.objects.bulk_create(
        [
            AccountTaxCode(account_id=account_id, tax_rate_id=tax_rate_ids[code], position=i)
            for account_id, row in zip(account_ids, accounts, strict=True)
            if row.tax_codes
            for i, code in enumerate(row.tax_codes, start=1)
        ],
        batch_size=INSERT_BATCH_SIZE,
    )


def _insert_with_bulk_create(accounts: list[Row]) -> list[int]:
    account_objs = [Account(**row.values) for row in accounts]
    Account.objects.bulk_create(account_objs, batch_size=INSERT_BATCH_SIZE)

    subscription_rows: list[Row] = []
    subscription_objs: list[Subscription] = []
    for account, row in zip(account_objs, accounts, strict=True):
        for sub in row.children:
            subscription_rows.append(sub)
            subscription_objs.append(Subscription(account_id=account.pk, **sub.values))
    Subscription.objects.bulk_create(subscription_objs, batch_size=INSERT_BATCH_SIZE)

    charges = [
        (subscription.pk, charge.values)
        for subscription, row in zip(subscription_objs, subscription_rows, strict=True)
        for charge in row.children
    ]
    terms = [values["pricing"] for _, values in charges if values["pricing"] is not None]
    pricing_objs = [Pricing(model=item.model) for item in terms]
    Pricing.objects.bulk_create(pricing_objs, batch_size=INSERT_BATCH_SIZE)
    PricingTier.objects.bulk_create(
        (
            PricingTier(pricing_id=pricing.pk, **tier)
            for pricing, item in zip(pricing_objs, terms, strict=True)
            for tier in _tier_rows(item)
        ),
        batch_size=INSERT_BATCH_SIZE,
    )
    pricings = iter(pricing_objs)
    Charge.objects.bulk_create(
        [
            Charge(
                subscription_id=subscription_id,
                **{
                    **values,
                    "pricing": None if values["pricing"] is None else next(pricings),
                },
            )
            for subscription_id, values in charges
        ],
        batch_size=INSERT_BATCH_SIZE,
    )
    return [account.pk for account in account_objs]


def _insert_with_copy(accounts: list[Row]) -> list[int]:
    """PostgreSQL: reserve the ids from each table's sequence, then stream the
    rows with COPY. bulk_create spends most of its time building model
    instances and compiling parameters (measured: 48 s of a 100,000-account
    import against about 5 s for COPY)."""
    now = timezone.now()
    with connection.cursor() as cursor:
        account_ids = bulk.reserve_ids(cursor, Account, len(accounts))
        subscriptions = [
            (account_id, sub)
            for account_id, acc in zip(account_ids, accounts, strict=True)
            for sub in acc.children
        ]
        subscription_ids = bulk.reserve_ids(cursor, Subscription, len(subscriptions))
        charges = [
            (subscription_id, charge)
            for subscription_id, (_, sub) in zip(subscription_ids, subscriptions, strict=True)
            for charge in sub.children
        ]
        charge_ids = bulk.reserve_ids(cursor, Charge, len(charges))
        terms = [charge.values["pricing"] for _, charge in charges]
        priced = [item for item in terms if item is not None]
        pricing_ids = iter(bulk.reserve_ids(cursor, Pricing, len(priced)))
        charge_pricing_ids = [None if item is None else next(pricing_ids) for item in terms]
        tiers = [
            {**tier, "pricing_id": pricing_id}
            for pricing_id, item in zip(charge_pricing_ids, terms, strict=True)
            if item is not None
            for tier in _tier_rows(item)
        ]

        bulk.copy_rows(
            cursor,
            Account,
            (
                {**row.values, "id": id_, "created_at": now}
                for id_, row in zip(account_ids, accounts, strict=True)
            ),
        )
        bulk.copy_rows(
            cursor,
            Subscription,
            (
                {**sub.values, "id": id_, "account_id": account_id, "created_at": now}
                for id_, (account_id, sub) in zip(subscription_ids, subscriptions, strict=True)
            ),
        )
        bulk.copy_rows(
            cursor,
            Pricing,
            (
                {"id": pricing_id, "model": item.model, "created_at": now}
                for pricing_id, item in zip(charge_pricing_ids, terms, strict=True)
                if item is not None
            ),
        )
        # The tiers' ids are the database's: nothing refers to a tier.
        bulk.copy_rows(cursor, PricingTier, tiers, with_pk=False)
        bulk.copy_rows(
            cursor,
            Charge,
            (
                {
                    **charge.values,
                    "id": id_,
                    "subscription_id": subscription_id,
                    "pricing_id": pricing_id,
                }
                for id_, (subscription_id, charge), pricing_id in zip(
                    charge_ids, charges, charge_pricing_ids, strict=True
                )
            ),
        )
    return account_ids
