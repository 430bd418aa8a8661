"""CPU time of ``import_usage`` on the benchmark's usage book, in one process.

On an empty PostgreSQL database (migrated)::

    DATABASE_URL=postgres://... DJANGO_SETTINGS_MODULE=billing_site.settings \\
        .venv/bin/python -m tools.bench.usage_import setup N_ACCOUNTS DIR RECORDS...

loads the benchmark book (``tools.books.benchmark_book``, 2 subscriptions an
account), its usage charges (``benchmark_usage_charges_write``) and writes,
for each RECORDS, ``DIR/usage-RECORDS.csv`` as ``bench_billrun
--usage-records`` writes it (the charges a first run bills, ids in order).
Then::

    .venv/bin/python -m tools.bench.usage_import import FILE [LABEL]

empties the records table, ``CHECKPOINT``s, imports FILE in this process and
prints one JSON line: this process's CPU (``py``), its PostgreSQL backend's
(``pg``, read from ``/proc``: the server runs on this machine), wall time,
records/s and peak RSS. With ``PHASES=1`` it also prints the backend CPU
of each kind of statement (its first 60 characters), the COPY included in
its end. With ``KEEP=1`` the records are not emptied first
(a second import of the same file: all already recorded).
"""

import json
import os
import resource
import sys
import time

import django


def setup(accounts, directory, sizes):
    from customers.importer import accounts_import
    from tools.bench.billrun import _billed_usage_charges
    from tools.books import benchmark_book, benchmark_usage_charges_write
    from tools.usage import benchmark_usage_csv

    accounts_import(document=benchmark_book(accounts, 2))
    benchmark_usage_charges_write()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    charges = list(_billed_usage_charges())
    for size in sizes:
        path = os.path.join(directory, f"usage-{size}.csv")
        with open(path, "w", encoding="utf-8", newline="") as out:
            benchmark_usage_csv(out, charges=charges, records=size)
        print(path, len(charges))


def _phases(connection):
    """Wrap the cursors' execute to add the backend CPU of each statement."""
    from django.db.backends import utils

    from tools.bench.cpu import backend_cpu

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]

    def cpu():
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    spent = {}
    plain = utils.CursorWrapper.execute

    def execute(self, sql, params=None):
        before = cpu()
        try:
            return plain(self, sql, params)
        finally:
            key = " ".join(sql.split())[:60]
            spent[key] = spent.get(key, 0) + cpu() - before

    utils.CursorWrapper.execute = execute
    del backend_cpu
    return spent


def run_import(path, label):
    from django.db import connection

    from invoices.usage import usage_import_file
    from tools.bench.cpu import backend_cpu

    if not os.environ.get("KEEP"):
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE customers_usagerecord")
            cursor.execute("CHECKPOINT")
    spent = _phases(connection) if os.environ.get("PHASES") else None
    backend, own, wall = backend_cpu(connection), time.process_time(), time.perf_counter()
    summary = usage_import_file(path=path)
    wall = time.perf_counter() - wall
    records = summary.imported + summary.already_recorded
    print(
        json.dumps(
            {
                "tree": label,
                "file": os.path.basename(path),
                "summary": str(summary),
                "py": round(time.process_time() - own, 2),
                "pg": round(backend_cpu(connection) - backend, 2),
                "wall": round(wall, 2),
                "records_per_s": round(records / wall),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "load": os.getloadavg()[0],
            }
        )
    )
    if spent is not None:
        for sql, seconds in sorted(spent.items(), key=lambda item: -item[1]):
            if seconds >= 0.02:
                print(f"{seconds:6.2f} {sql}")


if __name__ == "__main__":
    django.setup()
    if sys.argv[1] == "setup":
        setup(int(sys.argv[2]), sys.argv[3], [int(n) for n in sys.argv[4:]])
    else:
        run_import(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "")
