"""Bulk writes for PostgreSQL: reserve ids from a table's sequence, then COPY.

``bulk_create`` spends most of its time building model instances and
compiling parameters; COPY streams plain rows. Both the importer and the bill
run engine write hundreds of thousands of rows this way.
"""

from collections.abc import Iterable
from typing import Any

from django.db import connection


def reserve_ids(cursor, model, count: int) -> list[int]:
    """``count`` fresh primary keys from ``model``'s id sequence."""
    if not count:
        return []
    cursor.execute(
        "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
        [model._meta.db_table, model._meta.pk.column, count],
    )
    return [row[0] for row in cursor.fetchall()]


def copy_rows(cursor, model, rows: Iterable[dict[str, Any]], *, with_pk: bool = True) -> None:
    """COPY ``rows`` (attname -> value) into ``model``'s table; a field a row
    leaves out gets its model default, as bulk_create would give it. Without
    ``with_pk`` the database numbers the rows itself."""
    fields = [f for f in model._meta.concrete_fields if with_pk or not f.primary_key]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    defaults = [(f.attname, f.get_default()) for f in fields]
    sql = f"COPY {quote(model._meta.db_table)} ({columns}) FROM STDIN"
    # cursor.cursor is psycopg's own cursor under Django's wrapper; wrapping
    # its errors keeps them Django's (an IntegrityError stays an IntegrityError).
    with connection.wrap_database_errors, cursor.cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row([row.get(name, default) for name, default in defaults])
