"""Bulk writes: on PostgreSQL, reserve ids from a table's sequence, then
COPY; on SQLite, reserve ids above the table's AUTOINCREMENT counter, then
``executemany`` of plain tuples.

``bulk_create`` spends most of its time building model instances and
compiling parameters; COPY streams plain rows. Both the importer and the bill
run engine write hundreds of thousands of rows this way.
"""

import datetime
import json
import re
import uuid
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from django.db import connection, models
from django.db.models import Lookup

from core.fields import ExactDecimalField

# COPY's text format: a backslash, tab, newline or carriage return in a value
# is written as its escape; NULL is \N.
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
# Rows written to the server per write(): large enough that the per-call cost
# vanishes, small enough that a chunk's COPY never holds much memory.
_ROWS_PER_WRITE = 1000


def _copy_text(value) -> str:
    """``value`` as one field of COPY's text format."""
    if value is None:
        return "\\N"
    kind = type(value)
    if kind is str:
        return value.translate(_ESCAPES)
    if kind is int or kind is Decimal:
        return str(value)
    if kind is datetime.date or kind is datetime.datetime:
        return value.isoformat()
    if kind is uuid.UUID:
        return str(value)
    if kind is dict or kind is list:
        return json.dumps(value).translate(_ESCAPES)
    # bool, and subclasses such as the str and int enums of model choices.
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, str):
        return str.translate(value, _ESCAPES)
    raise TypeError(f"cannot COPY a {kind.__name__}: {value!r}")


def reserve_ids(cursor, model, count: int) -> list[int]:
    """``count`` fresh primary keys from ``model``'s id sequence."""
    if not count:
        return []
    # The sequence is looked up once: called in the select list, the look-up
    # ran for every row (measured: 2.7 s of the server's time for the 560,000
    # ids of a 100,000-account import, against 0.3 s for nextval alone).
    cursor.execute(
        "SELECT pg_get_serial_sequence(%s, %s)", [model._meta.db_table, model._meta.pk.column]
    )
    sequence = cursor.fetchone()[0]
    cursor.execute("SELECT nextval(%s::regclass) FROM generate_series(1, %s)", [sequence, count])
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
    # The rows are formatted here, a block of lines per write(): psycopg's
    # write_row() adapts value by value and was the larger part of a bill
    # run's Python time in COPY.
    with connection.wrap_database_errors, cursor.cursor.copy(sql) as copy:
        lines = []
        for row in rows:
            lines.append(
                "\t".join([_copy_text(row.get(name, default)) for name, default in defaults])
            )
            if len(lines) >= _ROWS_PER_WRITE:
                copy.write("\n".join(lines) + "\n")
                lines = []
        if lines:
            copy.write("\n".join(lines) + "\n")


def copy_columns(model, first: Sequence[str], *, with_pk: bool = True):
    """The fields of ``model`` as ``copy_lines`` writes them: the attnames of
    ``first`` (given apart, row by row), then every other concrete field
    with its default (``row_text``'s)."""
    fields = [f for f in model._meta.concrete_fields if with_pk or not f.primary_key]
    rest = [(f.attname, f.get_default()) for f in fields if f.attname not in first]
    return [*first, *(name for name, _ in rest)], rest


def _plain_text(value: str) -> str:
    return value.translate(_ESCAPES) if _NEEDS_ESCAPE(value) else value


_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r]").search
# _copy_text of the commonest types, looked up by type: one call a value.
_TEXT_OF_TYPE = {
    str: _plain_text,
    int: int.__str__,
    Decimal: Decimal.__str__,
    datetime.date: datetime.date.isoformat,
    datetime.datetime: datetime.datetime.isoformat,
    bool: lambda value: "t" if value else "f",
    type(None): lambda value: "\\N",
}


def row_text(row: dict[str, Any], defaults: list[tuple[str, Any]]) -> str:
    """The fields ``defaults`` names (attname, default) of ``row`` as COPY's
    text format (``_copy_text``'s), tab-separated: a part of a line for
    ``copy_lines``."""
    get, of_type = row.get, _TEXT_OF_TYPE.get
    parts = []
    for name, default in defaults:
        value = get(name, default)
        parts.append(of_type(type(value), _copy_text)(value))
    return "\t".join(parts)


def field_text(value) -> str:
    """One value as COPY's text format."""
    return _copy_text(value)


def copy_lines(cursor, model, attnames: Sequence[str], lines: Iterable[str]) -> None:
    """COPY ``lines`` (text format, one row each, without their newline)
    into ``model``'s columns ``attnames``, a block of lines per write()."""
    by_attname = {f.attname: f.column for f in model._meta.concrete_fields}
    copy_table_lines(cursor, model._meta.db_table, [by_attname[name] for name in attnames], lines)


class CopyEscaped(dict):
    """str -> the str as one field of COPY's text format, each escaped once:
    ``escaped[value]``. A bill run's texts repeat (charge names, units, the
    empty rating), and a lookup costs less than escaping again."""

    def __missing__(self, value: str) -> str:
        escaped = self[value] = value.translate(_ESCAPES)
        return escaped


def copy_table_lines(cursor, table: str, columns: Iterable[str], lines: Iterable[str]) -> None:
    """COPY ``lines`` (each a row already in COPY's text format, without its
    newline: its text escaped (``CopyEscaped``), ``\\N`` for NULL) into ``columns`` of
    ``table``. For the hottest writes, whose rows a caller formats in one
    f-string each (a bill run's items): several times cheaper than
    ``copy_rows``' call per value."""
    quote = connection.ops.quote_name
    sql = f"COPY {quote(table)} ({', '.join(quote(c) for c in columns)}) FROM STDIN"
    with connection.wrap_database_errors, cursor.cursor.copy(sql) as copy:
        block = []
        for line in lines:
            block.append(line)
            if len(block) >= _ROWS_PER_WRITE:
                block.append("")
                copy.write("\n".join(block))
                block = []
        if block:
            block.append("")
            copy.write("\n".join(block))


def bigint_array(ids: Iterable[int]) -> str:
    """``ids`` as a PostgreSQL array literal, for a ``%s::bigint[]``
    parameter: psycopg dumps a list parameter value by value in Python,
    which for a chunk's thousands of ids cost more than the query."""
    return "{" + ",".join(map(str, map(int, ids))) + "}"


def date_array(dates: Iterable[datetime.date | None]) -> str:
    """``dates`` as a PostgreSQL array literal, for a ``%s::date[]`` (None:
    NULL, a charge rolled back to its start by an adjustment)."""
    return "{" + ",".join(["NULL" if day is None else day.isoformat() for day in dates]) + "}"


class AnyOf(Lookup):
    """``field__anyof=[ids]``: the rows whose value is one of ``ids``.

    On PostgreSQL it is ``= ANY(%s::bigint[])`` with the list as one array
    literal (``bigint_array``); Django's ``__in`` prepares every value of the list through the
    field, which with a chunk's thousand ids a query was a large part of a
    bill run's Python time. Elsewhere it is a plain IN. For integer keys;
    registered on them by ``CustomersConfig.ready()``.
    """

    lookup_name = "anyof"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        ids = [int(item) for item in self.rhs]
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY(%s::bigint[])", [*lhs_params, bigint_array(ids)]
        if not ids:
            return "1 = 0", list(lhs_params)
        return f"{lhs} IN ({', '.join(['%s'] * len(ids))})", [*lhs_params, *ids]


def sqlite_reserve_ids(cursor, model, count: int) -> list[int]:
    """SQLite: ``count`` fresh primary keys of ``model``'s table, above every
    id it holds or ever held (AUTOINCREMENT's counter, which an explicit id
    moves on). Only inside a transaction that holds the write lock (the
    IMMEDIATE mode of billing_site.settings takes it at BEGIN): no other
    writer can take the same ids before this one commits."""
    if not connection.in_atomic_block:
        raise RuntimeError("sqlite_reserve_ids needs the write lock of a transaction")
    if not count:
        return []
    table, pk = connection.ops.quote_name(model._meta.db_table), model._meta.pk.column
    cursor.execute(
        f"SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = %s), 0), "  # noqa: S608
        f"coalesce((SELECT max({connection.ops.quote_name(pk)}) FROM {table}), 0))",
        [model._meta.db_table],
    )
    last = cursor.fetchone()[0]
    return list(range(last + 1, last + 1 + count))


def _isoformat(value):
    return None if value is None else value.isoformat()


def _sqlite_writer(field, sqlite):
    """How a value of ``field`` is handed to SQLite's driver: as it is where
    the driver takes it (integers, text, booleans, None), ISO text for a
    date, and the field's own preparation for the rest (exact decimals as
    integer units, refused when they do not fit; aware datetimes; JSON).
    ``sqlite``: the database connection (a cursor's ``db``, not the proxy
    ``django.db.connection``, which looks it up again on every use)."""
    if isinstance(field, models.DateField) and not isinstance(field, models.DateTimeField):
        return _isoformat
    if isinstance(
        field, (models.IntegerField, models.CharField, models.TextField, models.BooleanField)
    ) or (field.is_relation and isinstance(field.target_field, models.IntegerField)):
        return None
    if isinstance(field, ExactDecimalField):
        return lambda value: field.sqlite_units(value, sqlite)
    return lambda value: field.get_db_prep_save(value, sqlite)


def sqlite_insert_rows(cursor, model, attnames: Sequence[str], rows: Iterable[Sequence]) -> None:
    """SQLite: INSERT ``rows`` (tuples of values in ``attnames``' order) into
    ``model``'s table with one ``executemany``; each value goes through what
    its field needs (``_sqlite_writer``), no model instance is built."""
    fields = [model._meta.get_field(name) for name in attnames]
    for field in fields:
        if field.attname not in attnames:
            raise ValueError(f"{model.__name__}: name the column {field.attname}, not {field.name}")
    writers = [(index, _sqlite_writer(field, cursor.db)) for index, field in enumerate(fields)]
    writers = [(index, writer) for index, writer in writers if writer is not None]
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} "  # noqa: S608 (names from the model)
        f"({', '.join(quote(field.column) for field in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )
    if writers:
        prepared = []
        for row in rows:
            row = list(row)
            for index, writer in writers:
                row[index] = writer(row[index])
            prepared.append(row)
    else:
        prepared = list(rows)
    if prepared:
        cursor.executemany(sql, prepared)


def sqlite_insert_dicts(cursor, model, rows: Sequence[dict[str, Any]], *, with_pk=True) -> None:
    """``sqlite_insert_rows`` of dicts (attname -> value); a field a row
    leaves out gets its model default, as ``copy_rows`` gives it."""
    fields = [f for f in model._meta.concrete_fields if with_pk or not f.primary_key]
    defaults = [(f.attname, f.get_default()) for f in fields]
    sqlite_insert_rows(
        cursor,
        model,
        [name for name, _ in defaults],
        ([row.get(name, default) for name, default in defaults] for row in rows),
    )
