"""The HTTP API measured side by side with its own floor, in one process.

On a bill run of N documents (on PostgreSQL written by ``tools.seed_load``,
the older of two runs of N accounts; elsewhere made by a real run over an
imported book of N accounts):

- ``GET /api/v1/bill-runs/{number}/documents/?limit=100`` at three positions
  of the cursor (the first page, a cursor in the middle of the run, the last
  page) and ``GET /api/v1/`` (the root: a key and nothing else), each
  request timed alone, interleaved (one of each per round, the order turning
  every round) so that the machine's load swings hit all of them alike; the
  p50 and p95 of each and the ratios to the root's
  (``api_documents_vs_root``);
- ``POST /api/v1/usage/`` of R records (1,000: the most one request takes)
  and ``import_usage`` of R other records (fresh ids each time, on the same
  usage charges, the same days and quantities), alternately, the command
  in this process as an operator runs it; the ratio of their medians
  (``api_usage_vs_import``).

Requests go through django.test.Client with a real API key (clerk) and
DEBUG off: the whole stack, authentication, throttle and idempotency
included. The throttle's history of the key is emptied every
THROTTLE_RESET requests, so that the benchmark stays under the read rate
(its cost, a list of recent request times per key, is then about what a
busy key pays).
"""

import datetime
import functools
import io
import json
import os
import tempfile
import time

from django.conf import settings
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.db.models import Subquery
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings

from api.keys import api_key_create
from api.pagination import make_cursor
from billruns import services
from billruns.models import BillRun
from customers.importer import accounts_import
from customers.models import Account, Charge, ChargeType, Subscription
from invoices.models import Document
from tools.bench.measure import percentile
from tools.books import load_book
from tools.seed_load import seed_load
from tools.usage import (
    API_CALLS_PRICING,
    QUANTITY_TEXT,
    UsageCharge,
    pricing_from_document,
    usage_charges_write,
)

POSITIONS = ("first", "middle", "last")
PAGE = 100
# Below this many documents the run is made by a real run, on PostgreSQL too
# (the benchmark's test); from it on PostgreSQL, seed_load writes it.
SEED_FROM = 1000
THROTTLE_RESET = 1000
# The usage charges the records go round, and the first day they are on:
# after every period the seeded history bills (it ends with February 2026).
USAGE_CHARGES = 100
USAGE_START = datetime.date(2026, 3, 1)
USAGE_DAYS = 28
USAGE_CHARGE_NAME = "Bench API calls"


class BenchmarkFailed(Exception):
    """The benchmark could not be set up or an answer was not the one expected."""


def bench_api(*, documents, requests, usage_records, usage_rounds, force, progress, page=PAGE):
    """Build the run (or reuse the largest one of at least ``documents``
    documents), then measure; returns the figures as a dict."""
    started = time.perf_counter()
    run = _run_of(documents, force=force, progress=progress)
    progress(f"[{time.perf_counter() - started:6.1f} s] run {run.number} ready")
    key_name = f"bench-{os.getpid()}-{time.time_ns()}"
    _, raw = api_key_create(name=key_name, role="clerk")
    client = _client(raw)
    results = {"documents": Document.all_objects.filter(bill_run=run).count()}
    with override_settings(DEBUG=False):
        results.update(_documents_figures(client, run, requests, key_name, page, progress))
        results.update(_usage_figures(client, usage_records, usage_rounds, progress))
    progress(f"[{time.perf_counter() - started:6.1f} s] measured")
    return results


# --- the run --------------------------------------------------------------------------


def _run_of(documents, *, force, progress):
    if not force:
        for run in BillRun.objects.order_by("id"):
            if Document.all_objects.filter(bill_run=run).count() >= documents:
                progress(f"reusing {run.number}")
                return run
    if connection.vendor == "postgresql" and documents >= SEED_FROM:
        # Two runs of ``documents`` invoices each, every account billed once
        # by each, as a monthly run bills them; the older is measured: its
        # documents are followed by the newer's, so a page that read the
        # table in id order past the run's last document would show it.
        seed_load(
            runs=2, invoices=2 * documents, accounts=documents, force=force, progress=progress
        )
        return BillRun.objects.order_by("id").first()
    if Account.objects.exists():
        raise BenchmarkFailed(
            "The database holds accounts but no run of that many documents: use an empty one "
            "(--force empties PostgreSQL databases only)."
        )
    # Elsewhere (SQLite: no COPY), a real run: one invoice per account.
    accounts_import(document=load_book(documents, start=datetime.date(2026, 1, 1), batches=1))
    run = services.bill_run_create(target_date=datetime.date(2026, 2, 1), enqueue=False)
    run = services.bill_run_execute(run_id=run.pk)
    if Document.all_objects.filter(bill_run=run).count() < documents:
        raise BenchmarkFailed(f"{run.number} made fewer than {documents} documents.")
    return run


def _client(raw_key):
    if "testserver" not in settings.ALLOWED_HOSTS:
        settings.ALLOWED_HOSTS.append("testserver")
    return Client(secure=True, HTTP_AUTHORIZATION=f"Bearer {raw_key}")


# --- documents, side by side with the root ----------------------------------------------


def _documents_paths(run, page):
    """The root and the run's documents at each position of the cursor."""
    base = f"/api/v1/bill-runs/{run.number}/documents/"
    ids = list(
        Document.all_objects.filter(bill_run=run).order_by("pk").values_list("pk", flat=True)
    )
    if len(ids) <= 2 * page:
        raise BenchmarkFailed(
            f"{run.number} has {len(ids)} documents: more than {2 * page} needed."
        )
    # A cursor is the last id of the page before (api.pagination).
    middle = make_cursor(ids[len(ids) // 2 - 1], scope=base)
    last = make_cursor(ids[-page - 1], scope=base)
    return {
        "root": "/api/v1/",
        "first": f"{base}?limit={page}",
        "middle": f"{base}?limit={page}&cursor={middle}",
        "last": f"{base}?limit={page}&cursor={last}",
    }


def _get(client, path):
    started = time.perf_counter()
    response = client.get(path)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise BenchmarkFailed(
            f"GET {path} answered {response.status_code}: {response.content[:300]!r}"
        )
    return elapsed, response


def _backend_cpu():
    """(the PostgreSQL backend's pid, its CPU seconds so far) or None: the
    server runs on this machine, its /proc is readable (tools.bench.cpu)."""
    if connection.vendor != "postgresql" or connection.connection is None:
        return None
    pid = connection.connection.info.backend_pid
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return pid, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _timed_get(client, path, cpu):
    """The request's wall time; its CPU (this process's and, on PostgreSQL,
    its backend's: clock ticks, exact only summed over many requests) is
    added to ``cpu``, [seconds, requests, seconds of this process alone]."""
    backend = _backend_cpu()
    own = time.process_time()
    elapsed = _get(client, path)[0]
    own = time.process_time() - own
    after = _backend_cpu()
    if (backend is None) == (after is None) and (backend is None or backend[0] == after[0]):
        cpu[0] += own + (after[1] - backend[1] if backend else 0)
        cpu[1] += 1
        cpu[2] += own
    return elapsed


def _documents_figures(client, run, requests, key_name, page, progress):
    paths = _documents_paths(run, page)
    names = list(paths)
    # Each answer checked once (a page of page, its next link as expected),
    # its queries counted; this also warms every path up.
    figures = {}
    for name, path in paths.items():
        with CaptureQueriesContext(connection) as queries:
            _, response = _get(client, path)
        figures[f"queries_{name}"] = len(queries)
        if name != "root":
            body = response.json()
            if len(body["results"]) != page or (body["next"] is None) != (name == "last"):
                raise BenchmarkFailed(f"GET {path}: not a page of {page} with the right next link.")
    samples = {name: [] for name in names}
    cpu = {name: [0.0, 0, 0.0] for name in names}
    for round_number in range(requests):
        if round_number % (THROTTLE_RESET // len(names)) == 0:
            _reset_throttle(key_name)
        turn = round_number % len(names)
        for name in names[turn:] + names[:turn]:
            samples[name].append(_timed_get(client, paths[name], cpu[name]))
    for name in names:
        figures[f"api_{name}_p50_ms"] = round(1000 * percentile(samples[name], 0.5), 2)
        figures[f"api_{name}_p95_ms"] = round(1000 * percentile(samples[name], 0.95), 2)
    for name in POSITIONS:
        figures[f"api_documents_vs_root_{name}"] = round(
            percentile(samples[name], 0.5) / percentile(samples["root"], 0.5), 2
        )
        figures[f"api_documents_vs_root_{name}_p95"] = round(
            percentile(samples[name], 0.95) / percentile(samples["root"], 0.95), 2
        )
    cpu_each = {name: seconds / max(1, count) for name, (seconds, count, _) in cpu.items()}
    for name in names:
        figures[f"api_{name}_cpu_ms"] = round(1000 * cpu_each[name], 2)
        figures[f"api_{name}_python_cpu_ms"] = round(1000 * cpu[name][2] / max(1, cpu[name][1]), 2)
    for name in POSITIONS:
        figures[f"api_documents_vs_root_{name}_cpu"] = round(cpu_each[name] / cpu_each["root"], 2)
    figures["api_documents_vs_root"] = max(figures[f"api_documents_vs_root_{n}"] for n in POSITIONS)
    figures["document_requests"] = requests
    figures["page_limit"] = page
    if connection.vendor == "postgresql":
        figures["documents_page_plan"] = _page_plan(run, page)
    progress(
        "documents vs root (p50): "
        + ", ".join(f"{n} {figures[f'api_documents_vs_root_{n}']}" for n in POSITIONS)
    )
    return figures


def _reset_throttle(key_name):
    from api.models import ApiKey

    key = ApiKey.objects.get(name=key_name)
    for scope in ("api_read", "api_write"):
        cache.delete(f"throttle_{scope}_{key.pk}")


def _page_plan(run, page):
    """How PostgreSQL reads the ids of a page in the middle of the run: the
    view's keyset query (api.views.BillRunDocumentsView)."""
    ids = Document.all_objects.filter(bill_run=run).order_by("pk").values_list("pk", flat=True)
    middle = ids[ids.count() // 2]
    run_id = Subquery(BillRun.objects.filter(number=run.number).order_by().values("id"))
    keyset = (
        Document.all_objects.filter(bill_run_id=run_id, pk__gt=middle)
        .order_by("pk")[: page + 1]
        .values("pk")
    )
    return keyset.explain().splitlines()


# --- usage, side by side with import_usage ----------------------------------------------


def _usage_charges():
    """The numbers of USAGE_CHARGES usage charges on the book's first
    subscriptions, written once (a database measured again reuses them)."""
    charges = Charge.objects.filter(
        charge_type=ChargeType.USAGE, name=USAGE_CHARGE_NAME, start_date=USAGE_START
    )
    if not charges.exists():
        subscriptions = Subscription.objects.order_by("number").values_list(
            "pk", "account__currency"
        )[:USAGE_CHARGES]
        pricing = pricing_from_document(API_CALLS_PRICING)
        usage_charges_write(
            [
                UsageCharge(
                    subscription_id=pk,
                    currency=currency,
                    start_date=USAGE_START,
                    name=USAGE_CHARGE_NAME,
                    unit="calls",
                    pricing=pricing,
                )
                for pk, currency in subscriptions
            ]
        )
    return list(charges.order_by("number").values_list("number", flat=True))


def _records(prefix, count, charges):
    return [
        {
            "id": f"{prefix}{i:06d}",
            "charge": charges[i % len(charges)],
            "date": (
                USAGE_START + datetime.timedelta(days=(i // len(charges)) % USAGE_DAYS)
            ).isoformat(),
            "quantity": QUANTITY_TEXT[i % len(QUANTITY_TEXT)],
        }
        for i in range(count)
    ]


def _post_usage(client, records):
    body = json.dumps({"records": records})
    started = time.perf_counter()
    response = client.post("/api/v1/usage/", body, content_type="application/json")
    elapsed = time.perf_counter() - started
    if response.status_code != 201 or response.json() != {
        "imported": len(records),
        "already_recorded": 0,
    }:
        raise BenchmarkFailed(
            f"POST /api/v1/usage/ answered {response.status_code}: {response.content[:300]!r}"
        )
    return elapsed


def _import_usage(directory, records):
    path = os.path.join(directory, f"{records[0]['id']}.csv")
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write("id,charge,date,quantity\n")
        out.writelines(f"{r['id']},{r['charge']},{r['date']},{r['quantity']}\n" for r in records)
    said = io.StringIO()
    started = time.perf_counter()
    call_command("import_usage", path, stdout=said)
    elapsed = time.perf_counter() - started
    expected = f"imported {len(records)} usage records, 0 already recorded"
    if said.getvalue().strip() != expected:
        raise BenchmarkFailed(f"import_usage said {said.getvalue().strip()!r}, not {expected!r}.")
    return elapsed


def _usage_figures(client, count, rounds, progress):
    charges = _usage_charges()
    stamp = time.time_ns() % 10**8
    api, command = [], []
    with tempfile.TemporaryDirectory(prefix="bench-api-usage-") as directory:
        # Round 0 warms both up and is not counted.
        for round_number in range(rounds + 1):
            through_api = _records(f"a{stamp}-{round_number}-", count, charges)
            through_command = _records(f"c{stamp}-{round_number}-", count, charges)
            steps = [
                (api, functools.partial(_post_usage, client, through_api)),
                (command, functools.partial(_import_usage, directory, through_command)),
            ]
            if round_number % 2:
                steps.reverse()
            for samples, step in steps:
                elapsed = step()
                if round_number:
                    samples.append(elapsed)
    figures = {
        "usage_records_per_request": count,
        "usage_rounds": rounds,
        "api_usage_p50_ms": round(1000 * percentile(api, 0.5), 1),
        "import_usage_p50_ms": round(1000 * percentile(command, 0.5), 1),
        "api_usage_vs_import": round(percentile(api, 0.5) / percentile(command, 0.5), 2),
    }
    progress(f"usage: API vs import_usage (p50) {figures['api_usage_vs_import']}")
    return figures
