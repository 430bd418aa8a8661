"""CPU time of loading a benchmark book and generating its run, in one process.

On a shared machine wall times swing with the load; the CPU a step costs
(this process's own and its PostgreSQL backend's) is steadier, and is what
side-by-side comparisons of two trees read (docs/benchmarks.md). On an
empty PostgreSQL database:

    DATABASE_URL=postgres://... DJANGO_SETTINGS_MODULE=billing_site.settings \\
        N=20000 .venv/bin/python -m tools.bench.cpu LABEL

prints one JSON line: seconds of CPU for the load and the generation, each
split into Python and database, and the wall times.

With ``CHANGES=F`` (issue 14, as ``bench_billrun --changes F``): the run is
posted, and the next month's run is generated twice side by side, without
changes (then canceled and deleted) and after a fraction F of the
subscriptions changed (``gen2_*`` and ``gen2_changed_*``).
"""

import datetime
import json
import os
import sys
import time

import django


def backend_cpu(connection):
    """The CPU seconds the connection's PostgreSQL backend has used (the
    server runs on this machine: its /proc is readable)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(connection, step):
    backend, own, wall = backend_cpu(connection), time.process_time(), time.perf_counter()
    result = step()
    return (
        result,
        round(time.process_time() - own, 2),
        round(backend_cpu(connection) - backend, 2),
        round(time.perf_counter() - wall, 2),
    )


def main(label):
    django.setup()
    from django.db import connection

    from billruns import services
    from customers.importer import accounts_import
    from invoices.models import DocumentItem
    from tools.books import benchmark_book

    book = benchmark_book(int(os.environ.get("N", "20000")), 2)
    _, load_py, load_pg, load_wall = measure(connection, lambda: accounts_import(document=book))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")

    def generate():
        run = services.bill_run_create(target_date=datetime.date(2026, 3, 1), enqueue=False)
        return services.bill_run_execute(run_id=run.pk)

    run, gen_py, gen_pg, gen_wall = measure(connection, generate)
    more = {}
    if os.environ.get("CHANGES"):
        more = _changes(connection, run, float(os.environ["CHANGES"]))
    print(
        json.dumps(
            {
                **more,
                "tree": label,
                "load_py": load_py,
                "load_pg": load_pg,
                "load_wall": load_wall,
                "gen_py": gen_py,
                "gen_pg": gen_pg,
                "gen_wall": gen_wall,
                "status": run.status,
                "items": DocumentItem.objects.count(),
            }
        )
    )


def _changes(connection, first, fraction):
    from billruns import services
    from invoices.models import DocumentItem
    from tools.bench.billrun import CHANGES_TARGET_DATE, _analyze, _bench_user, _changes

    user = _bench_user()
    services.bill_run_post(run=first, user=user, wait=True)
    _analyze()

    def generate():
        run = services.bill_run_create(target_date=CHANGES_TARGET_DATE, enqueue=False)
        return services.bill_run_execute(run_id=run.pk)

    run, py, pg, wall = measure(connection, generate)
    figures = {"gen2_py": py, "gen2_pg": pg, "gen2_wall": wall}
    figures["gen2_items"] = DocumentItem.objects.filter(document__bill_run=run).count()
    run = services.bill_run_cancel(run=run, user=user, wait=True)
    services.bill_run_delete(run=run, user=user)
    _analyze()
    applied = _changes(fraction, user, progress=lambda line: None)
    run, py, pg, wall = measure(connection, generate)
    figures.update(
        {
            "changed_subscriptions": applied["changed_subscriptions"],
            "changes_apply_s": applied["changes_apply_s"],
            "gen2_changed_py": py,
            "gen2_changed_pg": pg,
            "gen2_changed_wall": wall,
            "gen2_changed_items": DocumentItem.objects.filter(document__bill_run=run).count(),
            "gen2_changed_status": run.status,
        }
    )
    return figures


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")
