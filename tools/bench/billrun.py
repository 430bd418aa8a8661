"""A bill run measured end to end, through the real code.

Builds a benchmark book (tools.books) in the configured database (refusing a
database that already holds accounts unless ``force``, which first deletes
all billing data), then times: loading the book through the importer; one
bill run over all of it executed by a real ``qcluster`` with W workers;
posting it; the bill run list and the run's page (with 1,000 runs in the
database); a worker's peak memory; and, on PostgreSQL, the floor: ``COPY`` of
the same document and item rows into scratch tables made ``LIKE`` the real
ones ``INCLUDING ALL``.
"""

import io
import os
import signal
import statistics
import subprocess
import sys
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from billruns import services
from billruns.models import BillRun, RunStatus
from customers.importer import accounts_import
from customers.models import Account, Charge, Subscription
from invoices import sequences
from invoices.models import CreditApplication, Document, DocumentItem, Payment
from tools.bench.measure import percentile, process_group_peak_rss_mb
from tools.books import BENCHMARK_TARGET_DATE, benchmark_book

PAGE_SAMPLES = 40
RUNS_FOR_PAGES = 1000


class BenchmarkFailed(Exception):
    """The benchmark could not start, or its run did not complete."""


def bench_billrun(*, accounts, subscriptions_per_account, workers, force, timeout, progress):
    """Run the benchmark; returns its figures (the keys of ``--json``).
    ``progress`` is called with a line after each step."""
    if accounts < 1 or subscriptions_per_account < 1:
        raise BenchmarkFailed("--accounts and --subscriptions-per-account must be at least 1.")
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

    book = benchmark_book(accounts, subscriptions_per_account)
    started = time.perf_counter()
    summary = accounts_import(document=book)
    results["load_s"] = round(time.perf_counter() - started, 3)
    _analyze()
    results["charges"] = summary.charges
    del book
    progress(f"loaded the book in {results['load_s']} s")

    run, generate_s, peak_rss = _generate(user, workers=workers, timeout=timeout)
    results.update(
        {
            "run": run.number,
            "status": run.status,
            "invoices": run.invoices_count,
            "credit_memos": run.credit_memos_count,
            "items": DocumentItem.objects.filter(document__bill_run=run).count(),
            "accounts_failed": run.accounts_failed,
            "generate_s": round(generate_s, 3),
            "accounts_per_s": round(accounts / generate_s, 1),
            "worker_peak_rss_mb": round(peak_rss, 1),
        }
    )
    progress(f"generated {run.number} in {generate_s:.2f} s")

    copy_s = _copy_baseline(run)
    results["copy_baseline_s"] = round(copy_s, 3) if copy_s is not None else None
    results["generate_vs_copy"] = round(generate_s / copy_s, 2) if copy_s else None

    started = time.perf_counter()
    run = services.bill_run_post(run=run, user=user, wait=True)
    post_s = time.perf_counter() - started
    posted = Document.objects.filter(bill_run=run, status="Posted").count()
    results["post_s"] = round(post_s, 3)
    results["invoices_posted_per_s"] = round(posted / post_s, 1) if post_s else None
    progress(f"posted {posted} documents in {post_s:.2f} s")

    results.update(_pages(run, user))
    return results


def report_lines(results):
    """The figures as the table ``bench_billrun`` prints, a line a row."""
    rows = [
        ("database", results["database"]),
        ("accounts", results["accounts"]),
        ("invoices / credit memos", f"{results['invoices']} / {results['credit_memos']}"),
        ("items", results["items"]),
        ("failed accounts", results["accounts_failed"]),
        ("load the book", f"{results['load_s']} s"),
        (
            f"generate ({results['workers']} workers)",
            f"{results['generate_s']} s ({results['accounts_per_s']} accounts/s)",
        ),
        (
            "COPY floor",
            f"{results['copy_baseline_s']} s (x{results['generate_vs_copy']})"
            if results["copy_baseline_s"]
            else "n/a (PostgreSQL only)",
        ),
        ("post", f"{results['post_s']} s ({results['invoices_posted_per_s']} docs/s)"),
        (
            "list page p50 / p95",
            f"{results['list_page_p50_ms']} / {results['list_page_p95_ms']} ms",
        ),
        (
            "run page p50 / p95",
            f"{results['detail_page_p50_ms']} / {results['detail_page_p95_ms']} ms",
        ),
        ("worker peak RSS", f"{results['worker_peak_rss_mb']} MB"),
    ]
    width = max(len(label) for label, _ in rows)
    return [f"{label:<{width}}  {value}" for label, value in rows]


# --- steps ---


def _wipe():
    with transaction.atomic():
        Payment.objects.all().delete()
        CreditApplication.objects.all().delete()
        DocumentItem.objects.all().delete()
        Document.objects.all().delete()
        BillRun.objects.all().delete()
        Charge.objects.all().delete()
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


def _generate(user, *, workers, timeout):
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
        run = services.bill_run_create(target_date=BENCHMARK_TARGET_DATE, created_by=user)
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
        os.killpg(cluster.pid, signal.SIGTERM)
        try:
            cluster.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(cluster.pid, signal.SIGKILL)
            cluster.wait()
    run.refresh_from_db()
    if run.status != RunStatus.COMPLETED:
        raise BenchmarkFailed(f"{run.number} ended {run.status}: {run.error_message}")
    return run, generate_s, peak


def _copy_baseline(run):
    if connection.vendor != "postgresql":
        return None
    document_table = Document._meta.db_table
    item_table = DocumentItem._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        buffers = {}
        for table, where in (
            (document_table, f"bill_run_id = {int(run.pk)}"),
            (
                item_table,
                f"document_id IN (SELECT id FROM {document_table} "  # noqa: S608
                f"WHERE bill_run_id = {int(run.pk)})",
            ),
        ):
            data = io.BytesIO()
            with cursor.cursor.copy(
                f"COPY (SELECT * FROM {table} WHERE {where}) TO STDOUT"  # noqa: S608
            ) as copy:
                for block in copy:
                    data.write(block)
            buffers[table] = data.getvalue()
            cursor.execute(
                f"CREATE TEMP TABLE bench_{table} (LIKE {table} INCLUDING ALL) ON COMMIT DROP"
            )
        started = time.perf_counter()
        for table, data in buffers.items():
            with cursor.cursor.copy(f"COPY bench_{table} FROM STDIN") as copy:
                copy.write(data)
        elapsed = time.perf_counter() - started
    return elapsed


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
    for key, url in (
        ("list_page", "/billing/bill-runs/"),
        ("detail_page", f"/billing/bill-runs/{run.number}/"),
    ):
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
    return timings
