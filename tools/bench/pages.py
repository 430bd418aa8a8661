"""The pages against an empty page (issue 18): the bill run list and a run's
page, each timed beside a trivial signed-in view behind the same middleware,
requests interleaved (list, run, empty, list, ...) so that a shared machine's
load weighs on all three alike.

The empty page exists for the benchmark only: this module is also a URLconf
(``URLCONF``) that adds it in front of the site's own URLs. In-process the
measure swaps it in with ``override_settings``; bin/loadtest serves it with
gunicorn through ``wsgi_application()``.

    DATABASE_URL=... python -m tools.bench.pages [RUN_NUMBER] [--samples N]

measures against an existing database (the run: the one with the most
documents by default) and prints the JSON of ``measure``.
"""

import statistics
import time
from unittest import mock

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.test import Client, override_settings
from django.urls import include, path

from tools.bench.measure import percentile

URLCONF = __name__
EMPTY_PATH = "/bench/empty/"
LIST_PATH = "/billing/bill-runs/"
SAMPLES = 40
WARMUP = 3


@login_required
def empty_page(request):
    """A signed-in page with nothing on it: what the middleware, the session
    and the sign-in cost alone."""
    return HttpResponse("<!doctype html><title>Empty</title><p>Empty.</p>")


def __getattr__(name):
    """``urlpatterns``, made when the resolver first asks (the site's URLs
    import models: not before Django is set up)."""
    if name == "urlpatterns":
        return [
            path(EMPTY_PATH.lstrip("/"), empty_page),
            path("", include("billing_site.urls")),
        ]
    raise AttributeError(name)


def wsgi_application():
    """The site's WSGI application with this URLconf (gunicorn
    ``'tools.bench.pages:wsgi_application()'``)."""
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application

    settings.ROOT_URLCONF = URLCONF
    return get_wsgi_application()


def measure(client, run_number, *, samples=SAMPLES):
    """p50/p95 of the list, the run's page and the empty page, interleaved,
    and each page's p95 ÷ the empty page's p95; the list and the run's page
    also as rendered when the page cache has nothing (``*_rendered``)."""
    pages = {
        "list_page": LIST_PATH,
        "detail_page": f"/billing/bill-runs/{run_number}/",
        "empty_page": EMPTY_PATH,
        # The same two pages rendered every time (no change stamp, as on
        # SQLite: core.pagecache keeps nothing), what a clerk waits for once
        # after any change. Printed, not part of the ratios.
        "list_page_rendered": LIST_PATH,
        "detail_page_rendered": f"/billing/bill-runs/{run_number}/",
    }
    times = {key: [] for key in pages}
    cpu = {key: [] for key in pages}
    with override_settings(ROOT_URLCONF=URLCONF):
        for round_ in range(samples + WARMUP):
            for key, url in pages.items():
                started, started_cpu = time.perf_counter(), time.process_time()
                if key.endswith("_rendered"):
                    with mock.patch("core.stamps.current", return_value=None):
                        response = client.get(url)
                else:
                    response = client.get(url)
                elapsed = (time.perf_counter() - started) * 1000
                elapsed_cpu = (time.process_time() - started_cpu) * 1000
                if response.status_code != 200:
                    raise RuntimeError(f"{url} answered {response.status_code}")
                if round_ >= WARMUP:  # the first rounds warm caches
                    times[key].append(elapsed)
                    cpu[key].append(elapsed_cpu)
    results = {}
    for key, values in times.items():
        results[f"{key}_p50_ms"] = round(statistics.median(values), 1)
        results[f"{key}_p95_ms"] = round(percentile(values, 0.95), 1)
        # This process's CPU alone (not the database's): steadier on a busy machine.
        results[f"{key}_cpu_p50_ms"] = round(statistics.median(cpu[key]), 1)
    empty = results["empty_page_p95_ms"]
    results["list_page_vs_empty"] = round(results["list_page_p95_ms"] / empty, 2)
    results["detail_page_vs_empty"] = round(results["detail_page_p95_ms"] / empty, 2)
    return results


def main(argv=None):
    import argparse
    import json
    import os

    import django

    parser = argparse.ArgumentParser()
    parser.add_argument("run", nargs="?")
    parser.add_argument("--samples", type=int, default=SAMPLES)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_site.settings")
    os.environ.setdefault("DEBUG", "0")
    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from billruns.models import BillRun

    if "testserver" not in settings.ALLOWED_HOSTS:
        settings.ALLOWED_HOSTS.append("testserver")
    run = (
        BillRun.objects.get(number=args.run)
        if args.run
        else BillRun.objects.order_by("-invoices_count", "-id").first()
    )
    user = get_user_model().objects.filter(is_superuser=True).first()
    if user is None:
        user = get_user_model().objects.create_superuser("bench-pages", password=None)
    client = Client(secure=True)
    client.force_login(user)
    print(
        json.dumps(
            {
                "run": run.number,
                "documents": run.invoices_count,
                **measure(client, run.number, samples=args.samples),
            }
        )
    )


if __name__ == "__main__":
    main()
