"""Writing a validated import: numbers for the records that have none, then
every row in bulk (COPY on PostgreSQL, ``bulk_create`` elsewhere), in the
caller's transaction: accounts, subscriptions, the pricings of the usage
charges with their tiers, the charges, then the accounts' tax codes.

A usage charge's pricing is written as ``customers.services.pricing_create``
writes one (a Pricing, then its tiers, each with the previous one's bound as
its lower bound: ``tier_bounds``), for all charges at once; the file's
pricings were judged by ``pricing_problems`` as that service judges them."""

import gc
import pickle
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

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
    with refused_by_database():
        if connection.vendor == "postgresql":
            account_ids = _insert_with_copy(accounts)
        else:
            account_ids = _insert_with_bulk_create(accounts)
        _insert_tax_codes(accounts, account_ids, tax_rate_ids or {})


@contextmanager
def refused_by_database():
    """A row the database refuses (a number another writer took meanwhile)
    raises ImportRefused; the caller's transaction then writes nothing."""
    try:
        yield
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


# --- a file's rows, a batch at a time ----------------------------------------------

# Accounts per batch written (and per spooled batch): each batch is a few
# COPY statements; their rows are all the memory the writing holds.
WRITE_BATCH_ACCOUNTS = 2000


def free_numbers(model, *, prefix: str, digits: int, taken) -> Iterator[str]:
    """The numbers ``<prefix><digits>`` from the lowest, used neither in the
    file (``taken``: lowered numbers, a container) nor in the database,
    ignoring case, one at a time."""
    candidate = 1
    while True:
        wanted: list[str] = []
        while len(wanted) < NUMBER_PROBE_SIZE:
            number = f"{prefix}{candidate:0{digits}d}"
            candidate += 1
            if number.lower() not in taken:
                wanted.append(number)
        in_use = set(
            model.objects.annotate(lowered=Lower("number"))
            .filter(lowered__gte=wanted[0].lower(), lowered__lte=wanted[-1].lower())
            .order_by()
            .values_list("lowered", flat=True)
        )
        yield from (number for number in wanted if number.lower() not in in_use)


class NumbersToGive:
    """The numbers of a file's records that have none, in the file's order,
    as ``assign_numbers`` and ``assign_charge_numbers`` give them for the
    whole file at once: the lowest free account and subscription numbers,
    and charge numbers from the charge counter, each skipping the numbers
    the file gives (``taken_*``: lowered, containers)."""

    def __init__(self, *, taken_accounts, taken_subscriptions, taken_charges):
        prefix, digits = ACCOUNT_NUMBER_FORMAT
        self._accounts = free_numbers(Account, prefix=prefix, digits=digits, taken=taken_accounts)
        prefix, digits = SUBSCRIPTION_NUMBER_FORMAT
        self._subscriptions = free_numbers(
            Subscription, prefix=prefix, digits=digits, taken=taken_subscriptions
        )
        self._taken_charges = taken_charges

    def account(self) -> str:
        return next(self._accounts)

    def subscription(self) -> str:
        return next(self._subscriptions)

    def charges(self, count: int) -> list[str]:
        """``count`` charge numbers, in counter order."""
        found: list[str] = []
        while len(found) < count:
            found.extend(
                number
                for number in charge_numbers_allocate(count - len(found))
                if number.lower() not in self._taken_charges
            )
        return found

    def give(self, accounts: list[Row], subscriptions: list[Row], charges: list[Row]) -> None:
        """Number the rows that have no number."""
        for row in accounts:
            if row.values["number"] is None:
                row.values["number"] = self.account()
        for row in subscriptions:
            if row.values["number"] is None:
                row.values["number"] = self.subscription()
        missing = [row for row in charges if row.values["number"] is None]
        for row, number in zip(missing, self.charges(len(missing)), strict=True):
            row.values["number"] = number


def _collect_young_garbage() -> None:
    """The import pauses the cyclic garbage collector (services), and the
    ORM's queries and bulk_create leave reference cycles: collect what the
    last batch left (the young generation only: what is older is the file's
    numbers, which hold no cycle)."""
    gc.collect(0)


def row_spool() -> "RowSpool":
    """The spool of this database: COPY's text on PostgreSQL."""
    return CopySpool() if connection.vendor == "postgresql" else RowSpool()


class RowSpool:
    """A file's validated rows, kept on disk between the pass that validates
    them and the one that writes them: pickled a batch of accounts at a time
    (each as plain tuples), in a temporary file; written by insert_rows."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self._batch: list[tuple] = []

    def close(self) -> None:
        self._file.close()

    def write(self, to_give: NumbersToGive, tax_rate_ids: dict[str, int], numbers: list | None):
        """Number and insert the rows, a batch at a time, in the caller's
        transaction; the accounts' numbers are appended to ``numbers``."""
        for accounts in self.batches():
            _collect_young_garbage()
            subscriptions = [sub for acc in accounts for sub in acc.children]
            charges = [charge for sub in subscriptions for charge in sub.children]
            to_give.give(accounts, subscriptions, charges)
            insert_rows(accounts, tax_rate_ids)
            if numbers is not None:
                numbers.extend(row.values["number"] for row in accounts)

    def add(self, row: Row) -> None:
        self._batch.append(
            (
                row.values,
                row.tax_codes,
                [
                    (sub.values, [charge.values for charge in sub.children if charge is not None])
                    for sub in row.children
                    if sub is not None
                ],
            )
        )
        if len(self._batch) >= WRITE_BATCH_ACCOUNTS:
            self._flush()

    def _flush(self) -> None:
        if self._batch:
            pickle.dump(self._batch, self._file, protocol=pickle.HIGHEST_PROTOCOL)
            self._batch = []

    def _stored(self) -> Iterator[list[tuple]]:
        self._flush()
        self._file.seek(0)
        while True:
            try:
                # Written by add() in this process, into its own temporary file.
                yield pickle.load(self._file)  # noqa: S301
            except EOFError:
                return

    def batches(self) -> Iterator[list[Row]]:
        """The rows again, a batch of accounts at a time, in the file's order."""
        for batch in self._stored():
            yield [
                Row("", values, [_unpacked(sub, charges) for sub, charges in subs], tax_codes)
                for values, tax_codes, subs in batch
            ]


def _unpacked(sub: dict, charges: list[dict]) -> Row:
    return Row("", sub, [Row("", charge) for charge in charges])


ACCOUNT_FIRST = ("id", "number", "created_at")
SUBSCRIPTION_FIRST = ("id", "account_id", "number", "created_at")
CHARGE_FIRST = ("id", "subscription_id", "pricing_id", "number")
TIER_FIRST = ("pricing_id",)


class CopySpool(RowSpool):
    """PostgreSQL: each row is spooled as the text COPY takes, but for what
    is known only when it is written: its id, its parent's id, its number
    when the file gives none (and a usage charge's pricing id). Formatting
    the rows while they are validated leaves the writing pass little to do
    but COPY (measured: pickling the rows' values cost a fifth of the
    import's Python time)."""

    def __init__(self) -> None:
        super().__init__()
        self._now = timezone.now()
        self._accounts = bulk.copy_columns(Account, ACCOUNT_FIRST)
        self._subscriptions = bulk.copy_columns(Subscription, SUBSCRIPTION_FIRST)
        self._charges = bulk.copy_columns(Charge, CHARGE_FIRST)
        self._tiers = bulk.copy_columns(PricingTier, TIER_FIRST, with_pk=False)

    def add(self, row: Row) -> None:
        text = bulk.row_text
        account_rest = self._accounts[1]
        subscription_rest = self._subscriptions[1]
        charge_rest = self._charges[1]
        tier_rest = self._tiers[1]
        subscriptions = []
        for sub in row.children:
            if sub is None:
                continue
            charges = []
            for charge in sub.children:
                if charge is None:
                    continue
                values = charge.values
                terms = values["pricing"]
                pricing = (
                    None
                    if terms is None
                    else (terms.model, [text(tier, tier_rest) for tier in _tier_rows(terms)])
                )
                charges.append((values["number"], text(values, charge_rest), pricing))
            values = sub.values
            subscriptions.append((values["number"], text(values, subscription_rest), charges))
        values = row.values
        self._batch.append(
            (values["number"], text(values, account_rest), row.tax_codes, subscriptions)
        )
        if len(self._batch) >= WRITE_BATCH_ACCOUNTS:
            self._flush()

    def write(self, to_give: NumbersToGive, tax_rate_ids: dict[str, int], numbers: list | None):
        with refused_by_database(), connection.cursor() as cursor:
            for batch in self._stored():
                _collect_young_garbage()
                self._write_batch(cursor, batch, to_give, tax_rate_ids, numbers)

    def _write_batch(self, cursor, batch, to_give, tax_rate_ids, numbers) -> None:
        field = bulk.field_text
        now = field(self._now)  # every row's created_at
        subscriptions = [(account, sub) for account, (*_, subs) in enumerate(batch) for sub in subs]
        charges = [
            (sub, charge)
            for sub, (_, (*_, sub_charges)) in enumerate(subscriptions)
            for charge in sub_charges
        ]
        account_ids = bulk.reserve_ids(cursor, Account, len(batch))
        subscription_ids = bulk.reserve_ids(cursor, Subscription, len(subscriptions))
        charge_ids = bulk.reserve_ids(cursor, Charge, len(charges))
        priced = [charge[2] for _, charge in charges if charge[2] is not None]
        pricing_ids = iter(bulk.reserve_ids(cursor, Pricing, len(priced)))
        charge_pricing_ids = [
            None if charge[2] is None else next(pricing_ids) for _, charge in charges
        ]
        given = iter(to_give.charges(sum(1 for _, charge in charges if charge[0] is None)))

        account_numbers = [to_give.account() if number is None else number for number, *_ in batch]
        bulk.copy_lines(
            cursor,
            Account,
            self._accounts[0],
            (
                f"{id_}\t{field(number)}\t{now}\t{rest}"
                for id_, number, (_, rest, *_) in zip(
                    account_ids, account_numbers, batch, strict=True
                )
            ),
        )
        # Numbers first: a number's look-up cannot run while a COPY is open.
        subscription_numbers = [
            to_give.subscription() if number is None else number
            for _, (number, *_) in subscriptions
        ]
        bulk.copy_lines(
            cursor,
            Subscription,
            self._subscriptions[0],
            (
                f"{id_}\t{account_ids[account]}\t{field(number)}\t{now}\t{rest}"
                for id_, number, (account, (_, rest, _)) in zip(
                    subscription_ids, subscription_numbers, subscriptions, strict=True
                )
            ),
        )
        bulk.copy_lines(
            cursor,
            Pricing,
            ("id", "model", "created_at"),
            (
                f"{pricing_id}\t{field(charge[2][0])}\t{now}"
                for pricing_id, (_, charge) in zip(charge_pricing_ids, charges, strict=True)
                if charge[2] is not None
            ),
        )
        # The tiers' ids are the database's: nothing refers to a tier.
        bulk.copy_lines(
            cursor,
            PricingTier,
            self._tiers[0],
            (
                f"{pricing_id}\t{tier}"
                for pricing_id, (_, charge) in zip(charge_pricing_ids, charges, strict=True)
                if charge[2] is not None
                for tier in charge[2][1]
            ),
        )
        bulk.copy_lines(
            cursor,
            Charge,
            self._charges[0],
            (
                f"{id_}\t{subscription_ids[sub]}\t{field(pricing_id)}\t"
                f"{field(next(given) if number is None else number)}\t{rest}"
                for id_, pricing_id, (sub, (number, rest, _)) in zip(
                    charge_ids, charge_pricing_ids, charges, strict=True
                )
            ),
        )
        AccountTaxCode.objects.bulk_create(
            [
                AccountTaxCode(account_id=account_id, tax_rate_id=tax_rate_ids[code], position=i)
                for account_id, (_, _, codes, _) in zip(account_ids, batch, strict=True)
                if codes
                for i, code in enumerate(codes, start=1)
            ],
            batch_size=INSERT_BATCH_SIZE,
        )
        if numbers is not None:
            numbers.extend(account_numbers)
