"""A bill run measured end to end, through the real code.

Builds a benchmark book (tools.books) in the configured database (refusing a
database that already holds accounts unless ``force``, which first deletes
all billing data), then times: loading the book through the importer; one
bill run over all of it executed by a real ``qcluster`` with W workers;
posting it; the bill run list and the run's page (with 1,000 runs in the
database); a worker's peak memory; and the floors (tools.bench.floors):
writing the same document, item and tax rows into scratch tables with the
same indexes and foreign keys (``COPY`` on PostgreSQL, ``executemany`` on
SQLite), and one ``UPDATE`` of the rows the posting posts.

With ``usage_records`` N, the book also has an *API calls* usage charge on
every other subscription (tools.books), and the run is measured twice over
that same book, side by side: first with no usage record at all (its usage
pieces are rated at quantity 0), then canceled and deleted (its pieces are
due again), N records are written to a CSV file and imported by
``import_usage`` (timed: records/s), and the same run is made again, now
summing them. The second run is the one measured further (floor, posting,
pages); the figures compare its generation with the first's. The records
go round the usage charges that the run bills (not those of the accounts
that fail by design), spread over the days of the pieces it bills, so the
run must bill all of them: the benchmark checks that it did.

With ``changes`` F (issue 14), a first run on the target date is generated
and posted; the next month's run is then measured twice over the same book,
side by side: first with no change (then canceled and deleted: its pieces
are due again), then after a fraction F of the subscriptions changed through
the change services (``changes_apply``, the ``amend`` command's): on every
``1/F``-th subscription in number order, its first billed recurring charge
gets, alternately, a price change (the amount +10 %) or a removal, effective
inside the period the first run billed, so the second run reverses and
rebills what the first one billed of it (adjustments). The run with the
changes is the one measured further.
"""

import contextlib
import datetime
import io
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.test import Client
from django.utils import timezone

from billruns import services
from billruns.models import BillRun, RunStatus
from core.fields import ExactSum
from customers.changes.parsing import ChangeRequest
from customers.changes.services import changes_apply
from customers.models import (
    Account,
    Charge,
    ChargePrice,
    ChargeType,
    Pricing,
    Subscription,
    SubscriptionChange,
    UsageRecord,
)
from invoices import sequences
from invoices.models import CreditApplication, Document, DocumentItem, Payment
from tools.bench import floors
from tools.bench import pages as bench_pages
from tools.bench import review as review_bench
from tools.bench.accounts import import_book
from tools.bench.measure import percentile, process_group_peak_rss_mb
from tools.books import BENCHMARK_TARGET_DATE, benchmark_book, benchmark_usage_charges_write
from tools.usage import benchmark_usage_csv, billed_span, quantity_total

PAGE_SAMPLES = 40
RUNS_FOR_PAGES = 1000
# With --changes: the second run's target date, and the changes' effective
# date (inside the period the first run billed, or the day after a later start).
CHANGES_TARGET_DATE = datetime.date(2026, 4, 1)
CHANGES_EFFECTIVE_DATE = datetime.date(2026, 2, 15)
# Changes per changes_apply call (one transaction each).
CHANGES_BATCH = 500


class BenchmarkFailed(Exception):
    """The benchmark could not start, or its run did not complete."""


def bench_billrun(
    *,
    accounts,
    subscriptions_per_account,
    workers,
    force,
    timeout,
    progress,
    usage_records=None,
    changes=None,
):
    """Run the benchmark; returns its figures (the keys of ``--json``).
    ``progress`` is called with a line after each step. ``usage_records``:
    see the module (None: a book without usage)."""
    if accounts < 1 or subscriptions_per_account < 1:
        raise BenchmarkFailed("--accounts and --subscriptions-per-account must be at least 1.")
    if usage_records is not None and usage_records < 1:
        raise BenchmarkFailed("--usage-records must be at least 1.")
    if changes is not None:
        if not 0 < changes <= 1:
            raise BenchmarkFailed("--changes must be a fraction above 0 and at most 1.")
        if usage_records is not None:
            raise BenchmarkFailed("--changes and --usage-records are measured apart.")
    if Account.objects.exists():
        if not force:
            raise BenchmarkFailed(
                "This database already holds accounts; the benchmark builds its own book. "
                "Use an empty database, or --force to delete all billing data first."
            )
        _wipe()
    results = {
        "accounts": accounts,
        "subscriptions_per_account": subscriptions_per_account,
        "database": connection.vendor,
        "workers": workers,
    }
    user = _bench_user()

    # import_accounts of the book's file in a child process, and its COPY floor.
    results.update(
        import_book(benchmark_book(accounts, subscriptions_per_account), progress=progress)
    )
    _analyze()
    progress(f"loaded the book in {results['load_s']} s")
    if usage_records is not None:
        results.update(_usage_book())
        progress(f"added {results['usage_charges']} usage charges")
        results.update(
            _without_usage_records(user, workers=workers, timeout=timeout, progress=progress)
        )
        results.update(_usage_import(usage_records, progress=progress))
    target_date = BENCHMARK_TARGET_DATE
    if changes is not None:
        target_date = CHANGES_TARGET_DATE
        results.update(
            _first_run_and_unchanged(user, workers=workers, timeout=timeout, progress=progress)
        )
        results.update(_changes(changes, user, progress=progress))

    run, generate_s, peak_rss = _generate(
        user, workers=workers, timeout=timeout, target_date=target_date
    )
    results.update(
        {
            "run": run.number,
            "status": run.status,
            "invoices": run.invoices_count,
            "credit_memos": run.credit_memos_count,
            "items": DocumentItem.objects.filter(document__bill_run=run).count(),
            "accounts_failed": run.accounts_failed,
            "generate_s": round(generate_s, 3),
            "target_date": target_date.isoformat(),
            "accounts_per_s": round(accounts / generate_s, 1),
            "worker_peak_rss_mb": round(peak_rss, 1),
        }
    )
    progress(f"generated {run.number} in {generate_s:.2f} s")
    if usage_records is not None:
        _check_usage_billed(run, usage_records)
        results["generate_usage_vs_without"] = round(
            generate_s / results["generate_without_usage_s"], 2
        )

    if changes is not None:
        results["generate_changes_vs_without"] = round(
            generate_s / results["generate_without_changes_s"], 2
        )

    copy_s = floors.write_floor(run)  # COPY (PostgreSQL) or executemany (SQLite)
    results["copy_baseline_s"] = round(copy_s, 3)
    results["generate_vs_copy"] = round(generate_s / copy_s, 2) if copy_s else None
    update_s = floors.post_floor(run, user)

    started = time.perf_counter()
    run = services.bill_run_post(run=run, user=user, wait=True)
    post_s = time.perf_counter() - started
    posted = Document.objects.filter(bill_run=run, status="Posted").count()
    results["post_s"] = round(post_s, 3)
    results["invoices_posted_per_s"] = round(posted / post_s, 1) if post_s else None
    results["update_baseline_s"] = round(update_s, 3)
    results["post_vs_update"] = round(post_s / update_s, 2) if update_s else None
    progress(f"posted {posted} documents in {post_s:.2f} s")

    results.update(_pages(run, user))
    return results


def report_lines(results):
    """The figures as the table ``bench_billrun`` prints, a line a row."""
    usage = "usage_records" in results
    rows = [
        ("database", results["database"]),
        ("accounts", results["accounts"]),
        ("invoices / credit memos", f"{results['invoices']} / {results['credit_memos']}"),
        ("items", results["items"]),
        ("failed accounts", results["accounts_failed"]),
        ("load the book", f"{results['load_s']} s"),
        ("import_accounts peak RSS", f"{results['import_peak_rss_mb']} MB"),
        ("import_accounts ÷ COPY", f"x{results['import_vs_copy']}"),
    ]
    if usage:
        rows += [
            (
                "usage charges",
                f"{results['usage_charges']} (written in {results['usage_charges_s']} s)",
            ),
            (
                "generate, no usage records",
                f"{results['generate_without_usage_s']} s "
                f"(worker peak RSS {results['worker_peak_rss_without_usage_mb']} MB)",
            ),
            (
                "usage records, CSV",
                f"{results['usage_records']} ({results['usage_csv_mb']} MB, "
                f"written in {results['usage_csv_s']} s)",
            ),
            (
                "import_usage",
                f"{results['usage_import_s']} s ({results['usage_records_per_s']} records/s)",
            ),
        ]
    rows.append(
        (
            f"generate ({results['workers']} workers)" + (", usage" if usage else ""),
            f"{results['generate_s']} s ({results['accounts_per_s']} accounts/s)",
        )
    )
    if usage:
        rows.append(("generate, usage ÷ no usage", f"x{results['generate_usage_vs_without']}"))
    if "changes" in results:
        rows[-1:-1] = [
            ("first run (posted)", f"{results['first_run_generate_s']} s"),
            (
                "generate, no changes",
                f"{results['generate_without_changes_s']} s "
                f"(worker peak RSS {results['worker_peak_rss_without_changes_mb']} MB)",
            ),
            (
                "changes",
                f"{results['changed_subscriptions']} subscriptions ({results['price_changes']} "
                f"price changes, {results['removals']} removals) in {results['changes_apply_s']} s",
            ),
        ]
        rows.append(
            ("generate, changes ÷ no changes", f"x{results['generate_changes_vs_without']}")
        )
    rows += [
        (
            "write floor (COPY / executemany)",
            f"{results['copy_baseline_s']} s (x{results['generate_vs_copy']})",
        ),
        ("post", f"{results['post_s']} s ({results['invoices_posted_per_s']} docs/s)"),
        (
            "one UPDATE to Posted",
            f"{results['update_baseline_s']} s (x{results['post_vs_update']})",
        ),
        (
            "list page p50 / p95",
            f"{results['list_page_p50_ms']} / {results['list_page_p95_ms']} ms",
        ),
        (
            "run page p50 / p95",
            f"{results['detail_page_p50_ms']} / {results['detail_page_p95_ms']} ms",
        ),
        (
            "empty run page p50",
            f"{results['empty_run_page_p50_ms']} ms",
        ),
        ("worker peak RSS", f"{results['worker_peak_rss_mb']} MB"),
    ]
    width = max(len(label) for label, _ in rows)
    return [f"{label:<{width}}  {value}" for label, value in rows] + review_bench.report_lines(
        results
    )


# --- steps ---


def _wipe():
    with transaction.atomic():
        Payment.objects.all().delete()
        CreditApplication.objects.all().delete()
        DocumentItem.objects.all().delete()
        Document.objects.all().delete()
        BillRun.objects.all().delete()
        ChargePrice.objects.all().delete()
        SubscriptionChange.objects.all().delete()
        UsageRecord.objects.all().delete()  # before the charges: a trigger guards them
        Charge.objects.all().delete()
        Pricing.objects.all().delete()
        Subscription.objects.all().delete()
        Account.objects.all().delete()


def _analyze():
    """Fresh planner statistics after the bulk load, as autovacuum would
    give a database that had loaded its accounts a while before billing."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")


def _bench_user():
    users = get_user_model().objects
    user = users.filter(username="bench").first()
    if user is None:
        user = users.create_superuser("bench", "", None)
    return user


def _generate(user, *, workers, timeout, target_date=BENCHMARK_TARGET_DATE):
    env = {**os.environ, "Q_WORKERS": str(workers)}
    cluster = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        time.sleep(4)  # the cluster's workers start and begin polling
        started = time.perf_counter()
        run = services.bill_run_create(target_date=target_date, created_by=user)
        deadline = time.monotonic() + timeout
        while True:
            status = BillRun.objects.filter(pk=run.pk).values_list("status", flat=True)[0]
            if status in (RunStatus.COMPLETED, RunStatus.ERROR):
                break
            if time.monotonic() > deadline:
                raise BenchmarkFailed(f"{run.number} did not finish within the timeout.")
            time.sleep(0.05)
        generate_s = time.perf_counter() - started
        peak = process_group_peak_rss_mb(cluster.pid)
    finally:
        # TERM to the cluster's main process, which stops its workers in
        # about a second (TERM to the whole group hangs it until the KILL:
        # tests/processes.py); then KILL whatever is left.
        os.kill(cluster.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            cluster.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(cluster.pid, signal.SIGKILL)
        cluster.wait()
    run.refresh_from_db()
    if run.status != RunStatus.COMPLETED:
        raise BenchmarkFailed(f"{run.number} ended {run.status}: {run.error_message}")
    return run, generate_s, peak


def _usage_book():
    started = time.perf_counter()
    charges = benchmark_usage_charges_write()
    written_s = time.perf_counter() - started
    _analyze()
    return {"usage_charges": charges, "usage_charges_s": round(written_s, 3)}


def _without_usage_records(user, *, workers, timeout, progress):
    """The run over the book before any usage is recorded; then canceled and
    deleted, so that the run with usage bills the same pieces afresh, on
    tables vacuumed of it."""
    run, generate_s, peak_rss = _generate(user, workers=workers, timeout=timeout)
    figures = {
        "generate_without_usage_s": round(generate_s, 3),
        "worker_peak_rss_without_usage_mb": round(peak_rss, 1),
        "items_without_usage": DocumentItem.objects.filter(document__bill_run=run).count(),
    }
    progress(f"generated {run.number} without usage records in {generate_s:.2f} s")
    run = services.bill_run_cancel(run=run, user=user, wait=True)
    if run.status != RunStatus.CANCELED:
        raise BenchmarkFailed(f"{run.number} could not be canceled: it is {run.status}.")
    services.bill_run_delete(run=run, user=user)
    _analyze()
    progress(f"canceled and deleted {run.number}")
    return figures


def _first_run_and_unchanged(user, *, workers, timeout, progress):
    """The first run (on the book's target date), posted; then the next
    month's run with no change, timed, canceled and deleted, so that the run
    after the changes bills the same pieces afresh."""
    first, first_s, _ = _generate(user, workers=workers, timeout=timeout)
    services.bill_run_post(run=first, user=user, wait=True)
    progress(f"generated {first.number} in {first_s:.2f} s and posted it")
    _analyze()
    run, generate_s, peak_rss = _generate(
        user, workers=workers, timeout=timeout, target_date=CHANGES_TARGET_DATE
    )
    figures = {
        "first_run_generate_s": round(first_s, 3),
        "generate_without_changes_s": round(generate_s, 3),
        "worker_peak_rss_without_changes_mb": round(peak_rss, 1),
        "invoices_without_changes": run.invoices_count,
        "items_without_changes": DocumentItem.objects.filter(document__bill_run=run).count(),
    }
    progress(f"generated {run.number} without changes in {generate_s:.2f} s")
    run = services.bill_run_cancel(run=run, user=user, wait=True)
    if run.status != RunStatus.CANCELED:
        raise BenchmarkFailed(f"{run.number} could not be canceled: it is {run.status}.")
    services.bill_run_delete(run=run, user=user)
    _analyze()
    progress(f"canceled and deleted {run.number}")
    return figures


def _change_requests(fraction):
    """The changes of ``--changes``: see the module."""
    every = max(1, round(1 / fraction))
    charges = (
        Charge.objects.filter(
            charge_type=ChargeType.RECURRING,
            charged_through_date__isnull=False,
            end_date__isnull=True,
        )
        .order_by("subscription__number", "number")
        .values_list("subscription__number", "number", "amount", "start_date")
        .iterator(chunk_size=10000)
    )
    seen = set()
    index = 0
    for subscription, number, amount, start in charges:
        if subscription in seen:
            continue
        seen.add(subscription)
        index += 1
        if index % every:
            continue
        day = max(CHANGES_EFFECTIVE_DATE, start + datetime.timedelta(days=1))
        path = f"changes[{len(seen)}]"
        if (index // every) % 2:
            new_amount = (amount * 11 / 10).quantize(Decimal("0.01"))
            yield ChangeRequest(
                path=path,
                change_type="change_price",
                charge=number,
                effective_date=day,
                amount=new_amount,
            )
        else:
            yield ChangeRequest(
                path=path, change_type="remove_charge", charge=number, effective_date=day
            )


def _changes(fraction, user, *, progress):
    """Apply the changes of ``--changes`` through the change services."""
    started = time.perf_counter()
    applied = {"change_price": 0, "remove_charge": 0}
    batch = []

    def apply():
        for change in changes_apply(requests=batch, user=user):
            applied[change.change_type] += 1
        batch.clear()

    for request in _change_requests(fraction):
        batch.append(request)
        if len(batch) >= CHANGES_BATCH:
            apply()
    apply()
    changes_s = time.perf_counter() - started
    _analyze()
    total = sum(applied.values())
    progress(f"applied {total} changes in {changes_s:.2f} s")
    return {
        "changes": fraction,
        "changed_subscriptions": total,
        "price_changes": applied["change_price"],
        "removals": applied["remove_charge"],
        "changes_apply_s": round(changes_s, 3),
    }


def _billed_usage_charges():
    """(number, first day, end day) of each usage charge of the book that a
    run on the target date bills: the pieces it bills, of the accounts that
    do not fail by design (a missing contact, a charge in another currency)."""
    account = "subscription__account"
    foreign = Charge.objects.filter(subscription__account=OuterRef(account)).exclude(
        currency=OuterRef(f"{account}__currency")
    )
    charges = (
        Charge.objects.filter(charge_type=ChargeType.USAGE)
        .exclude(subscription__account__bill_to_email="")
        .exclude(Exists(foreign))
        .order_by("number")
        .values_list("number", "period", "subscription__account__bill_cycle_day", "start_date")
        .iterator(chunk_size=10000)
    )
    for number, period, bill_cycle_day, start in charges:
        span = billed_span(
            period=period, bill_cycle_day=bill_cycle_day, start=start, target=BENCHMARK_TARGET_DATE
        )
        if span:
            yield number, *span


def _usage_import(records, *, progress):
    """``records`` usage records written to a CSV file, then imported by
    ``import_usage`` as an operator would (the command, in this process)."""
    with tempfile.TemporaryDirectory(prefix="bench-usage-") as directory:
        path = os.path.join(directory, "usage.csv")
        started = time.perf_counter()
        with open(path, "w", encoding="utf-8", newline="") as out:
            charges = benchmark_usage_csv(out, charges=_billed_usage_charges(), records=records)
        csv_s = time.perf_counter() - started
        if not charges:
            raise BenchmarkFailed("The book has no usage charge that the run bills.")
        size_mb = os.path.getsize(path) / 2**20
        progress(f"wrote {records} usage records ({size_mb:.1f} MB) in {csv_s:.2f} s")
        said = io.StringIO()
        started = time.perf_counter()
        call_command("import_usage", path, stdout=said)
        import_s = time.perf_counter() - started
    expected = f"imported {records} usage records, 0 already recorded"
    if said.getvalue().strip() != expected:
        raise BenchmarkFailed(f"import_usage said {said.getvalue().strip()!r}, not {expected!r}.")
    progress(f"imported them in {import_s:.2f} s")
    _analyze()
    return {
        "usage_records": records,
        "usage_charges_with_records": charges,
        "usage_csv_s": round(csv_s, 3),
        "usage_csv_mb": round(size_mb, 1),
        "usage_import_s": round(import_s, 3),
        "usage_records_per_s": round(records / import_s, 1),
    }


def _check_usage_billed(run, records):
    """Every record is in a piece this run billed: the usage items' quantities
    add up to the file's."""
    billed = DocumentItem.objects.filter(
        document__bill_run=run, charge__charge_type=ChargeType.USAGE
    ).aggregate(total=ExactSum("quantity"))["total"]
    if billed != quantity_total(records):
        raise BenchmarkFailed(
            f"{run.number} billed a usage quantity of {billed}, not the "
            f"{quantity_total(records)} of the records imported."
        )


def _pages(run, user):
    existing = BillRun.objects.count()
    missing = max(0, RUNS_FOR_PAGES - existing)
    if missing:
        numbers = sequences.allocate("BR", missing)
        now = timezone.now()
        BillRun.objects.bulk_create(
            [
                BillRun(
                    number=number,
                    status=RunStatus.CANCELED,
                    target_date=BENCHMARK_TARGET_DATE,
                    invoice_date=BENCHMARK_TARGET_DATE,
                    created_by=user,
                    canceled_at=now,
                    totals={"USD": "0.00"},
                )
                for number in numbers
            ],
            batch_size=1000,
        )
    if not settings.DEBUG:
        call_command("collectstatic", interactive=False, verbosity=0)
    if "testserver" not in settings.ALLOWED_HOSTS:
        settings.ALLOWED_HOSTS.append("testserver")
    client = Client(secure=True)
    client.force_login(user)
    timings = {}
    empty = BillRun.objects.filter(invoices_count=0, credit_memos_count=0).exclude(pk=run.pk)
    empty = empty.order_by("-id").first()
    # The list and the run's page, each beside the empty page (issue 18).
    timings.update(bench_pages.measure(client, run.number, samples=PAGE_SAMPLES))
    for key, url in (("empty_run_page", f"/billing/bill-runs/{empty.number}/"),):
        samples = []
        for _ in range(PAGE_SAMPLES + 3):
            started = time.perf_counter()
            response = client.get(url)
            samples.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise BenchmarkFailed(f"{url} answered {response.status_code}")
        samples = samples[3:]  # the first requests warm caches
        timings[f"{key}_p50_ms"] = round(statistics.median(samples), 1)
        timings[f"{key}_p95_ms"] = round(percentile(samples, 0.95), 1)
    # The Review tab beside the empty page (tools.bench.review).
    timings.update(review_bench.measure(run=run, user=user, samples=PAGE_SAMPLES))
    return timings
