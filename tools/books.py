"""Synthetic books of accounts, as import documents (customers.importer's
format): the benchmark's, which the fault tests and the load test's run bill
too, with its usage charges, and the load test's seed."""

import datetime
import random

from customers.models import Subscription
from tools.usage import API_CALLS_PRICING, UsageCharge, pricing_from_document, usage_charges_write

# A run on this date bills every account of the benchmark book: their first
# periods start in January and February 2026.
BENCHMARK_TARGET_DATE = datetime.date(2026, 3, 1)


def benchmark_book(accounts, subscriptions_per_account, seed=7):
    """A benchmark book: mixed periods, one-time fees and credits, ~1% failing.

    Accounts BA00000000... with subscriptions BS000000000..., whose first
    periods start in January and February 2026; the same ``seed`` gives the
    same book.
    """
    rng = random.Random(seed)
    periods = ["month"] * 6 + ["quarter"] * 3 + ["annual"]
    book = []
    for a in range(accounts):
        currency = "USD" if a % 3 else "EUR"
        failing = a % 100 == 99
        subscriptions = []
        for s in range(subscriptions_per_account):
            start = datetime.date(2026, 1, 1) + datetime.timedelta(days=rng.randrange(0, 59))
            charges = [
                {
                    "name": "Plan",
                    "type": "recurring",
                    "amount": f"{rng.randrange(1000, 100000) / 100:.2f}",
                    "period": rng.choice(periods),
                    "start_date": start.isoformat(),
                }
            ]
            if (a + s) % 5 == 0:
                charges.append(
                    {
                        "name": "Setup fee",
                        "type": "one_time",
                        "amount": "49.00",
                        "start_date": start.isoformat(),
                    }
                )
            if (a + s) % 10 == 3:
                charges.append(
                    {
                        "name": "Credit",
                        "type": "one_time",
                        "amount": "-25.00",
                        "start_date": start.isoformat(),
                    }
                )
            if failing and a % 200 == 199 and s == 0:
                charges[0]["currency"] = "GBP" if currency != "GBP" else "USD"
            subscriptions.append(
                {
                    "number": f"BS{a:07d}{s:02d}",
                    "start_date": start.isoformat(),
                    "charges": charges,
                }
            )
        book.append(
            {
                "number": f"BA{a:08d}",
                "name": f"Benchmark customer {a}",
                "bill_to_email": "" if failing and a % 200 != 199 else f"ap{a}@example.com",
                "currency": currency,
                "bill_cycle_day": 1 + a % 31,
                "batch": 1 + a % 50,
                "subscriptions": subscriptions,
            }
        )
    return {"accounts": book}


def load_book(accounts, *, start, batches):
    """The load test's book: accounts LA00000000..., all billed on the 1st, in
    batches 1 to ``batches``; one subscription each from ``start`` with two
    monthly charges (Platform and Seats)."""
    start = start.isoformat()
    return {
        "accounts": [
            {
                "number": f"LA{a:08d}",
                "name": f"Load customer {a}",
                "bill_to_email": f"ap{a}@example.com",
                "currency": "EUR" if a % 3 == 0 else "USD",
                "bill_cycle_day": 1,
                "batch": 1 + a % batches,
                "subscriptions": [
                    {
                        "number": f"LS{a:08d}",
                        "start_date": start,
                        "charges": [
                            {
                                "name": "Platform",
                                "type": "recurring",
                                "amount": f"{100 + (a * 37) % 900}.00",
                                "period": "month",
                                "start_date": start,
                            },
                            {
                                "name": "Seats",
                                "type": "recurring",
                                "amount": f"{10 + (a * 13) % 90}.50",
                                "period": "month",
                                "start_date": start,
                            },
                        ],
                    }
                ],
            }
            for a in range(accounts)
        ]
    }


def benchmark_usage_charges_write():
    """The benchmark book's usage (``bench_billrun --usage-records``): an
    *API calls* charge on every other subscription of the book (in number
    order: the first of each account when it has two), from the
    subscription's start, monthly, rated on the rules' graduated tiers (one
    pricing for all). Written in bulk beside the imported book, as the
    importer does not take usage charges yet. Returns how many."""
    pricing = pricing_from_document(API_CALLS_PRICING)
    subscriptions = list(
        Subscription.objects.filter(number__startswith="BS")
        .order_by("number")
        .values_list("pk", "account__currency", "start_date")
    )
    return usage_charges_write(
        [
            UsageCharge(
                subscription_id=pk,
                currency=currency,
                start_date=start,
                name="API calls",
                unit="calls",
                pricing=pricing,
            )
            for pk, currency, start in subscriptions[::2]
        ]
    )
