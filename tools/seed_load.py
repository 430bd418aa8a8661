"""The load test's database: accounts, bill runs and invoices on PostgreSQL.

Makes A accounts (one subscription with two monthly charges each,
tools.books.load_book) through the importer, then R bill runs and I invoices
of two items each, written with COPY (core.bulk). The history reads like
a real one:

- document k belongs to account ``k % A`` and bills that account's
  ``k // A``-th month, so every account holds a run of consecutive months
  that ends with February 2026; each item bills one charge for one month, so
  no (charge, service start) is billed twice (the partial unique index on
  items) and each charge's charged-through date is the end of its last month;
- run r holds documents ``[r*I/R, (r+1)*I/R)``, a slice of one month's bill
  (about A*R/I runs a month); the newest tenth of the runs are Completed with
  Draft invoices, the others Posted with posted invoices; every run carries
  its counters, totals and the events of its status changes.

Seeded accounts are in batches 1 to 49; batch 50 (LOAD_RUN_BATCH) is left
for the load test's own bill run. Refuses a database that holds accounts,
documents or runs unless ``force``, which first empties the billing tables.
"""

import bisect
import datetime
import json
import time
from collections import defaultdict
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import connection, transaction

from billruns.models import BillRun, BillRunEvent, RunStatus
from core import bulk
from customers.importer import accounts_import
from customers.models import Account, Charge
from invoices import sequences
from invoices.models import Document, DocumentItem, DocumentStatus, DocumentType
from tools.books import load_book

# The month the seeded history ends with (its first day).
LAST_MONTH = datetime.date(2026, 2, 1)
# Batches of the seeded accounts; the load test bills LOAD_RUN_BATCH alone.
SEED_BATCHES = 49
LOAD_RUN_BATCH = 50
PAYMENT_TERM = datetime.timedelta(days=30)
# Documents built and COPied per round: bounds the memory of a large seed
# (a million documents with their items as dicts would take gigabytes).
DOCUMENTS_PER_ROUND = 50_000
# The newest runs that are Completed (not yet posted), as a fraction.
COMPLETED_FRACTION = Decimal("0.1")


class SeedRefused(Exception):
    """Not a database or not sizes that the seed can fill."""


def month_start(months_after: int, base: datetime.date) -> datetime.date:
    month = base.month - 1 + months_after
    return datetime.date(base.year + month // 12, month % 12 + 1, 1)


def seed_load(*, runs, invoices, accounts, force, progress):
    """Seed the configured database; ``progress`` is called with a line,
    stamped with the seconds since the start, after each step."""
    if connection.vendor != "postgresql":
        raise SeedRefused("seed_load writes with COPY: DATABASE_URL must be PostgreSQL.")
    if runs < 1 or accounts < 1 or invoices < runs:
        raise SeedRefused("Need --runs >= 1, --accounts >= 1 and --invoices >= --runs.")
    if Account.objects.exists() or Document.objects.exists() or BillRun.objects.exists():
        if not force:
            raise SeedRefused(
                "This database already holds billing data. Use an empty database, "
                "or --force to empty the billing tables first."
            )
        _wipe()
    months = -(-invoices // accounts)  # ceiling: the longest account history
    base = month_start(-(months - 1), LAST_MONTH)
    started = time.perf_counter()

    def stamped(message):
        progress(f"[{time.perf_counter() - started:7.1f} s] {message}")

    accounts_import(document=load_book(accounts, start=base, batches=SEED_BATCHES))
    stamped(f"imported {accounts} accounts")
    book = _accounts()
    user = _seed_user()
    # Document k belongs to run r when bounds[r] <= k < bounds[r + 1].
    bounds = [r * invoices // runs for r in range(runs + 1)]
    with transaction.atomic():
        run_rows = _write_runs(book, bounds, user, base)
        _write_events(run_rows, user)
    # One transaction per round: a single one would queue a deferred
    # foreign key check per row (millions) until it commits.
    for round_start in range(0, invoices, DOCUMENTS_PER_ROUND):
        round_end = min(invoices, round_start + DOCUMENTS_PER_ROUND)
        with transaction.atomic():
            _write_documents(book, bounds, run_rows, round_start, round_end, base)
        stamped(f"wrote {round_end} of {invoices} invoices")
    _set_charged_through(book, invoices, base)
    stamped(f"seeded {runs} runs and {invoices} invoices")
    _analyze()
    stamped("vacuumed and analyzed")


# --- steps ---


def _wipe():
    tables = [model._meta.db_table for model in (Account, Document, DocumentItem, BillRun, Charge)]
    with connection.cursor() as cursor:
        # CASCADE also empties the tables that point at these (subscriptions,
        # payments, chunks, events, deliveries...): DELETE of a million
        # documents row by row would take minutes.
        cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")


def _accounts():
    """Per account, in number order: (id, currency, [(charge id, subscription id,
    name, amount), ...])."""
    by_account = {}
    rows = (
        Charge.objects.order_by("subscription__account__number", "name")
        .values_list(
            "subscription__account_id",
            "subscription__account__currency",
            "id",
            "subscription_id",
            "name",
            "amount",
        )
        .iterator(chunk_size=10_000)
    )
    for account_id, currency, charge_id, subscription_id, name, amount in rows:
        entry = by_account.setdefault(account_id, (account_id, currency, []))
        entry[2].append((charge_id, subscription_id, name, amount))
    return list(by_account.values())


def _seed_user():
    user, _ = get_user_model().objects.get_or_create(
        username="seed-clerk", defaults={"first_name": "Seed", "last_name": "Clerk"}
    )
    return user


def _write_runs(book, bounds, user, base):
    """The runs with their counters and totals, Posted but for the newest tenth."""
    runs = len(bounds) - 1
    accounts = len(book)
    completed_from = runs - int(runs * COMPLETED_FRACTION)
    amounts = [(currency, sum(c[3] for c in charges)) for _, currency, charges in book]
    run_rows = []
    with connection.cursor() as cursor:
        run_ids = bulk.reserve_ids(cursor, BillRun, runs)
    for r, (run_id, number) in enumerate(zip(run_ids, sequences.allocate("BR", runs), strict=True)):
        first, last = bounds[r], bounds[r + 1]
        totals = defaultdict(Decimal)
        for k in range(first, last):
            currency, amount = amounts[k % accounts]
            totals[currency] += amount
        month = month_start(first // accounts, base)
        created = datetime.datetime.combine(
            month, datetime.time(6, 0), tzinfo=datetime.UTC
        ) + datetime.timedelta(minutes=r % 60)
        posted = r < completed_from
        run_rows.append(
            {
                "id": run_id,
                "number": number,
                "status": RunStatus.POSTED if posted else RunStatus.COMPLETED,
                "target_date": month,
                "invoice_date": month,
                # COPY takes the JSON columns as text.
                "batches": "[]",
                "bill_cycle_days": "[1]",
                "created_by_id": user.id,
                "accounts_selected": last - first,
                "accounts_processed": last - first,
                "invoices_count": last - first,
                "totals": json.dumps(
                    {currency: f"{total:.2f}" for currency, total in sorted(totals.items())}
                ),
                "created_at": created,
                "started_at": created + datetime.timedelta(seconds=5),
                "completed_at": created + datetime.timedelta(seconds=65),
                "posted_at": created + datetime.timedelta(hours=3) if posted else None,
                "posted_by_id": user.id if posted else None,
                "announced_at": created + datetime.timedelta(seconds=66),
            }
        )
    with connection.cursor() as cursor:
        bulk.copy_rows(cursor, BillRun, run_rows)
    return run_rows


def _write_documents(book, bounds, run_rows, round_start, round_end, base):
    """Documents ``[round_start, round_end)`` with two items each."""
    accounts = len(book)
    numbers = sequences.allocate("INV", round_end - round_start)
    run_index = bisect.bisect_right(bounds, round_start) - 1
    documents, items = [], []
    for k, number in zip(range(round_start, round_end), numbers, strict=True):
        while bounds[run_index + 1] <= k:
            run_index += 1
        run = run_rows[run_index]
        account_id, currency, charges = book[k % accounts]
        months_billed = k // accounts
        period_start = month_start(months_billed, base)
        period_end = month_start(months_billed + 1, base) - datetime.timedelta(days=1)
        amount = sum(charge[3] for charge in charges)
        posted = run["status"] == RunStatus.POSTED
        document = {
            "document_type": DocumentType.INVOICE,
            "number": number,
            "account_id": account_id,
            "bill_run_id": run["id"],
            "status": DocumentStatus.POSTED if posted else DocumentStatus.DRAFT,
            "currency": currency,
            "amount": amount,
            "balance": amount,
            "invoice_date": run["invoice_date"],
            "due_date": run["invoice_date"] + PAYMENT_TERM,
            "created_at": run["completed_at"],
            "posted_at": run["posted_at"],
            "posted_by_id": run["posted_by_id"],
        }
        documents.append(document)
        previous = period_start if months_billed else None
        for charge_id, subscription_id, name, charge_amount in charges:
            items.append(
                {
                    "document": document,
                    "charge_id": charge_id,
                    "subscription_id": subscription_id,
                    "charge_name": name,
                    "service_start": period_start,
                    "service_end": period_end,
                    "amount": charge_amount,
                    "previous_charged_through": previous,
                }
            )
    with connection.cursor() as cursor:
        for document, document_id in zip(
            documents, bulk.reserve_ids(cursor, Document, len(documents)), strict=True
        ):
            document["id"] = document_id
        bulk.copy_rows(cursor, Document, documents)
        for item in items:
            item["document_id"] = item.pop("document")["id"]
        bulk.copy_rows(cursor, DocumentItem, items, with_pk=False)


def _write_events(run_rows, user):
    steps = [
        ("", RunStatus.PENDING, "created_at"),
        (RunStatus.PENDING, RunStatus.PROCESSING, "started_at"),
        (RunStatus.PROCESSING, RunStatus.COMPLETED, "completed_at"),
    ]
    posting = [
        (RunStatus.COMPLETED, RunStatus.POST_IN_PROGRESS, "posted_at"),
        (RunStatus.POST_IN_PROGRESS, RunStatus.POSTED, "posted_at"),
    ]
    events = [
        {
            "bill_run_id": run["id"],
            "from_status": from_status,
            "to_status": to_status,
            "user_id": user.id,
            "at": run[at],
        }
        for run in run_rows
        for from_status, to_status, at in steps
        + (posting if run["status"] == RunStatus.POSTED else [])
    ]
    with connection.cursor() as cursor:
        bulk.copy_rows(cursor, BillRunEvent, events, with_pk=False)


def _set_charged_through(book, invoices, base):
    """Each charge is charged through the end of its account's last billed month."""
    accounts = len(book)
    through = {}
    for a, (_, _, charges) in enumerate(book):
        months_billed = invoices // accounts + (1 if a < invoices % accounts else 0)
        if months_billed:
            day = month_start(months_billed, base)
            through.update((charge[0], day) for charge in charges)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Charge._meta.db_table} SET charged_through_date = v.through "  # noqa: S608
            "FROM unnest(%s::bigint[], %s::date[]) AS v(charge_id, through) "
            "WHERE id = v.charge_id",
            [list(through), list(through.values())],
        )


def _analyze():
    """Planner statistics and the visibility map, as a live database has them;
    without them the first queries of the load test are planned blind."""
    with connection.cursor() as cursor:
        for model in (Account, Charge, BillRun, BillRunEvent, Document, DocumentItem):
            cursor.execute(f"VACUUM (ANALYZE) {model._meta.db_table}")
