"""The floors a bill run's generation and posting are measured against, in
the same run (issue 18).

- ``write_floor(run)``: writing the run's documents, items and tax lines
  again, as plain rows, into scratch tables with the same columns, indexes,
  checks **and foreign keys** as the real ones (the keys reference the real
  tables, which hold every row they name), the keys checked before the
  clock stops. PostgreSQL: one ``COPY`` per table in one transaction, rolled
  back (regular tables, WAL-logged as the real ones; a temporary table could
  not have the keys). SQLite: ``executemany`` of the same rows in one
  transaction, committed (its deferred keys are checked at the commit), the
  tables dropped after.
- ``post_floor(run, user)``: one set-based ``UPDATE`` of the rows the posting
  posts (the run's Draft invoices, and credit memos with Advanced AR) to
  Posted, in the real table, rolled back; on PostgreSQL the table is then
  vacuumed of the dead row versions, so the real posting finds it as the
  run left it.

Both return seconds of wall time.
"""

import io
import time

from django.db import connection, transaction
from django.utils import timezone

from invoices.models import (
    Document,
    DocumentItem,
    DocumentStatus,
    DocumentTax,
    DocumentType,
    TenantSettings,
)

SCRATCH = "bench_floor_"


class _RolledBack(Exception):
    """Leaves a transaction.atomic block by rolling it back."""


def _run_rows(run):
    """(table, WHERE) of the run's documents, items and tax lines."""
    documents = Document._meta.db_table
    of_run = f"document_id IN (SELECT id FROM {documents} WHERE bill_run_id = {int(run.pk)})"  # noqa: S608
    return [
        (documents, f"bill_run_id = {int(run.pk)}"),
        (DocumentItem._meta.db_table, of_run),
        (DocumentTax._meta.db_table, of_run),
    ]


def write_floor(run):
    if connection.vendor == "postgresql":
        return _copy_floor(run)
    return _executemany_floor(run)


def _copy_floor(run):
    buffers = {}
    with connection.cursor() as cursor:
        for table, where in _run_rows(run):
            data = io.BytesIO()
            with cursor.cursor.copy(
                f"COPY (SELECT * FROM {table} WHERE {where}) TO STDOUT"  # noqa: S608
            ) as copy:
                for block in copy:
                    data.write(block)
            buffers[table] = data.getvalue()
    elapsed = None
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            for table in buffers:
                cursor.execute(f"CREATE TABLE {SCRATCH}{table} (LIKE {table} INCLUDING ALL)")
                cursor.execute(
                    "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY conname",
                    [table],
                )
                for (definition,) in cursor.fetchall():
                    cursor.execute(f"ALTER TABLE {SCRATCH}{table} ADD {definition}")
            started = time.perf_counter()
            for table, data in buffers.items():
                if data:
                    with cursor.cursor.copy(f"COPY {SCRATCH}{table} FROM STDIN") as copy:
                        copy.write(data)
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the keys' checks, now
            elapsed = time.perf_counter() - started
            raise _RolledBack
    except _RolledBack:
        pass
    return elapsed


def _executemany_floor(run):
    rows = {}
    with connection.cursor() as cursor:
        for table, where in _run_rows(run):
            cursor.execute(f"SELECT * FROM {table} WHERE {where}")  # noqa: S608
            rows[table] = cursor.fetchall()
        for table in rows:
            cursor.execute(
                "SELECT type, sql FROM sqlite_master WHERE tbl_name = %s AND sql IS NOT NULL "
                "ORDER BY type DESC",  # the table before its indexes
                [table],
            )
            for kind, sql in cursor.fetchall():
                if kind == "table":
                    sql = sql.replace(f'"{table}"', f'"{SCRATCH}{table}"', 1)
                else:
                    name, rest = sql.split(" ON ", 1)
                    name = name.replace('INDEX "', f'INDEX "{SCRATCH}', 1)
                    rest = rest.replace(f'"{table}"', f'"{SCRATCH}{table}"', 1)
                    sql = f"{name} ON {rest}"
                cursor.execute(sql)
    try:
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            for table, values in rows.items():
                if values:
                    marks = ", ".join(["%s"] * len(values[0]))
                    cursor.executemany(
                        f'INSERT INTO "{SCRATCH}{table}" VALUES ({marks})',  # noqa: S608
                        values,
                    )
        return time.perf_counter() - started
    finally:
        with connection.cursor() as cursor:
            for table in reversed(list(rows)):
                cursor.execute(f'DROP TABLE IF EXISTS "{SCRATCH}{table}"')


def post_floor(run, user):
    types = [DocumentType.INVOICE]
    if TenantSettings.current().advanced_ar_settlement:
        types.append(DocumentType.CREDIT_MEMO)
    table = Document._meta.db_table
    elapsed = None
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            started = time.perf_counter()
            cursor.execute(
                f"UPDATE {table} SET status = %s, posted_at = %s, posted_by_id = %s, "  # noqa: S608
                "balance = amount WHERE bill_run_id = %s AND status = %s "
                f"AND document_type IN ({', '.join(['%s'] * len(types))})",
                [
                    DocumentStatus.POSTED,
                    timezone.now(),
                    user.pk,
                    run.pk,
                    DocumentStatus.DRAFT,
                    *types,
                ],
            )
            elapsed = time.perf_counter() - started
            raise _RolledBack
    except _RolledBack:
        pass
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM {table}")
    return elapsed
