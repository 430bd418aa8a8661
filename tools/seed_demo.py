"""The demo's data: varied, deterministic customers with seats and usage,
loaded once into an empty database (``manage.py seed_demo``, ``make run``).

The customers are made from a seeded random generator: the same
``--accounts`` and ``--seed`` give the same data on every machine. They go
through ``customers.importer`` like any import file, so they obey the same
validation; their usage records go through ``invoices.usage`` like any
usage file. ``demo_document`` is the whole demo in the import format of the
second release (INTERFACES.md: quantities, usage charges with their
pricing); today's importer takes the first release's charges only, so the
quantities and the usage charges are taken out of the document and written
after the import, in the same transaction (``tools.usage``).

This lives in ``tools`` and not in ``customers``: the usage records need
``invoices.usage``, which customers may not import.
"""

import csv
import datetime
import io
import random
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection, models, transaction

from billruns import services as runs
from billruns.models import BillRun, RunStatus
from customers.changes import ChangeRequest, ChangesRefused, changes_apply
from customers.importer import ImportRefused, accounts_import
from customers.models import (
    Account,
    Charge,
    ChargeType,
    Status,
    Subscription,
    SubscriptionChange,
    TaxRate,
)
from customers.services import PricingRefused, tax_rate_set
from invoices.models import TenantSettings
from invoices.usage import HEADER, UsageImportRefused, usage_import
from tools.usage import API_CALLS_PRICING

CURRENCIES = ["USD", "USD", "USD", "EUR", "EUR", "GBP", "CAD", "AUD"]
FOREIGN_CURRENCY = {"USD": "EUR", "EUR": "USD", "GBP": "USD", "CAD": "USD", "AUD": "USD"}
# The month-end days come first so that even a small demo shows them.
BILL_CYCLE_DAYS = [1, 29, 30, 31, 15, 1, 1, 28, 10, 20]
PAYMENT_TERMS = [30, 30, 30, 15, 45, 60, 0]
PLANS = [
    # name, period, lowest and highest price in whole currency units, and
    # for a plan sold by the seat, the fewest and most seats (the price is
    # then a seat's)
    ("Starter plan", "month", 29, 99, None),
    ("Pro plan", "month", 100, 900, None),
    ("Team seats", "month", 15, 45, (3, 60)),
    ("Support", "quarter", 300, 3000, None),
    ("Compliance pack", "semi_annual", 600, 4800, None),
    ("Enterprise license", "annual", 5000, 60000, None),
]
# Storage is priced by volume: the month's whole quantity at its tier's price.
STORAGE_PRICING = {
    "model": "volume",
    "tiers": [
        {"up_to": "100", "unit_price": "0.25"},
        {"up_to": "1000", "unit_price": "0.20"},
        {"up_to": None, "unit_price": "0.15"},
    ],
}
API_CALLS = {"name": "API calls", "unit": "calls", "pricing": API_CALLS_PRICING}
STORAGE = {"name": "Storage", "unit": "GB", "pricing": STORAGE_PRICING}
API_CALLS_SHARE = 0.35
STORAGE_SHARE = 0.2
FIRST_WORDS = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Stark",
    "Wayne",
    "Tyrell",
    "Soylent",
    "Cyberdyne",
    "Aperture",
    "Wonka",
    "Gringotts",
    "Oscorp",
    "Vandelay",
]
SECOND_WORDS = [
    "Analytics",
    "Logistics",
    "Foods",
    "Robotics",
    "Media",
    "Health",
    "Energy",
    "Systems",
    "Labs",
    "Partners",
    "Textiles",
    "Software",
]
SUFFIXES = ["Inc.", "Ltd", "GmbH", "LLC", "SA", "Pty Ltd", "Corp"]

# Services start in the first half of 2026, so a bill run today has periods
# to bill and some to catch up on.
FIRST_START = datetime.date(2026, 1, 1)
START_SPREAD_DAYS = 180
# Usage is recorded up to the end of November 2026 (a fixed day, so that the
# demo is the same whenever it is loaded): a run on a later target date
# bills it all.
USAGE_END = datetime.date(2026, 12, 1)
# An API calls charge's customer uses about this many calls a month (the
# three sizes fall in the three tiers of API_CALLS_PRICING), sent every few
# days; a Storage charge's customer sends the GB stored on the 15th of each
# month (one reading in each monthly piece, whatever its bill cycle day).
CALLS_PER_MONTH = [(200, 900), (2000, 9000), (12000, 40000)]
CALLS_EVERY_DAYS = [3, 5, 7, 7, 10, 14]
STORAGE_READING_DAY = 15

# Every FAILING_EVERY accounts, one has no bill-to contact and one bills a
# charge in another currency: both fail in bill runs (BILLING_RULES.md).
FAILING_EVERY = 50
NO_EMAIL_SLOT = 4
FOREIGN_CURRENCY_SLOT = 5
# Taxes (BILLING_RULES.md, Taxes): a European VAT, and a US state and city
# rate stacked on one account. Accounts in euros or pounds pay VAT, in US
# dollars the state and city rates, in the other currencies nothing (as
# does every EXEMPT_EVERY-th account: exempt); setup fees are not taxed.
DEMO_TAX_RATES = [
    ("VAT20", "20", "VAT 20 %"),
    ("US-CA", "7.25", "California sales tax"),
    ("US-SF", "0.8625", "San Francisco district tax"),
]
TAX_CODES = {"EUR": ["VAT20"], "GBP": ["VAT20"], "USD": ["US-CA", "US-SF"]}
EXEMPT_EVERY = 10
UNTAXED_CHARGES = frozenset({"Setup fee"})
# pg_advisory_xact_lock key of the demo's seeding ("demo"): two at once take
# turns, and the second finds the first one's accounts.
PG_SEED_LOCK = 0x64656D6F


class SeedRefused(Exception):
    """The demo could not be loaded; nothing was written. ``lines`` are the
    problems, as the importers report them."""

    def __init__(self, lines: list[str]):
        super().__init__(lines[0] if lines else "seed refused")
        self.lines = lines


@dataclass(frozen=True)
class SeedSummary:
    accounts: int
    subscriptions: int
    charges: int
    usage_records: int

    def __str__(self) -> str:
        return (
            f"imported {self.accounts} accounts, {self.subscriptions} subscriptions, "
            f"{self.charges} charges, {self.usage_records} usage records"
        )


def seed_demo(*, accounts: int, seed: int) -> SeedSummary | None:
    """Load the demo into a database without accounts; None when it has some.

    Transaction: one, all or nothing (the accounts, the seats' quantities,
    the usage charges and their records). Idempotency: the database's
    accounts are the mark, checked in that transaction (on PostgreSQL after
    an advisory lock): a second call, or a call at the same time, loads
    nothing."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [PG_SEED_LOCK])
        if Account.objects.exists():
            return None
        _tax_rates()
        try:
            imported = accounts_import(document=demo_document(accounts=accounts, seed=seed))
            recorded = usage_import(stream=io.BytesIO(_usage_file(seed=seed).encode()))
        except (ImportRefused, UsageImportRefused) as refused:
            raise SeedRefused(refused.lines()) from refused
        except PricingRefused as refused:
            raise SeedRefused([str(refused)]) from refused
    return SeedSummary(
        accounts=imported.accounts,
        subscriptions=imported.subscriptions,
        charges=imported.charges,
        usage_records=recorded.imported,
    )


def demo_document(*, accounts: int, seed: int) -> dict:
    """The demo as one import document (the second release's format):
    ``accounts`` accounts, their numbers generated; subscriptions numbered
    S00000001... in order, so that what is written after the import finds
    them."""
    rng = random.Random(seed)
    document = {"accounts": [_account(rng, i) for i in range(accounts)]}
    subscriptions = (sub for account in document["accounts"] for sub in account["subscriptions"])
    for n, subscription in enumerate(subscriptions, start=1):
        subscription["number"] = f"S{n:08d}"
    _taxes(document)
    return document


def _tax_rates() -> None:
    """The demo's tax rates, those not there yet (an operator's own rate of
    the same code is left as it is)."""
    existing = set(TaxRate.objects.values_list("code", flat=True))
    for code, rate, name in DEMO_TAX_RATES:
        if code not in existing:
            tax_rate_set(code, rate, name=name)


def _taxes(document: dict) -> None:
    """Each account's tax codes by its currency, and setup fees untaxed;
    drawn from no random number, so the rest of the demo stays as it was."""
    for index, account in enumerate(document["accounts"]):
        codes = TAX_CODES.get(account["currency"], [])
        if codes and index % EXEMPT_EVERY != EXEMPT_EVERY - 1:
            account["tax_codes"] = list(codes)
        for subscription in account["subscriptions"]:
            for charge in subscription["charges"]:
                if charge["name"] in UNTAXED_CHARGES:
                    charge["taxable"] = False


def _money(rng: random.Random, low: int, high: int) -> Decimal:
    return Decimal(rng.randint(low * 100, high * 100)) / 100


def _account(rng: random.Random, index: int) -> dict:
    name = f"{rng.choice(FIRST_WORDS)} {rng.choice(SECOND_WORDS)} {rng.choice(SUFFIXES)}"
    slug = "".join(ch for ch in name.lower() if ch.isalnum())[:24]
    currency = rng.choice(CURRENCIES)
    slot = index % FAILING_EVERY
    account = {
        "name": f"{name} #{index + 1}",
        "bill_to_email": "" if slot == NO_EMAIL_SLOT else f"ap@{slug}{index + 1}.example",
        "currency": currency,
        "bill_cycle_day": (
            BILL_CYCLE_DAYS[index]
            if index < 4
            else rng.choice(BILL_CYCLE_DAYS + [rng.randint(1, 31)])
        ),
        "batch": rng.randint(1, 5),
        "payment_term_days": rng.choice(PAYMENT_TERMS),
        "status": "Canceled" if rng.random() < 0.03 else "Active",
        "subscriptions": [
            _subscription(rng, currency) for _ in range(rng.choice([1, 1, 1, 2, 2, 3]))
        ],
    }
    if slot == FOREIGN_CURRENCY_SLOT:
        account["status"] = "Active"
        first = account["subscriptions"][0]
        first["status"] = "Active"
        first["charges"].append(
            {
                "name": "Add-on billed abroad",
                "type": "recurring",
                "amount": "45.00",
                "currency": FOREIGN_CURRENCY[currency],
                "period": "month",
                "start_date": first["start_date"],
            }
        )
    if slot == NO_EMAIL_SLOT:
        account["status"] = "Active"
    return account


def _subscription(rng: random.Random, currency: str) -> dict:
    start = FIRST_START + datetime.timedelta(days=rng.randrange(START_SPREAD_DAYS))
    plan_name, period, low, high, seats = rng.choice(PLANS)
    price = _money(rng, low, high)
    plan = {
        "name": plan_name,
        "type": "recurring",
        "amount": str(price),
        "period": period,
        "start_date": start.isoformat(),
    }
    if seats:
        plan["quantity"] = str(rng.randint(*seats))
    charges = [plan]
    if plan_name in ("Starter plan", "Pro plan") and rng.random() < 0.25:
        charges.append(
            {
                "name": "Extra seats",
                "type": "recurring",
                "amount": str(_money(rng, 10, 30)),
                "quantity": str(rng.randint(2, 15)),
                "period": "month",
                "start_date": start.isoformat(),
            }
        )
    if rng.random() < 0.3:
        charges.append(
            {
                "name": "Setup fee",
                "type": "one_time",
                "amount": str(_money(rng, 50, 500)),
                "start_date": start.isoformat(),
            }
        )
    if rng.random() < 0.2:
        charges.append(
            {
                "name": "Loyalty discount",
                "type": "recurring",
                "amount": str(-(price * Decimal("0.10")).quantize(Decimal("0.01"))),
                "period": period,
                "start_date": start.isoformat(),
            }
        )
    if rng.random() < 0.1:
        # Now and then a credit worth more than the plan: a net credit.
        charges.append(
            {
                "name": "Service credit",
                "type": "one_time",
                "amount": str(-_money(rng, 10, 2000)),
                "currency": currency,
                "start_date": (start + datetime.timedelta(days=rng.randrange(60))).isoformat(),
            }
        )
    if rng.random() < 0.2:
        months = rng.choice([2, 3, 6])
        charges.append(
            {
                "name": "Onboarding assistance",
                "type": "recurring",
                "amount": str(_money(rng, 100, 400)),
                "period": "month",
                "start_date": start.isoformat(),
                "end_date": (start + datetime.timedelta(days=30 * months + 1)).isoformat(),
            }
        )
    for usage, share in ((API_CALLS, API_CALLS_SHARE), (STORAGE, STORAGE_SHARE)):
        if rng.random() < share:
            charges.append(
                {
                    "name": usage["name"],
                    "type": "usage",
                    "unit": usage["unit"],
                    "pricing": usage["pricing"],
                    "period": "month",
                    "start_date": start.isoformat(),
                }
            )
    return {
        "start_date": start.isoformat(),
        "status": "Canceled" if rng.random() < 0.05 else "Active",
        "charges": charges,
    }


# --- What today's importer does not take, written beside it --------------------


# --- The usage records ---------------------------------------------------------


def _usage_file(*, seed: int) -> str:
    """The ``import_usage`` file of the demo's usage: the records of every
    usage charge that accepts usage (its account and subscription Active),
    from its start to USAGE_END. Each charge's records come from a generator
    seeded with its subscription's number, not its own (charge numbers are
    the database's)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    charges = (
        Charge.objects.filter(
            charge_type=ChargeType.USAGE,
            subscription__status=Status.ACTIVE,
            subscription__account__status=Status.ACTIVE,
        )
        .order_by("subscription__number", "name")
        .values_list("number", "subscription__number", "unit", "start_date")
    )
    for charge, subscription, unit, start in charges:
        rng = random.Random(f"{seed}/{subscription}/{unit}")
        records = _calls(rng, start) if unit == API_CALLS["unit"] else _storage(rng, start)
        for day, quantity in records:
            writer.writerow([f"demo-{subscription}-{unit}-{day}", charge, day, quantity])
    return out.getvalue()


def _calls(rng: random.Random, start: datetime.date):
    low, high = rng.choice(CALLS_PER_MONTH)
    per_month = rng.randint(low, high)
    every = rng.choice(CALLS_EVERY_DAYS)
    day = start + datetime.timedelta(days=rng.randrange(every))
    while day < USAGE_END:
        yield day.isoformat(), round(per_month * every / 30 * rng.uniform(0.6, 1.4))
        day += datetime.timedelta(days=every)


def _storage(rng: random.Random, start: datetime.date):
    gigabytes = Decimal(rng.randint(200, 15000)) / 10
    growth = Decimal(rng.randint(0, 80)) / 1000
    month = start.year * 12 + start.month - 1 + (start.day > STORAGE_READING_DAY)
    while True:
        year, month0 = divmod(month, 12)
        day = datetime.date(year, month0 + 1, STORAGE_READING_DAY)
        if day >= USAGE_END:
            return
        yield day.isoformat(), gigabytes.quantize(Decimal("0.1"))
        gigabytes *= 1 + growth
        month += 1


# --- A first run and a few changes (issue 14) ----------------------------------

# The demo's first run: billed and posted by seed_demo, so that the changes
# below reach into what it billed and the newcomer's first run (target date
# today) corrects them with adjustment items. A fixed day, as USAGE_END.
DEMO_FIRST_RUN_DATE = datetime.date(2026, 9, 1)
# The changes' effective date: inside what that run billed in advance (a
# charge is picked only when its billed service runs past this day).
DEMO_CHANGES_DATE = datetime.date(2026, 9, 11)
# How many of each kind of change (fewer when the demo is too small to hold
# them): a price raised on a plan (an upgrade), seats taken off, a charge
# removed, a subscription canceled (its account's only one, with a plan billed
# for a year or half a year ahead: the next run credits it, a credit memo).
DEMO_UPGRADES = 2
DEMO_SEAT_REDUCTIONS = 2
DEMO_REMOVALS = 1
DEMO_CANCELLATIONS = 1
UPGRADE_PLANS = ("Starter plan", "Pro plan")
PREPAID_PERIODS = ("annual", "semi_annual")
# pg_advisory_lock key of this step ("demc"): two seeders take turns.
PG_CHANGES_LOCK = 0x64656D63


@dataclass(frozen=True)
class DemoChanges:
    run: str
    changes: int

    def __str__(self) -> str:
        return (
            f"billed and posted {self.run} (target date {DEMO_FIRST_RUN_DATE.isoformat()}), "
            f"then made {self.changes} subscription changes effective "
            f"{DEMO_CHANGES_DATE.isoformat()}: the next run makes their adjustments"
        )


def seed_demo_changes(*, fresh: bool) -> DemoChanges | None:
    """Bill and post the demo's first run, then make a few changes through
    the change services (``customers.changes.changes_apply``, as ``amend``
    and the subscription page's forms), so that the next run shows
    adjustment items and a credit memo. Turns Advanced AR Settlement on
    (the credit becomes a credit memo, not a negative invoice).

    ``fresh``: seed_demo just loaded the demo. Otherwise only a demo left
    half-way (its first run alone in the database, no change yet) is taken
    up again; a database with other runs or any change is left alone, and a
    database whose accounts are not the demo's is never billed.

    Transactions: the run's own (create, chunks, posting), then
    ``changes_apply``'s one for all the changes (a refusal raises
    SeedRefused and applies none). Idempotency: any change in the database means done (None);
    on PostgreSQL a session advisory lock makes two seeders take turns."""
    lock = connection.vendor == "postgresql"
    if lock:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [PG_CHANGES_LOCK])
    try:
        return _seed_demo_changes(fresh=fresh)
    finally:
        if lock:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [PG_CHANGES_LOCK])


def _seed_demo_changes(*, fresh: bool) -> DemoChanges | None:
    if SubscriptionChange.objects.exists():
        return None
    existing = list(BillRun.objects.order_by("id")[:2])
    if not existing and not fresh:
        return None
    if len(existing) > 1 or (existing and existing[0].target_date != DEMO_FIRST_RUN_DATE):
        return None
    if existing:
        run = existing[0]
    else:
        TenantSettings.current()
        TenantSettings.objects.filter(pk=1).update(advanced_ar_settlement=True)
        run = runs.bill_run_create(target_date=DEMO_FIRST_RUN_DATE, enqueue=False)
    if run.status in (RunStatus.PENDING, RunStatus.PROCESSING):
        run = runs.bill_run_execute(run_id=run.pk)
    if run.status in (RunStatus.COMPLETED, RunStatus.POST_IN_PROGRESS):
        if run.status == RunStatus.COMPLETED:
            run = runs.bill_run_post(run=run, user=None, wait=True)
        else:
            run = runs.bill_run_continue_posting(run_id=run.pk, user=None)
    if run.status != RunStatus.POSTED:
        return None
    requests = demo_change_requests()
    try:
        changes_apply(requests=requests, user=None)
    except ChangesRefused as refused:
        raise SeedRefused(refused.lines()) from refused
    return DemoChanges(run=run.number, changes=len(requests))


def demo_change_requests() -> list[ChangeRequest]:
    """The demo's changes, read from what its first run billed: the first
    charges (in subscription number order) of each kind whose billed service
    runs past DEMO_CHANGES_DATE, on Active subscriptions of Active accounts,
    each subscription changed once."""
    billed = Charge.objects.filter(
        subscription__status=Status.ACTIVE,
        subscription__account__status=Status.ACTIVE,
        start_date__lt=DEMO_CHANGES_DATE,
        charged_through_date__gt=DEMO_CHANGES_DATE,
        end_date__isnull=True,
        charge_type=ChargeType.RECURRING,
    ).order_by("subscription__number", "number")
    used = set()
    requests = []

    def pick(charges, count, make):
        for charge in charges.select_related("subscription"):
            if count == 0:
                return
            if charge.subscription_id in used:
                continue
            used.add(charge.subscription_id)
            requests.append(make(charge, f"changes[{len(requests)}]"))
            count -= 1

    # The cancellation first: its account's only subscription, with no usage
    # charge (the demo's usage runs past the cancel date, which the rules
    # refuse).
    sole = (
        Subscription.objects.filter(account__status=Status.ACTIVE, status=Status.ACTIVE)
        .values("account_id")
        .annotate(n=models.Count("id"))
        .filter(n=1)
        .values("account_id")
    )
    metered = Charge.objects.filter(charge_type=ChargeType.USAGE).values("subscription_id")
    pick(
        billed.filter(period__in=PREPAID_PERIODS, subscription__account_id__in=sole).exclude(
            subscription_id__in=metered
        ),
        DEMO_CANCELLATIONS,
        lambda charge, path: ChangeRequest(
            path=path,
            change_type="cancel_subscription",
            subscription=charge.subscription.number,
            effective_date=DEMO_CHANGES_DATE,
        ),
    )
    pick(
        billed.filter(name__in=UPGRADE_PLANS),
        DEMO_UPGRADES,
        lambda charge, path: ChangeRequest(
            path=path,
            change_type="change_price",
            charge=charge.number,
            effective_date=DEMO_CHANGES_DATE,
            amount=(charge.amount * Decimal("1.5")).quantize(Decimal("0.01")),
        ),
    )
    pick(
        billed.filter(name="Team seats", quantity__gte=4),
        DEMO_SEAT_REDUCTIONS,
        lambda charge, path: ChangeRequest(
            path=path,
            change_type="change_price",
            charge=charge.number,
            effective_date=DEMO_CHANGES_DATE,
            quantity=charge.quantity - max(1, int(charge.quantity) // 4),
        ),
    )
    pick(
        billed.filter(name="Extra seats"),
        DEMO_REMOVALS,
        lambda charge, path: ChangeRequest(
            path=path,
            change_type="remove_charge",
            charge=charge.number,
            effective_date=DEMO_CHANGES_DATE,
        ),
    )
    return requests
