"""``manage.py bench_billrun``: measure a bill run end to end, through the real code.

Builds a benchmark book in the configured database (refusing a database that
already holds accounts unless --force, which first deletes all billing data),
then times: loading the book through the importer; one bill run over all of
it executed by a real ``qcluster`` with W workers; posting it; the bill run
list and the run's page (with 1,000 runs in the database); a worker's peak
memory; and, on PostgreSQL, the floor: ``COPY`` of the same document and item
rows into scratch tables made ``LIKE`` the real ones ``INCLUDING ALL``.
"""

import datetime
import io
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from billruns import services
from billruns.models import BillRun, RunStatus
from customers.importer import accounts_import
from customers.models import Account, Charge, Subscription
from invoices import sequences
from invoices.models import CreditApplication, Document, DocumentItem, Payment

TARGET_DATE = datetime.date(2026, 3, 1)
PAGE_SAMPLES = 40
RUNS_FOR_PAGES = 1000


def build_book(accounts, subscriptions_per_account, seed=7):
    """A benchmark book: mixed periods, one-time fees and credits, ~1% failing."""
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


def percentile(samples, fraction):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def process_group_peak_rss_mb(pgid):
    """The largest peak resident size (VmHWM) among the processes of a group."""
    peak = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except (OSError, ValueError, IndexError):
            continue
    return peak / 1024


class Command(BaseCommand):
    help = "Benchmark a bill run over a generated book of accounts."

    def add_arguments(self, parser):
        parser.add_argument("--accounts", type=int, default=10000)
        parser.add_argument("--subscriptions-per-account", type=int, default=2)
        parser.add_argument("--workers", type=int, default=2)
        parser.add_argument("--json", action="store_true")
        parser.add_argument(
            "--force", action="store_true", help="delete all billing data in the database first"
        )
        parser.add_argument("--timeout", type=int, default=1800)

    def handle(self, *args, **options):
        if options["accounts"] < 1 or options["subscriptions_per_account"] < 1:
            raise CommandError("--accounts and --subscriptions-per-account must be at least 1.")
        if Account.objects.exists():
            if not options["force"]:
                raise CommandError(
                    "This database already holds accounts; the benchmark builds its own book. "
                    "Use an empty database, or --force to delete all billing data first."
                )
            self._wipe()
        results = {
            "accounts": options["accounts"],
            "subscriptions_per_account": options["subscriptions_per_account"],
            "database": connection.vendor,
            "workers": options["workers"],
        }
        user = self._bench_user()

        book = build_book(options["accounts"], options["subscriptions_per_account"])
        started = time.perf_counter()
        summary = accounts_import(document=book)
        results["load_s"] = round(time.perf_counter() - started, 3)
        self._analyze()
        results["charges"] = summary.charges
        del book
        self._progress(f"loaded the book in {results['load_s']} s")

        run, generate_s, peak_rss = self._generate(user, options)
        results.update(
            {
                "run": run.number,
                "status": run.status,
                "invoices": run.invoices_count,
                "credit_memos": run.credit_memos_count,
                "items": DocumentItem.objects.filter(document__bill_run=run).count(),
                "accounts_failed": run.accounts_failed,
                "generate_s": round(generate_s, 3),
                "accounts_per_s": round(options["accounts"] / generate_s, 1),
                "worker_peak_rss_mb": round(peak_rss, 1),
            }
        )
        self._progress(f"generated {run.number} in {generate_s:.2f} s")

        copy_s = self._copy_baseline(run)
        results["copy_baseline_s"] = round(copy_s, 3) if copy_s is not None else None
        results["generate_vs_copy"] = round(generate_s / copy_s, 2) if copy_s else None

        started = time.perf_counter()
        run = services.bill_run_post(run=run, user=user, wait=True)
        post_s = time.perf_counter() - started
        posted = Document.objects.filter(bill_run=run, status="Posted").count()
        results["post_s"] = round(post_s, 3)
        results["invoices_posted_per_s"] = round(posted / post_s, 1) if post_s else None
        self._progress(f"posted {posted} documents in {post_s:.2f} s")

        results.update(self._pages(run, user))
        self._report(results, as_json=options["json"])

    # --- steps ---

    def _progress(self, message):
        self.stderr.write(message)

    def _wipe(self):
        with transaction.atomic():
            Payment.objects.all().delete()
            CreditApplication.objects.all().delete()
            DocumentItem.objects.all().delete()
            Document.objects.all().delete()
            BillRun.objects.all().delete()
            Charge.objects.all().delete()
            Subscription.objects.all().delete()
            Account.objects.all().delete()

    def _analyze(self):
        """Fresh planner statistics after the bulk load, as autovacuum would
        give a database that had loaded its accounts a while before billing."""
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE")

    def _bench_user(self):
        users = get_user_model().objects
        user = users.filter(username="bench").first()
        if user is None:
            user = users.create_superuser("bench", "", None)
        return user

    def _generate(self, user, options):
        env = {**os.environ, "Q_WORKERS": str(options["workers"])}
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
            run = services.bill_run_create(target_date=TARGET_DATE, created_by=user)
            deadline = time.monotonic() + options["timeout"]
            while True:
                status = BillRun.objects.filter(pk=run.pk).values_list("status", flat=True)[0]
                if status in (RunStatus.COMPLETED, RunStatus.ERROR):
                    break
                if time.monotonic() > deadline:
                    raise CommandError(f"{run.number} did not finish within the timeout.")
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
            raise CommandError(f"{run.number} ended {run.status}: {run.error_message}")
        return run, generate_s, peak

    def _copy_baseline(self, run):
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

    def _pages(self, run, user):
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
                        target_date=TARGET_DATE,
                        invoice_date=TARGET_DATE,
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
                    raise CommandError(f"{url} answered {response.status_code}")
            samples = samples[3:]  # the first requests warm caches
            timings[f"{key}_p50_ms"] = round(statistics.median(samples), 1)
            timings[f"{key}_p95_ms"] = round(percentile(samples, 0.95), 1)
        return timings

    def _report(self, results, *, as_json):
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
        for label, value in rows:
            self.stdout.write(f"{label:<{width}}  {value}")
        if as_json:
            self.stdout.write(json.dumps(results, default=str))
