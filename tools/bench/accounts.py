"""The benchmark book loaded as an operator loads it: ``manage.py
import_accounts FILE`` in a child process, timed (wall, from start to exit),
with its peak memory (the child's high-water resident set size, VmHWM);
then, on PostgreSQL, the floor: ``COPY`` of the same rows
(every row the import wrote into the accounts, subscriptions, charges,
pricings, tiers and tax codes tables, as the database holds them) into the
same tables, emptied by a ``TRUNCATE`` in a transaction that is rolled back
(the import's rows are left as they were), foreign keys checked as each row
arrives (the import's are checked at its commit).

Figures (``bench_billrun --json`` keys): ``load_s`` (the import's wall),
``import_peak_rss_mb``, ``import_cpu_s`` (the child's own CPU, not its
database server's), ``import_copy_s`` (the floor; None on SQLite),
``import_vs_copy`` (``load_s`` ÷ the floor), ``import_file_mb``.
"""

import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction

from customers.models import Account, AccountTaxCode, Charge, Pricing, PricingTier, Subscription

# In the order the import writes them (and the floor copies them back).
IMPORTED_MODELS = (Account, Subscription, Pricing, PricingTier, Charge, AccountTaxCode)


# How often the child's peak memory is read.
PEAK_POLL_S = 0.01


class ImportFailed(Exception):
    """import_accounts did not import the book."""


def import_in_child(path: Path) -> tuple[float, float, float, str]:
    """Run ``manage.py import_accounts path`` in a child process with this
    process's environment (its database); returns its wall seconds, its peak
    RSS in MB, its CPU seconds (user and system, from this process's
    children's usage before and after) and what it printed. Raises
    ImportFailed when it fails.

    The peak is the child's VmHWM, read every few milliseconds while it runs:
    its ``ru_maxrss`` would count this process's own high-water mark, which
    a child inherits through fork and exec."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen(  # noqa: S603 (this interpreter, this project's manage.py)
            [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "import_accounts", path],
            cwd=settings.BASE_DIR,
            stdout=out,
            stderr=err,
        )
        peak_kb = 0
        status = Path(f"/proc/{child.pid}/status")
        while child.poll() is None:
            peak_kb = max(peak_kb, _high_water_kb(status))
            time.sleep(PEAK_POLL_S)
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        out.seek(0)
        err.seek(0)
        said, complaint = out.read().decode(), err.read().decode()
    if child.returncode != 0:
        raise ImportFailed(f"import_accounts exited {child.returncode}: {complaint[:2000]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, peak_kb / 1024, cpu, said.strip()


def _high_water_kb(status: Path) -> int:
    try:
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def copy_floor() -> float | None:
    """Seconds to COPY the imported rows back into their tables (emptied in
    a transaction that is rolled back); None where the database is not
    PostgreSQL."""
    if connection.vendor != "postgresql":
        return None
    quote = connection.ops.quote_name
    tables = [quote(model._meta.db_table) for model in IMPORTED_MODELS]
    with transaction.atomic(), connection.cursor() as cursor:
        rows = {}
        for table in tables:
            data = io.BytesIO()
            with cursor.cursor.copy(f"COPY {table} TO STDOUT") as copy:
                for block in copy:
                    data.write(block)
            rows[table] = data.getvalue()
        cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
        # The foreign keys checked as the rows arrive: the import's are
        # checked too, at its commit.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        started = time.perf_counter()
        for table in tables:
            with cursor.cursor.copy(f"COPY {table} FROM STDIN") as copy:
                data = rows[table]
                for start in range(0, len(data), 1 << 20):
                    copy.write(data[start : start + (1 << 20)])
        elapsed = time.perf_counter() - started
        transaction.set_rollback(True)
    return elapsed


def import_book(book: dict, *, progress) -> dict:
    """Write ``book`` to a file, import it with import_accounts in a child
    process, then measure the floor; returns the figures (module doc)."""
    with tempfile.TemporaryDirectory(prefix="bench-accounts-") as folder:
        path = Path(folder) / "book.json"
        with path.open("w") as stream:
            json.dump(book, stream)
        size_mb = path.stat().st_size / 1e6
        elapsed, peak_rss_mb, cpu_s, said = import_in_child(path)
    progress(
        f"import_accounts: {said} in {elapsed:.2f} s ({cpu_s:.2f} s of CPU), "
        f"peak RSS {peak_rss_mb:.1f} MB"
    )
    floor_s = copy_floor()
    if floor_s is not None:
        progress(f"COPY of the same rows: {floor_s:.2f} s")
    return {
        "load_s": round(elapsed, 3),
        "charges": Charge.objects.count(),
        "import_file_mb": round(size_mb, 1),
        "import_peak_rss_mb": round(peak_rss_mb, 1),
        "import_cpu_s": round(cpu_s, 3),
        "import_copy_s": round(floor_s, 3) if floor_s is not None else None,
        "import_vs_copy": round(elapsed / floor_s, 2) if floor_s else None,
    }
