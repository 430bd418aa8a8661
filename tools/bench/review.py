"""The Review tab measured beside an empty page (issue 17).

A run compared with its previous run: the review's lines written as the
completion task writes them (``run_review_write``, timed), then, in-process
(DEBUG off, the site's whole middleware, one signed-in client), the tab's
pages and the page of a run with no documents, interleaved: each round asks
for every page once, in turn, so the machine's load falls on all of them
alike. Each page's p50 and p95 are divided by the empty page's.

The pages: the run's own page on its first tab (Invoices: what any tab of
it costs; ``run_page_vs_empty``); the tab's first page (by account); a
deep page by cursor, at the middle and at the end (``cursor=last``); a
filter by flag, a rare one and a common one (the review's least and most
raised stored flags); a page sorted by change (descending) and one sorted
by percent at the middle.

``manage.py bench_review`` runs it on a database that holds a run and its
previous run (``bench_billrun --changes`` leaves two); ``bench_billrun``
calls ``measure`` for its run.
"""

import statistics
import time

from django.conf import settings
from django.core.cache import caches
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from billruns import review
from billruns.models import BillRun, ReviewLine, RunReview, RunStatus
from invoices.models import Document
from tools.bench.measure import percentile

SAMPLES = 40
WARM_UP = 3


class ReviewBenchmarkFailed(Exception):
    pass


def _empty_run(user):
    """A run with no document (the empty page), made if there is none."""
    empty = (
        BillRun.objects.filter(invoices_count=0, credit_memos_count=0, preview=False)
        .order_by("-id")
        .first()
    )
    if empty is not None:
        return empty
    from invoices import sequences

    (number,) = sequences.allocate("BR", 1)
    today = timezone.localdate()
    return BillRun.objects.create(
        number=number,
        status=RunStatus.CANCELED,
        target_date=today,
        invoice_date=today,
        created_by=user,
        canceled_at=timezone.now(),
        totals={"USD": "0.00"},
    )


def _analyze():
    # What autovacuum does soon after a run is posted and its review written:
    # the run page's counts are index-only scans that need the visibility map.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for model in (ReviewLine, Document):
                cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")


def _flags(the_review):
    raised = {flag: count for flag, count in the_review.counts.items() if count}
    if not raised:
        return []
    rare = min(raised, key=raised.get)
    common = max(raised, key=raised.get)
    return [("rare", rare)] + ([("common", common)] if common != rare else [])


def measure(*, run, user, samples=SAMPLES, rewrite=True):
    """The figures of the run's Review tab (keys ``review_*``)."""
    results = {}
    if rewrite:
        RunReview.objects.filter(bill_run=run).delete()
    started = time.perf_counter()
    the_review = review.run_review_write(run_id=run.pk)
    results["review_write_s"] = round(time.perf_counter() - started, 2)
    if the_review is None:
        raise ReviewBenchmarkFailed(f"{run.number} is not settled: it has no review.")
    _analyze()
    results["review_lines"] = the_review.lines_count
    results["review_against"] = the_review.against.number if the_review.against else None
    results["review_counts"] = the_review.counts
    empty = _empty_run(user)
    tab = f"/billing/bill-runs/{run.number}/?tab=review"
    middle = max(1, the_review.lines_count // 2)

    def after(sort, place, row):
        # The cursor of Next on the page whose last row is row ``row`` of
        # ``sort``, the line at ``place``: as the pages sign it.
        return review._cursor(the_review, sort, "", "after", place, row + 1)

    lines = the_review.lines_count

    pages = {
        "empty": f"/billing/bill-runs/{empty.number}/",
        # The run's page on its first tab (Invoices): what every tab of it
        # costs, the review's or not.
        "run_page": f"/billing/bill-runs/{run.number}/",
        "review_page": tab,
        "review_last": f"{tab}&cursor=last",
        "review_sorted": f"{tab}&sort=-change",
    }
    if lines > 1:  # a page after the middle row
        pages["review_middle"] = f"{tab}&cursor={after('account', middle, middle)}"
        pages["review_sorted_middle"] = f"{tab}&sort=-percent&cursor=" + after(
            "-percent", lines - middle + 1, middle
        )
    for kind, flag in _flags(the_review):
        pages[f"review_flag_{kind}"] = f"{tab}&flag={flag}"
        results[f"review_flag_{kind}"] = flag
    if not settings.DEBUG:
        call_command("collectstatic", interactive=False, verbosity=0)
    if "testserver" not in settings.ALLOWED_HOSTS:
        settings.ALLOWED_HOSTS.append("testserver")
    client = Client(secure=True)
    client.force_login(user)
    timings = {key: [] for key in pages}
    for round_number in range(samples + WARM_UP):
        for key, url in pages.items():
            # Each page rendered, not served again from the page cache
            # (core.pagecache): this measures the review's queries.
            caches["pages"].clear()
            started = time.perf_counter()
            response = client.get(url)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise ReviewBenchmarkFailed(f"{url} answered {response.status_code}")
            if key.startswith("review") and b'data-testid="review-row"' not in response.content:
                raise ReviewBenchmarkFailed(f"{url} shows no review row")
            if round_number >= WARM_UP:
                timings[key].append(elapsed)
    empty_p50 = statistics.median(timings["empty"])
    empty_p95 = percentile(timings["empty"], 0.95)
    for key, values in timings.items():
        results[f"{key}_p50_ms"] = round(statistics.median(values), 1)
        results[f"{key}_p95_ms"] = round(percentile(values, 0.95), 1)
        if key != "empty":
            results[f"{key}_vs_empty"] = round(statistics.median(values) / empty_p50, 2)
            results[f"{key}_p95_vs_empty"] = round(percentile(values, 0.95) / empty_p95, 2)
    results["review_worst_vs_empty"] = max(
        value
        for key, value in results.items()
        if key.startswith("review_") and key.endswith("_vs_empty")
    )
    return results


def report_lines(results):
    rows = [
        (
            "review",
            f"{results['review_lines']} lines against {results['review_against']}, "
            f"written in {results['review_write_s']} s",
        ),
        (
            "empty run page p50 / p95",
            f"{results['empty_p50_ms']} / {results['empty_p95_ms']} ms",
        ),
    ]
    pages = [key for key in sorted(results) if key.startswith("review_")]
    for key in ["run_page_p50_ms", *pages]:
        if key.endswith("_p50_ms"):
            page = key.removesuffix("_p50_ms")
            rows.append(
                (
                    f"{page} p50 / p95",
                    f"{results[key]} / {results[f'{page}_p95_ms']} ms "
                    f"(x{results[f'{page}_vs_empty']} / x{results[f'{page}_p95_vs_empty']})",
                )
            )
    rows.append(("worst ÷ empty", f"x{results['review_worst_vs_empty']}"))
    width = max(len(label) for label, _ in rows)
    return [f"{label:<{width}}  {value}" for label, value in rows]
