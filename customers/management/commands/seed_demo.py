"""Fill an empty database with demo customers, through the importer.

The data goes through customers.importer like any import file, so it obeys
the same validation. It is made from a seeded random generator: the same
``--accounts`` and ``--seed`` give the same customers on every machine.
"""

import datetime
import random
import sys
from decimal import Decimal

from django.core.management.base import BaseCommand

from customers.importer import ImportRefused, accounts_import
from customers.models import Account

CURRENCIES = ["USD", "USD", "USD", "EUR", "EUR", "GBP", "CAD", "AUD"]
FOREIGN_CURRENCY = {"USD": "EUR", "EUR": "USD", "GBP": "USD", "CAD": "USD", "AUD": "USD"}
# The month-end days come first so that even a small demo shows them.
BILL_CYCLE_DAYS = [1, 29, 30, 31, 15, 1, 1, 28, 10, 20]
PAYMENT_TERMS = [30, 30, 30, 15, 45, 60, 0]
PLANS = [
    # name, period, lowest and highest price in whole currency units
    ("Starter plan", "month", 29, 99),
    ("Pro plan", "month", 100, 900),
    ("Team seats", "month", 50, 2500),
    ("Support", "quarter", 300, 3000),
    ("Compliance pack", "semi_annual", 600, 4800),
    ("Enterprise license", "annual", 5000, 60000),
]
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

# Every FAILING_EVERY accounts, one has no bill-to contact and one bills a
# charge in another currency: both fail in bill runs (BILLING_RULES.md).
FAILING_EVERY = 50
NO_EMAIL_SLOT = 4
FOREIGN_CURRENCY_SLOT = 5


def demo_document(*, accounts: int, seed: int) -> dict:
    """The import document of the demo: ``accounts`` accounts, numbers generated."""
    rng = random.Random(seed)
    return {"accounts": [_account(rng, i) for i in range(accounts)]}


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
    plan_name, period, low, high = rng.choice(PLANS)
    price = _money(rng, low, high)
    charges = [
        {
            "name": plan_name,
            "type": "recurring",
            "amount": str(price),
            "period": period,
            "start_date": start.isoformat(),
        }
    ]
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
    return {
        "start_date": start.isoformat(),
        "status": "Canceled" if rng.random() < 0.05 else "Active",
        "charges": charges,
    }


class Command(BaseCommand):
    help = "Load demo customers into an empty database (does nothing if accounts exist)."

    def add_arguments(self, parser):
        parser.add_argument("--accounts", type=int, default=200, help="how many (default 200)")
        parser.add_argument("--seed", type=int, default=2026, help="random seed (default 2026)")

    def handle(self, *args, accounts, seed, **options):
        if accounts < 1:
            self.stderr.write("--accounts must be at least 1")
            sys.exit(2)
        if Account.objects.exists():
            self.stdout.write("demo data already present")
            return
        try:
            summary = accounts_import(document=demo_document(accounts=accounts, seed=seed))
        except ImportRefused as refused:
            for line in refused.lines():
                self.stderr.write(line)
            sys.exit(1)
        self.stdout.write(str(summary))
