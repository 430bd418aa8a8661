"""Recording usage: ``manage.py import_usage FILE`` (INTERFACES.md, "Usage").

It lives in ``invoices``, not beside the records in ``customers``: a record
for a period a document already billed is refused naming that document, so
the import reads documents, and customers never imports invoices.

On PostgreSQL, a file that can be read twice (a path, not an upload's
parts nor a pipe) is first recorded **written once** (``_write_once``): the
records are COPYed straight into their table, each line's charge number
resolved and its date checked against one query of the usage charges made
before reading, and that query is made again under the locks for the
charges written: it must give the same. Most files (new records of charges
that take them, after their billed periods) end there. Anything else (a
line with a problem or in doubt, an id recorded before or repeated) rolls
that back and the file is read again by the staging path below, which
finds every problem with its line, sorts out the ids and records the rest.

The staging path: the file is streamed: each line is checked on its own in
Python as it is read (its cells) and written to a staging table (one COPY open for the
whole file on PostgreSQL, ``executemany`` on SQLite); what needs other lines or the database (ids
recorded before or twice in the file, the charges, the billed periods) is
then checked set-based on the staging table, and the records are merged in
with one ``INSERT ... SELECT``. Memory does not grow with the file: the
Python side holds one block of lines and the first problems.

All of it is one transaction: any problem, nothing recorded. Inside it, the
import takes the row locks of the accounts whose charges it records, in id
order, before it reads their charges and billed periods, and keeps them to
its commit: the lock a bill run's chunk takes before it reads their usage
(docs/architecture.md, "Lock order"). So a record and a run reaching the same
piece at once are ordered: the run either sums the record or has billed the
piece first, and then the import sees the document and refuses the record.
Two imports at once are ordered too (a transaction-level advisory lock on
PostgreSQL; SQLite has one writer): ids are compared with all that was
recorded before.

The SQL here is assembled from this module's constants and table names
only; every value from the file reaches the database through COPY or as a
query parameter.
"""

import codecs
import contextlib
import csv
import datetime
import io
import queue
import re
import sys
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from typing import IO

from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from psycopg.copy import LibpqWriter

from core.dates import DATE_PATTERN, date_range_problem
from customers.models import (
    USAGE_QUANTITY,
    Account,
    ChargeType,
    Status,
    UsageRecord,
    number_problem,
    record_id_problem,
)
from customers.pricing import plain
from invoices.models import DocumentItem, ItemKind

MAX_REPORTED_PROBLEMS = 100
HEADER = ["id", "charge", "date", "quantity"]
HEADER_TEXT = ",".join(HEADER)
# Lines per write to the staging table: large enough that the per-call cost
# vanishes, small enough that the block in memory stays far below a megabyte.
STAGE_BLOCK = 5000
# Distinct date strings remembered while reading (a file has a few hundred):
# bounded, so a file of all-different garbage dates cannot grow it.
DATE_CACHE_SIZE = 4096
# pg_advisory_xact_lock key of the usage import ("usag").
PG_IMPORT_LOCK = 0x75736167
# The import transaction's work_mem: its hash joins and groupings over the
# staged lines (about 100 bytes each) stay in memory up to a million lines.
PG_WORK_MEM = "128MB"
# Staged lines inserted per statement on PostgreSQL, sorted by charge and
# date (``_record``): a sort of this many fits in PG_WORK_MEM.
RECORD_RUN = 250_000
# The records' BRIN on (charge, date) on PostgreSQL (customers 0014).
USAGE_INDEX = "usage_charge_date_quantity"
# What a quantity cell may look like: digits, and at most one point between
# digits. The limits (places, size) are checked apart, for their messages.
QUANTITY_PATTERN = re.compile(r"([0-9]+)(?:\.([0-9]+))?", re.ASCII)
QUANTITY_PLACES = USAGE_QUANTITY["decimal_places"]
QUANTITY_DIGITS = USAGE_QUANTITY["max_digits"] - QUANTITY_PLACES  # below 10^12
ENCODING_RULE = "usage files are UTF-8 text (a byte order mark is allowed): save it as UTF-8"


class UsageImportRefused(Exception):
    """The import was refused and nothing was recorded. ``problems`` holds
    the first MAX_REPORTED_PROBLEMS messages (``line 17, quantity: ...``),
    in line order; ``total`` counts all of them."""

    def __init__(self, problems: list[str], total: int | None = None):
        super().__init__(problems[0] if problems else "usage import refused")
        self.problems = problems
        self.total = len(problems) if total is None else total

    def lines(self) -> list[str]:
        more = self.total - len(self.problems)
        if more > 0:
            return [*self.problems, f"... and {more} more problems"]
        return list(self.problems)


@dataclass(frozen=True)
class UsageImportSummary:
    imported: int
    already_recorded: int

    def __str__(self) -> str:
        return f"imported {self.imported} usage records, {self.already_recorded} already recorded"


FIELD_ORDER = {"": 0, "id": 1, "charge": 2, "date": 3, "quantity": 4}


@dataclass
class _Problems:
    """The problems found so far: the first of each source, and a count."""

    count: int = 0
    found: list[tuple[int, int, str]] = field(default_factory=list)
    # The file could not be read to its end (a bad header, a line not CSV):
    # what was read is not checked against the database.
    stopped: bool = False

    def add(self, line: int, where: str, message: str) -> None:
        self.count += 1
        if len(self.found) < MAX_REPORTED_PROBLEMS:
            self.found.append((line, FIELD_ORDER[where], _message(line, where, message)))

    def add_counted(self, total: int, problems: list[tuple[int, str, str]]) -> None:
        """``total`` problems of one check, of which ``problems`` are the first."""
        self.count += total
        for line, where, message in problems:
            self.found.append((line, FIELD_ORDER[where], _message(line, where, message)))

    def refusal(self) -> UsageImportRefused:
        first = [text for _, _, text in sorted(self.found)[:MAX_REPORTED_PROBLEMS]]
        return UsageImportRefused(first, self.count)


def _message(line: int, where: str, message: str) -> str:
    return f"line {line}, {where}: {message}" if where else f"line {line}: {message}"


def _shown(value: str, limit: int = 40) -> str:
    """A cell as a message quotes it: repr-quoted, cut when long (a cell can
    be 100,000 characters)."""
    if len(value) > limit:
        return repr(value[:limit]) + f"... ({len(value):,} characters)"
    return repr(value)


# --- Reading the file ----------------------------------------------------------


def _text(stream: IO[bytes]) -> IO[str]:
    """The file as text, refusing UTF-16 and UTF-32 (as some spreadsheet
    programs save) from its first bytes. Bytes that are not UTF-8 further on
    are kept as escapes and refused with their line (``_not_utf8``)."""
    if not hasattr(stream, "peek"):
        stream = io.BufferedReader(stream)
    head = stream.peek(4)[:4]
    other = None
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        other = "UTF-32"
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        other = "UTF-16"
    elif b"\x00" in head:
        other = "UTF-16 or UTF-32 (it has NUL bytes)"
    if other:
        raise UsageImportRefused([f"line 1: the file is in {other}; {ENCODING_RULE}"])
    return io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")


def _not_utf8(value: str) -> str | None:
    """The message for a cell holding bytes that are not UTF-8, or None."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        byte = ord(value[exc.start]) - 0xDC00
        return f"is not UTF-8 text (byte 0x{byte:02x}); {ENCODING_RULE}"
    return None


def _date_problem(text: str) -> datetime.date | str:
    """The date of a cell, or why it is none."""
    if DATE_PATTERN.fullmatch(text):
        try:
            day = datetime.date.fromisoformat(text)
        except ValueError:
            return f"{_shown(text)} is not a calendar date"
        problem = date_range_problem(day)
        return f"the date {problem}" if problem else day
    if not text:
        return "must not be empty (a date YYYY-MM-DD)"
    return _not_utf8(text) or f"must be a date YYYY-MM-DD, not {_shown(text)}"


def _quantity_problem(text: str) -> str:
    """Why a cell that QUANTITY_PATTERN refused, or whose value is out of
    bounds, is not a quantity."""
    if not text:
        return "must not be empty (a decimal number 0 or more, such as 12 or 0.5)"
    match = QUANTITY_PATTERN.fullmatch(text)
    if match is None:
        if text.startswith("-") and QUANTITY_PATTERN.fullmatch(text[1:]):
            return f"must be 0 or more, not {_shown(text)}"
        return _not_utf8(text) or (
            f"must be a decimal number 0 or more, such as 12 or 0.5 (digits and one point, "
            f"no sign, exponent or spaces), not {_shown(text)}"
        )
    if len(match.group(2) or "") > QUANTITY_PLACES:
        return f"has at most {QUANTITY_PLACES} decimal places, not {_shown(text)}"
    return f"must be below 10^{QUANTITY_DIGITS} (1,000,000,000,000), not {_shown(text)}"


def _reader(text: IO[str], problems: _Problems):
    """A CSV reader positioned after the header, or None (with the problem)
    when the file does not start with it."""
    reader = csv.reader(text, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        header = exc
    if header == HEADER:
        return reader
    if header is None:
        message = f"the file is empty; it starts with the header {HEADER_TEXT}"
    elif isinstance(header, csv.Error):
        message = f"the header is not CSV ({header})"
    else:
        message = f"the header must be {HEADER_TEXT}, not {_shown(','.join(header), 80)}"
    problems.add(1, "", message)
    problems.stopped = True
    return None


# --- The staging table ----------------------------------------------------------


class _Staging:
    """The file's valid lines, in a temporary table of this transaction."""

    def __init__(self, cursor):
        self.cursor = cursor
        self.block = []
        self.count = 0
        # A bound of the staged lines' numbers (the last line read).
        self.last_line = 1
        self.copy = None
        self.postgresql = connection.vendor == "postgresql"
        if self.postgresql:
            cursor.execute(
                # The ids in the records' collation ("C": BytewiseCharField),
                # or no join on them could compare them with the records'.
                "CREATE TEMPORARY TABLE usage_import_rows (line bigint, "
                'record_id text COLLATE "C", charge_number text, date date, quantity numeric)'
            )
        else:
            # Quantities as integer units, as the records' column holds them.
            cursor.execute(
                "CREATE TEMPORARY TABLE usage_import_rows (line integer PRIMARY KEY, "
                "record_id text, charge_number text, date text, quantity integer)"
            )

    @contextlib.contextmanager
    def copying(self, *, open_for_file: bool):
        """On PostgreSQL with ``open_for_file``, one COPY open while the file
        is read: the server takes in a block while the next one is read and
        checked here (a COPY per block waits for the server at its end, the
        two sides taking turns). Nothing else can be sent on the connection
        meanwhile, so a stream that reads the database (an upload's parts)
        gets a COPY per block instead."""
        if not (self.postgresql and open_for_file):
            yield
            return
        with (
            connection.wrap_database_errors,
            self.cursor.cursor.copy("COPY usage_import_rows FROM STDIN") as copy,
        ):
            self.copy = copy
            try:
                yield
            finally:
                self.copy = None

    def flush(self):
        """Write the block (PostgreSQL: lines of COPY's text format, into the
        open COPY; SQLite: tuples) and empty it in place: the reading loop
        holds the same list."""
        if not self.block:
            return
        self.count += len(self.block)
        if self.copy is not None:
            with connection.wrap_database_errors:
                self.copy.write("".join(self.block))
        elif self.postgresql:
            with (
                connection.wrap_database_errors,
                self.cursor.cursor.copy("COPY usage_import_rows FROM STDIN") as copy,
            ):
                copy.write("".join(self.block))
        else:
            self.cursor.executemany(
                "INSERT INTO usage_import_rows VALUES (%s, %s, %s, %s, %s)", self.block
            )
        self.block.clear()


TEMPORARY_TABLES = [
    "usage_import_rows",
    "usage_import_charge_ids",
    "usage_import_charges",
    "usage_import_recorded",
    "usage_import_repeats",
]


def _temporary_table(name: str) -> str:
    """The start of a CREATE ... AS of a table of this import only: a refused
    import rolls it back, a successful one drops it (the import may run inside
    a longer transaction, so a table dropped at commit could still be there
    for the next import)."""
    return f"CREATE TEMPORARY TABLE {name}"


def _stage(text: IO[str], staging: _Staging, problems: _Problems) -> None:
    """Read the file, check each line's cells and stage the good ones.

    The hot path of a million lines: C-speed string tests first, the
    messages only on failure, one list append per line. A line's number is
    the record's first line (a quoted field may hold line breaks). A line
    that is not CSV stops the reading: what follows cannot be trusted."""
    reader = _reader(text, problems)
    if reader is None:
        return
    postgresql = staging.postgresql
    block = staging.block
    dates: dict[str, datetime.date | str] = {}
    read = reader.line_num
    try:
        for cells in reader:
            line, read = read + 1, reader.line_num
            if len(cells) != 4:
                if cells:
                    problems.add(line, "", f"expected 4 fields ({HEADER_TEXT}), not {len(cells)}")
                continue
            record_id, number, day, quantity = cells
            good = True
            if not (record_id.isascii() and record_id.isprintable() and 0 < len(record_id) <= 100):
                message = _not_utf8(record_id) or record_id_problem(record_id)
                problems.add(line, "id", message or "must be 1-100 printable ASCII characters")
                good = False
            # A charge's number has no space, control character or backslash
            # (number_problem): one that has cannot be any charge's, and one
            # that has not needs no escape in COPY.
            if (
                not (number.isascii() and number.isprintable())
                or not number
                or " " in number
                or "\\" in number
            ):
                message = _not_utf8(number) or _number_problem(number)
                if message:
                    problems.add(line, "charge", message)
                    good = False
            parsed = dates.get(day)
            if parsed is None:
                parsed = _date_problem(day)
                if len(dates) < DATE_CACHE_SIZE:
                    dates[day] = parsed
            if type(parsed) is str:
                problems.add(line, "date", parsed)
                good = False
            if quantity.isdigit() and quantity.isascii():
                whole, places = quantity, ""
            else:
                whole, _, places = quantity.partition(".")
                if not (places.isdigit() and whole.isdigit() and quantity.isascii()):
                    whole = None
            if (
                whole is None
                or len(places) > QUANTITY_PLACES
                or (len(whole) > QUANTITY_DIGITS and len(whole.lstrip("0")) > QUANTITY_DIGITS)
            ):
                problems.add(line, "quantity", _quantity_problem(quantity))
                good = False
            if not good:
                continue
            if postgresql:
                if "\\" in record_id:
                    record_id = record_id.replace("\\", "\\\\")
                block.append(f"{line}\t{record_id}\t{number}\t{day}\t{quantity}\n")
            else:
                units = int(whole + places.ljust(QUANTITY_PLACES, "0"))
                block.append((line, record_id, number, day, units))
            if len(block) >= STAGE_BLOCK:
                staging.flush()
    except csv.Error as exc:
        reason = str(exc)
        if reason.startswith("field larger than field limit"):
            reason = f"a field is longer than {csv.field_size_limit():,} characters"
        problems.add(read + 1, "", f"not CSV: {reason}; the rest of the file was not read")
        problems.stopped = True
    staging.flush()
    staging.last_line = reader.line_num


def _number_problem(number: str) -> str | None:
    """Why the cell cannot be any charge's number, or None."""
    if not number:
        return "must not be empty (a usage charge's number)"
    if number_problem(number):
        return f"unknown charge {_shown(number)} (no charge has this number)"
    return None


# --- The checks against the database ---------------------------------------------


def _quantity(value) -> str:
    """A quantity read from the database or the staging table, for a message."""
    if isinstance(value, int):
        value = Decimal(f"{value}E-{QUANTITY_PLACES}")
    return plain(Decimal(value))


def _day(value) -> str:
    return value.isoformat() if isinstance(value, datetime.date) else str(value)


def _live(alias: str) -> str:
    """``alias`` is an item on a document that is not canceled, nor a
    preview's (a preview bills nothing: usage in its periods is not late),
    written as the partial indexes on items say it (SQLite uses a partial
    index only for a condition it can match to the index's own)."""
    false = "false" if connection.vendor == "postgresql" else "0"
    return f"{alias}.document_canceled = {false} AND {alias}.preview = {false}"


def _find_charges(cursor) -> None:
    """The charge numbers the file names, each with its charge and account
    (none when no charge has the number) and the first and last date of its
    lines: one pass over the staged lines."""
    cursor.execute(
        f"{_temporary_table('usage_import_charge_ids')} AS "  # noqa: S608 (see the module)
        "SELECT c.id, f.charge_number AS number, s.account_id, f.first_date, f.last_date "
        "FROM (SELECT charge_number, min(date) AS first_date, max(date) AS last_date "
        "FROM usage_import_rows GROUP BY charge_number) AS f "
        "LEFT JOIN customers_charge AS c ON c.number = f.charge_number "
        "LEFT JOIN customers_subscription AS s ON s.id = c.subscription_id"
    )


def _lock(cursor) -> None:
    """Lock the accounts of the file's charges in id order, as a chunk of a
    bill run locks its accounts (docs/architecture.md, "Lock order"), so the
    two queue instead of deadlocking; and the charges themselves against a
    delete (``FOR KEY SHARE``, what a foreign key's check would take). SQLite
    has nothing to lock: the import's transaction holds the database's one
    write lock from its start."""
    if connection.vendor != "postgresql":
        return
    cursor.execute(
        "SELECT a.id FROM customers_account AS a "
        "WHERE a.id IN (SELECT account_id FROM usage_import_charge_ids) "
        "ORDER BY a.id FOR UPDATE"
    )
    cursor.execute(
        "SELECT c.id FROM customers_charge AS c "
        "WHERE c.id IN (SELECT id FROM usage_import_charge_ids) ORDER BY c.id FOR KEY SHARE"
    )


def _read_charges(cursor) -> None:
    """The file's charges as they are now, under the accounts' locks, with
    the span of what live items billed of each: most files record usage
    after the last billed period, and the exact check of billed periods is
    made only for the lines inside a span."""
    cursor.execute(
        f"{_temporary_table('usage_import_charges')} AS "  # noqa: S608 (see the module)
        "SELECT c.id, c.number, c.charge_type, c.start_date, c.end_date, "
        # A subscription a change canceled still takes usage before its
        # cancel date (the charges end there): it bills what it owes.
        "s.number AS subscription_number, "
        "CASE WHEN s.cancel_date IS NULL THEN s.status ELSE 'Active' END "
        "AS subscription_status, "
        "a.number AS account_number, a.status AS account_status, "
        "b.billed_from, b.billed_through "
        "FROM usage_import_charge_ids AS k "
        "JOIN customers_charge AS c ON c.id = k.id "
        "JOIN customers_subscription AS s ON s.id = c.subscription_id "
        "JOIN customers_account AS a ON a.id = s.account_id "
        "LEFT JOIN (SELECT i.charge_id, min(i.service_start) AS billed_from, "
        "max(i.service_end) AS billed_through FROM invoices_documentitem AS i "
        f"WHERE {_live('i')} AND i.charge_id IN (SELECT id FROM usage_import_charge_ids) "
        "GROUP BY i.charge_id) AS b ON b.charge_id = c.id"
    )
    cursor.execute(
        "CREATE UNIQUE INDEX usage_import_charges_number ON usage_import_charges (number)"
    )
    if connection.vendor == "postgresql":
        cursor.execute("ANALYZE usage_import_charges")


def _top(cursor, sql: str) -> tuple[int, list[tuple]]:
    """How many rows ``sql`` selects, and the first MAX_REPORTED_PROBLEMS of
    them by line (``sql`` selects the line first), in one pass."""
    cursor.execute(
        f"SELECT * FROM (SELECT p.*, count(*) OVER () AS total FROM ({sql}) AS p) AS q "  # noqa: S608
        f"ORDER BY 1 LIMIT {MAX_REPORTED_PROBLEMS}"
    )
    rows = cursor.fetchall()
    return (rows[0][-1] if rows else 0), [row[:-1] for row in rows]


def _recorded_before(cursor, problems: _Problems) -> bool:
    """Lines whose id is already recorded: the same record (same charge,
    date and quantity) counts as already recorded and is not checked again;
    other values are a problem. True when there is any such line."""
    cursor.execute(
        f"{_temporary_table('usage_import_recorded')} AS "  # noqa: S608 (see the module)
        "SELECT r.line, u.charge_id, u.date, u.quantity, "
        "CASE WHEN u.charge_id = ic.id AND u.date = r.date AND u.quantity = r.quantity "
        "THEN 1 ELSE 0 END AS same "
        "FROM usage_import_rows AS r "
        "JOIN customers_usagerecord AS u ON u.record_id = r.record_id "
        "LEFT JOIN usage_import_charges AS ic ON ic.number = r.charge_number"
    )
    cursor.execute("SELECT count(*) FROM usage_import_recorded")
    if not cursor.fetchone()[0]:
        return False
    total, rows = _top(
        cursor,
        "SELECT k.line, r.record_id, c.number, k.date, k.quantity "
        "FROM usage_import_recorded AS k JOIN usage_import_rows AS r ON r.line = k.line "
        "JOIN customers_charge AS c ON c.id = k.charge_id WHERE k.same = 0",
    )
    problems.add_counted(
        total,
        [
            (
                line,
                "id",
                f"{record_id} is already recorded with other values (charge {number}, "
                f"{_day(day)}, quantity {_quantity(quantity)}); the same id is the same record",
            )
            for line, record_id, number, day, quantity in rows
        ],
    )
    return True


def _repeated_in_file(cursor, problems: _Problems, *, recorded: bool) -> bool:
    """Ids on more than one line: a line that repeats the first line of its
    id is the same record; with other values it is a problem. True when
    there is any repeated id."""
    cursor.execute(
        f"{_temporary_table('usage_import_repeats')} AS "  # noqa: S608 (see the module)
        "SELECT record_id, min(line) AS first_line FROM usage_import_rows "
        "GROUP BY record_id HAVING count(*) > 1"
    )
    cursor.execute("SELECT count(*) FROM usage_import_repeats")
    if not cursor.fetchone()[0]:
        return False
    # A line whose id was recorded before is compared with the record instead.
    not_recorded = "AND r.line NOT IN (SELECT line FROM usage_import_recorded)" if recorded else ""
    total, rows = _top(
        cursor,
        "SELECT r.line, r.record_id, p.first_line FROM usage_import_rows AS r "  # noqa: S608
        "JOIN usage_import_repeats AS p ON p.record_id = r.record_id AND r.line > p.first_line "
        "JOIN usage_import_rows AS f ON f.line = p.first_line "
        "WHERE NOT (r.charge_number = f.charge_number AND r.date = f.date "
        f"AND r.quantity = f.quantity) {not_recorded}",
    )
    problems.add_counted(
        total,
        [
            (
                line,
                "id",
                f"{record_id} is also on line {first} with other values; an id is one record",
            )
            for line, record_id, first in rows
        ],
    )
    return True


def _new_lines(*, recorded: bool, repeated: bool) -> str:
    """The condition on ``r`` (a staging row) of a line that records a new
    record: neither recorded before nor repeating an earlier line."""
    conditions = ["1 = 1"]
    if recorded:
        conditions.append("r.line NOT IN (SELECT line FROM usage_import_recorded)")
    if repeated:
        conditions.append(
            "NOT EXISTS (SELECT 1 FROM usage_import_repeats AS p "
            "WHERE p.record_id = r.record_id AND p.first_line < r.line)"
        )
    return " AND ".join(conditions)


ALL_LINES = _new_lines(recorded=False, repeated=False)

# The charge ``ic`` takes usage at all; and on the date of line ``r``; and on
# all the dates of its lines (``k``: its row of usage_import_charge_ids).
TAKES_USAGE = (
    f"ic.charge_type = '{ChargeType.USAGE}' AND ic.account_status = '{Status.ACTIVE}' "
    f"AND ic.subscription_status = '{Status.ACTIVE}'"
)
ACCEPTS = (
    f"{TAKES_USAGE} AND r.date >= ic.start_date AND (ic.end_date IS NULL OR r.date < ic.end_date)"
)
SPAN_ACCEPTED = (
    f"{TAKES_USAGE} AND k.first_date >= ic.start_date "
    "AND (ic.end_date IS NULL OR k.last_date < ic.end_date)"
)


def _charges_may_refuse(cursor) -> bool:
    """Whether a line could have a problem of its charge or of a billed
    period, judged from the file's charges alone (a few per thousand lines):
    False when every number is a usage charge taking all the dates of its
    lines (from the first to the last) and no billed span of it meets them.
    The two exact checks below each join every line: skipped when False."""
    cursor.execute(
        "SELECT EXISTS (SELECT 1 FROM usage_import_charge_ids AS k "  # noqa: S608 (see the module)
        "LEFT JOIN usage_import_charges AS ic ON ic.id = k.id WHERE ic.id IS NULL "
        f"OR NOT ({SPAN_ACCEPTED}) OR (ic.billed_through IS NOT NULL "
        "AND k.first_date <= ic.billed_through AND k.last_date >= ic.billed_from))"
    )
    return bool(cursor.fetchone()[0])


def _charge_problems(cursor, problems: _Problems, new: str) -> None:
    """New lines whose charge does not take them: unknown, not a usage
    charge, of a Canceled account or subscription, or a date outside the
    charge's service."""
    total, rows = _top(
        cursor,
        "SELECT r.line, r.charge_number, r.date, ic.id, ic.charge_type, ic.account_number, "  # noqa: S608
        "ic.account_status, ic.subscription_number, ic.subscription_status, ic.start_date, "
        "ic.end_date FROM usage_import_rows AS r "
        "LEFT JOIN usage_import_charges AS ic ON ic.number = r.charge_number "
        f"WHERE {new} AND (ic.id IS NULL OR NOT ({ACCEPTS}))",
    )
    found = []
    for (
        line,
        number,
        day,
        charge_id,
        charge_type,
        account,
        account_status,
        subscription,
        subscription_status,
        start,
        end,
    ) in rows:
        if charge_id is None:
            message = ("charge", f"unknown charge {_shown(number)} (no charge has this number)")
        elif charge_type != ChargeType.USAGE:
            message = ("charge", f"{number} is a {charge_type} charge, not a usage charge")
        elif account_status != Status.ACTIVE:
            message = ("charge", f"{number} is a charge of account {account}, which is Canceled")
        elif subscription_status != Status.ACTIVE:
            message = (
                "charge",
                f"{number} is a charge of subscription {subscription}, which is Canceled",
            )
        elif _day(day) < _day(start):
            message = (
                "date",
                f"{_day(day)} is before the start of charge {number} ({_day(start)})",
            )
        else:
            message = (
                "date",
                f"{_day(day)} is on or after the end of charge {number} ({_day(end)}, exclusive)",
            )
        found.append((line, *message))
    problems.add_counted(total, found)


def _covers(alias: str, day: str) -> str:
    """The live item ``alias`` is a charge item that still covers ``day``: not
    reversed from its first day, nor by a live adjustment from ``day`` or
    before (BILLING_RULES.md, Subscription changes: what an item covers)."""
    false = "false" if connection.vendor == "postgresql" else "0"
    return (
        f"{_live(alias)} AND {alias}.kind = 'charge' AND {alias}.fully_reversed = {false} "  # noqa: S608
        "AND NOT EXISTS (SELECT 1 FROM invoices_documentitem AS a "
        f"WHERE a.adjusts_id = {alias}.id AND {_live('a')} AND a.service_start <= {day})"
    )


def _billed_problems(cursor, problems: _Problems, new: str) -> None:
    """New lines dated in a piece a live item already billed: refused,
    naming the document (cancel its run first, or record the usage on a
    later date)."""
    total, rows = _top(
        cursor,
        "SELECT r.line, r.charge_number, r.date, d.number, i.service_start, i.service_end "  # noqa: S608
        "FROM usage_import_rows AS r "
        "JOIN usage_import_charges AS ic ON ic.number = r.charge_number "
        "JOIN invoices_documentitem AS i ON i.charge_id = ic.id "
        f"AND {_covers('i', 'r.date')} AND i.service_start <= r.date AND i.service_end >= r.date "
        "JOIN invoices_document AS d ON d.id = i.document_id "
        f"WHERE {new} AND {ACCEPTS} "
        "AND r.date >= ic.billed_from AND r.date <= ic.billed_through",
    )
    problems.add_counted(
        total,
        [
            (
                line,
                "date",
                f"{_day(day)} is in a period of charge {number} already billed on {document} "
                f"({_day(start)} to {_day(end)}); cancel that run first, or record the usage "
                "on a later date",
            )
            for line, number, day, document, start, end in rows
        ],
    )


def _record(cursor, new: str, *, lines: int, taken: bool = True) -> int:
    """Insert the new lines' records; how many.

    On PostgreSQL a run of RECORD_RUN lines at a time (``lines``: the last
    line number staged), each in (charge, date) order: the records' table is
    then clustered by charge within each run, as its BRIN index wants
    (customers 0014), while the primary key still fills within the ids of
    one run (ids sent in order stay nearly in order). The BRIN's new ranges
    are summarized at the end, so that the next run's bitmap scan skips
    them instead of reading every unsummarized page. SQLite: in file order,
    into its B-tree.

    ``taken``: skip a line whose id is recorded meanwhile (``ON CONFLICT DO
    NOTHING``). Without it a taken id fails the statement (IntegrityError),
    and each row is inserted with one probe of the primary key instead of two
    (a speculative insertion checks the index, then inserts: 20-30 % of the
    insert's time, docs/benchmarks.md)."""
    insert = (
        "INSERT INTO customers_usagerecord (record_id, charge_id, date, quantity, imported_at) "  # noqa: S608
        "SELECT r.record_id, ic.id, r.date, r.quantity, %s FROM usage_import_rows AS r "
        f"JOIN usage_import_charges AS ic ON ic.number = r.charge_number WHERE {new}"
    )
    conflict = " ON CONFLICT (record_id) DO NOTHING" if taken else ""
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    if connection.vendor != "postgresql":
        cursor.execute(insert + conflict, [now])
        return cursor.rowcount
    inserted = 0
    # Lines are numbered from 2 (the header is line 1).
    for first in range(2, lines + 1, RECORD_RUN):
        cursor.execute(
            f"{insert} AND r.line >= %s AND r.line < %s ORDER BY ic.id, r.date{conflict}",
            [now, first, first + RECORD_RUN],
        )
        inserted += cursor.rowcount
    cursor.execute("SELECT brin_summarize_new_values(%s::regclass)", [USAGE_INDEX])
    return inserted


# --- The import ------------------------------------------------------------------


def usage_import(*, stream: IO[bytes], stream_reads_database: bool = False) -> UsageImportSummary:
    """Record the usage of an ``import_usage`` file read from ``stream``
    (``stream_reads_database``: reading it queries the database, as an
    upload's parts do; see ``_Staging.copying``).

    Transaction: one, all or nothing. The lines are checked as they are
    read, then against the database; on any problem UsageImportRefused is
    raised (the first 100 by line, and a count) and nothing is recorded.
    Locking: the accounts of the file's charges, in id order, from before
    their charges and billed periods are read to the commit (see the module);
    on PostgreSQL also an advisory lock that orders imports.
    Idempotency: by record id. A line whose id is recorded with the same
    charge, date and quantity, or repeats an earlier line, counts as already
    recorded, before any other check; the same id with other values is
    refused. Importing a file twice records it once.
    """
    start = _start_of(stream) if not stream_reads_database else None
    if connection.vendor == "postgresql" and start is not None:
        text = _text(stream)
        try:
            return _write_once(text)
        except _FallBack:
            pass
        finally:
            # The caller's stream stays open; it is read again from its start.
            stream = text.detach()
        stream.seek(start)
    problems = _Problems()
    text = _text(stream)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            _drop_temporary_tables(cursor)
            staging = _Staging(cursor)
            with staging.copying(open_for_file=not stream_reads_database):
                _stage(text, staging, problems)
            if problems.stopped:
                raise problems.refusal()
            summary = _check_and_record(cursor, staging, problems)
            _drop_temporary_tables(cursor)
            return summary
    finally:
        # The caller's stream stays open (standard input, a file it closes).
        text.detach()


def _start_of(stream: IO[bytes]) -> int | None:
    """Where a stream that can be read twice starts, or None."""
    try:
        return stream.tell() if stream.seekable() else None
    except (AttributeError, OSError, ValueError):
        return None


# --- Written once: the records straight from the file (PostgreSQL) ---------------


class _FallBack(Exception):
    """The file is not one that ``_write_once`` records as it is (a problem
    on some line, an id taken or repeated, a charge that may refuse a line):
    its transaction is rolled back and the staging path reads the file again,
    sorting its lines out with their line numbers."""


# The ids of the first lines looked up among the records before anything is
# written: a file sent again is sent to the staging path at once.
PROBE_IDS = 1000
# Usage charges above which the number -> id map is not built (its memory,
# some 150 bytes a charge): the staging path resolves them in the server.
MAP_MAX_CHARGES = 2_000_000
COPY_PIECE = 5000
# Blocks the COPY's writing thread may have waiting (``_QueuedWriter``).
COPY_QUEUE = 128


def _write_once(text: IO[str]) -> UsageImportSummary:
    """Record a file of new records of usage charges that take them, writing
    each record once: COPY straight into the records table, each line's
    charge number resolved, and its date checked, against one query of the
    charges made before reading; then, under the locks, the same query for
    the charges written, which must give what the lines were checked with.
    Any line that may have a problem raises _FallBack (the transaction
    rolled back): this path reports no problem itself.

    Lines are written in runs of RECORD_RUN, each sorted by (charge, date),
    as the records' BRIN wants (``_record``). Locking: the accounts of the
    first run's charges (a file of one run: all of them) are locked in id
    order before anything is written, as the staging path locks them before
    its insert; those of charges first met in later runs after the writing,
    before the check (a deadlock with a run's chunk there falls back). A
    taken or repeated id fails the COPY (the records' key): it falls back."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [PG_IMPORT_LOCK])
        cursor.execute(
            "SELECT count(*) FROM customers_charge WHERE charge_type = %s", [ChargeType.USAGE]
        )
        if cursor.fetchone()[0] > MAP_MAX_CHARGES:
            raise _FallBack
        charges: dict[str, tuple] = {}
        written = _copy_records(cursor, text, charges)
        if not written.count:
            return UsageImportSummary(0, 0)
        cursor.execute("SELECT brin_summarize_new_values(%s::regclass)", [USAGE_INDEX])
        later = sorted(written.charges - written.locked)
        if later:
            try:
                with transaction.atomic():
                    _lock_charges(cursor, later)
            except OperationalError as exc:
                raise _FallBack from exc
        now = _accepting_charges(cursor, sorted(written.charges))
        if len(now) != len(written.charges) or any(
            charges.get(number) != window for number, window in now.items()
        ):
            raise _FallBack
        return UsageImportSummary(written.count, 0)


# A charge without an end takes usage up to the last date a file may hold.
NO_END = "9999-12-31"


def _accepting_charges(cursor, charge_ids: list[int] | None = None) -> dict[str, tuple]:
    """The usage charges that take usage (of an Active account, and an
    Active subscription or one a change canceled), or those of
    ``charge_ids``: number -> (COPY prefix, first date, end), the dates as
    ISO text. A line of the charge is new and sure to be accepted when its
    date is on or after the first date and before the end: the first date
    is the charge's start, or the day after the last one any live item of
    the charge billed (a line dated before is checked exactly by the staging
    path). The prefix is the charge's id zero-padded, so that sorting the
    lines sorts them by charge, then date."""
    only_charges = "AND c.id = ANY(%(ids)s)" if charge_ids is not None else ""
    only_items = "AND i.charge_id = ANY(%(ids)s)" if charge_ids is not None else ""
    cursor.execute(
        "SELECT c.number, c.id, greatest(c.start_date, b.billed_through + 1), c.end_date "  # noqa: S608 (see the module)
        "FROM customers_charge AS c "
        "JOIN customers_subscription AS s ON s.id = c.subscription_id "
        "JOIN customers_account AS a ON a.id = s.account_id "
        "LEFT JOIN (SELECT i.charge_id, max(i.service_end) AS billed_through "
        f"FROM invoices_documentitem AS i WHERE {_live('i')} {only_items} "
        "GROUP BY i.charge_id) AS b ON b.charge_id = c.id "
        "WHERE c.charge_type = %(usage)s AND a.status = %(active)s "
        f"AND (s.status = %(active)s OR s.cancel_date IS NOT NULL) {only_charges}",
        {"ids": charge_ids, "usage": ChargeType.USAGE, "active": Status.ACTIVE},
    )
    dates: dict[datetime.date, str] = {}

    def text(day: datetime.date | None) -> str:
        if day is None:
            return NO_END
        if day not in dates:
            dates[day] = day.isoformat()
        return dates[day]

    return {
        number: (f"{charge_id:012d}\t", text(first), text(end))
        for number, charge_id, first, end in cursor
    }


@dataclass
class _Written:
    count: int = 0
    # The ids of the charges written, and of those locked before writing.
    charges: set[int] = field(default_factory=set)
    locked: set[int] = field(default_factory=set)


def _lock_charges(cursor, charge_ids: list[int]) -> None:
    """Lock the accounts of ``charge_ids`` in id order (``_lock``), then the
    charges ``FOR KEY SHARE``; a charge gone meanwhile falls back."""
    cursor.execute(
        "SELECT a.id FROM customers_account AS a WHERE a.id IN (SELECT s.account_id "
        "FROM customers_charge AS c JOIN customers_subscription AS s ON s.id = c.subscription_id "
        "WHERE c.id = ANY(%s)) ORDER BY a.id FOR UPDATE",
        [charge_ids],
    )
    cursor.execute(
        "SELECT c.id FROM customers_charge AS c WHERE c.id = ANY(%s) ORDER BY c.id FOR KEY SHARE",
        [charge_ids],
    )
    if cursor.rowcount != len(charge_ids):
        raise _FallBack


# A line as the written-once path takes it: an id of 1-100 printable ASCII
# characters without the CSV's comma or quote, nor COPY's backslash; a charge
# number (``charges`` decides); a date's shape (the calendar and the range
# are checked apart); a quantity of at most 12 digits and 3 places. Anything
# else (quoted fields, blank lines, other line ends) goes to the staging
# path, which reads it with the csv module.
FAST_LINE = re.compile(
    r"^([ !#-+\--\[\]-~]{1,100}),([^,\"\r\n]+),([0-9]{4}-[0-9]{2}-[0-9]{2}),"
    r"([0-9]{1,12}(?:\.[0-9]{1,3})?)\r?$",
    re.ASCII | re.MULTILINE,
)
FAST_BLOCK = 64 * 1024  # characters read at a time


def _copy_records(cursor, text: IO[str], charges: dict[str, tuple]) -> _Written:
    """Read the file a block of lines at a time, check each line's cells
    (FAST_LINE, then its date) and its charge and date against ``charges``
    (filled after the first block's ids are looked up among the records),
    and COPY the records, a sorted run at a time. The first line that may
    have a problem raises _FallBack."""
    if text.readline().rstrip("\r\n") != HEADER_TEXT:
        raise _FallBack
    written = _Written()
    dates: set[str] = set()
    prefixes: set[str] = set()
    run: list[str] = []
    rest = ""
    looked_up = False
    with contextlib.ExitStack() as stack:
        copy = None
        while True:
            chunk = text.read(FAST_BLOCK)
            block = rest + chunk
            if not chunk:
                if not block:
                    break
                block += "\n"  # the last line, without its line break
            cut = block.rfind("\n") + 1
            block, rest = block[:cut], block[cut:]
            rows = FAST_LINE.findall(block)
            # Each match is one whole line: every line matched.
            if len(rows) != block.count("\n"):
                raise _FallBack
            if not looked_up:
                looked_up = True
                # A file sent again is seen from its first ids, before more work.
                probe = [row[0] for row in rows[:PROBE_IDS]]
                cursor.execute(
                    "SELECT EXISTS (SELECT 1 FROM customers_usagerecord WHERE record_id = ANY(%s))",
                    [probe],
                )
                if cursor.fetchone()[0]:
                    raise _FallBack
                charges.update(_accepting_charges(cursor))
            for record_id, number, day, quantity in rows:
                if day not in dates:
                    if type(_date_problem(day)) is str:
                        raise _FallBack
                    if len(dates) < DATE_CACHE_SIZE:
                        dates.add(day)
                window = charges.get(number)
                if window is None:
                    raise _FallBack
                prefix, first, end = window
                # ISO dates compare as text.
                if not first <= day < end:
                    raise _FallBack
                prefixes.add(prefix)
                run.append(f"{prefix}{day}\t{record_id}\t{quantity}\n")
            while len(run) >= RECORD_RUN:
                # A run of RECORD_RUN lines; the rest of the block starts the next.
                head = run[:RECORD_RUN]
                del run[:RECORD_RUN]
                copy = _write_run(cursor, stack, copy, head, prefixes, written)
        if run:
            copy = _write_run(cursor, stack, copy, run, prefixes, written)
    written.charges = {int(prefix) for prefix in prefixes}
    return written


def _write_run(cursor, stack, copy, run: list[str], prefixes: set[str], written: _Written):
    """Sort the run and write it into the COPY, opened at the first run
    after its accounts are locked; the run is emptied in place. Returns the
    COPY."""
    if copy is None:
        written.locked = {int(prefix) for prefix in prefixes}
        _lock_charges(cursor, sorted(written.locked))
        stack.enter_context(_copy_errors())
        # imported_at: the column's default, the COPY's time (customers 0015).
        copy = stack.enter_context(
            cursor.cursor.copy(
                "COPY customers_usagerecord (charge_id, date, record_id, quantity) FROM STDIN",
                writer=_QueuedWriter(cursor.cursor),
            )
        )
    run.sort()
    for first in range(0, len(run), COPY_PIECE):
        copy.write("".join(run[first : first + COPY_PIECE]))
    written.count += len(run)
    run.clear()
    return copy


class _QueuedWriter(LibpqWriter):
    """Writes the COPY's data from a thread, so that the next run of lines
    is read and checked here while the server takes in the last one (with
    psycopg's own writer, the reading waits for the server at each flush and
    the server for the reading between runs: the two sides took turns).

    Like psycopg's QueuedLibpqWriter, with a short queue: at most
    COPY_QUEUE blocks (of at most 128 KB) wait, about one run, so memory is
    bounded whichever side is faster."""

    def __init__(self, cursor):
        super().__init__(cursor)
        self.queue: queue.Queue = queue.Queue(maxsize=COPY_QUEUE)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._work, daemon=True)
        self.thread.start()

    def _work(self) -> None:
        try:
            while data := self.queue.get():
                super().write(data)
        except BaseException as exc:  # noqa: BLE001 (given to the reading thread)
            self.error = exc
            # Empty the queue to its end, or the reading would wait forever.
            while self.queue.get():
                pass

    def write(self, data) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(data)

    def finish(self, exc: BaseException | None = None) -> None:
        self.queue.put(b"")
        self.thread.join()
        if self.error is not None:
            raise self.error
        super().finish(exc)


@contextlib.contextmanager
def _copy_errors():
    """A taken or repeated id (the COPY's key) or a lock given up: fall back."""
    try:
        with connection.wrap_database_errors:
            yield
    except (IntegrityError, OperationalError) as exc:
        raise _FallBack from exc


def _drop_temporary_tables(cursor) -> None:
    schema = "pg_temp" if connection.vendor == "postgresql" else "temp"
    for table in TEMPORARY_TABLES:
        cursor.execute(f"DROP TABLE IF EXISTS {schema}.{table}")


def _check_and_record(cursor, staging: _Staging, problems: _Problems) -> UsageImportSummary:
    """Check the staged lines against the database, with the problems of the
    lines' cells found while reading, and record them if there is none.

    Most files bring only new records: every line is first checked as if it
    were new (skipped when the file's charges prove no line can fail:
    ``_charges_may_refuse``) and, if none has a problem, inserted at once by
    a plain INSERT;
    when it succeeds, no id was recorded before or repeated, and the import
    is done. Otherwise (some line has a problem, or an id taken failed the
    INSERT, which its savepoint undid)
    the lines are sorted into recorded before, repeated and new, and only
    the new ones are checked and recorded."""
    lines = staging.count
    if not lines:
        if problems.count:
            raise problems.refusal()
        return UsageImportSummary(0, 0)
    if connection.vendor == "postgresql":
        # The joins and groupings over a million lines fit in memory.
        cursor.execute(f"SET LOCAL work_mem = '{PG_WORK_MEM}'")
        # The runs of lines ``_record`` inserts are read by line number.
        cursor.execute("CREATE INDEX usage_import_rows_line ON usage_import_rows USING brin (line)")
        cursor.execute("ANALYZE usage_import_rows")
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [PG_IMPORT_LOCK])
    _find_charges(cursor)
    _lock(cursor)
    _read_charges(cursor)

    as_if_new = _Problems()
    if _charges_may_refuse(cursor):
        _charge_problems(cursor, as_if_new, ALL_LINES)
        _billed_problems(cursor, as_if_new, ALL_LINES)
    if not (problems.count or as_if_new.count):
        try:
            with transaction.atomic():
                return UsageImportSummary(
                    _record(cursor, ALL_LINES, lines=staging.last_line, taken=False), 0
                )
        except IntegrityError:
            # Some id was taken, or is on two lines: sort the lines out below
            # instead (the savepoint undid the insert).
            pass

    recorded = _recorded_before(cursor, problems)
    repeated = _repeated_in_file(cursor, problems, recorded=recorded)
    new = _new_lines(recorded=recorded, repeated=repeated)
    if as_if_new.count:
        # Some of these may be lines already recorded: check the new ones.
        _charge_problems(cursor, problems, new)
        _billed_problems(cursor, problems, new)
    if problems.count:
        raise problems.refusal()
    imported = _record(cursor, new, lines=staging.last_line)
    return UsageImportSummary(imported, lines - imported)


def usage_import_file(*, path: str, stdin: IO[bytes] | None = None) -> UsageImportSummary:
    """``usage_import`` of the file at ``path`` (``-``: ``stdin``, bytes)."""
    if path == "-":
        return usage_import(stream=stdin or sys.stdin.buffer)
    try:
        stream = open(path, "rb")  # noqa: SIM115 (closed below, after the import)
    except OSError as exc:
        raise UsageImportRefused([f"{path}: cannot read the file ({exc.strerror or exc})"]) from exc
    with stream:
        return usage_import(stream=stream)


# --- One record, from the admin ----------------------------------------------------


class UsageRecordRefused(Exception):
    """A change or delete of one usage record that the rules refuse; nothing changed."""


def usage_record_billed_on(*, charge_id: int, day: datetime.date) -> str | None:
    """The number of the document whose live item of ``charge_id`` covers
    ``day``, or None: a record dated so is billed (or would be late)."""
    return (
        DocumentItem.objects.filter(
            charge_id=charge_id,
            document_canceled=False,
            kind=ItemKind.CHARGE,
            fully_reversed=False,
            service_start__lte=day,
            service_end__gte=day,
        )
        .exclude(
            Exists(
                DocumentItem.objects.filter(
                    adjusts=OuterRef("pk"), document_canceled=False, service_start__lte=day
                )
            )
        )
        .values_list("document__number", flat=True)
        .first()
    )


def _locked_record(record_id: str) -> UsageRecord:
    """The record, under its account's lock (taken first, as the import and a
    run's chunk take it), then its own."""
    account_id = (
        UsageRecord.objects.filter(pk=record_id)
        .values_list("charge__subscription__account_id", flat=True)
        .first()
    )
    if account_id is None:
        raise UsageRecordRefused(f"There is no usage record {record_id}.")
    Account.objects.select_for_update().filter(pk=account_id).first()
    return (
        UsageRecord.objects.select_for_update(of=("self",))
        .select_related("charge")
        .get(pk=record_id)
    )


def usage_record_change_problems(
    *, record_id: str, day: datetime.date, quantity: Decimal
) -> dict[str, str]:
    """Why the record cannot move to ``day`` with ``quantity`` (field ->
    message), under the locks of ``_locked_record``: the checks of the
    import, and neither the record's period nor the new one billed."""
    record = _locked_record(record_id)
    problems = {}
    billed = usage_record_billed_on(charge_id=record.charge_id, day=record.date)
    if billed:
        problems["date"] = f"This record is billed on {billed}: it cannot be changed."
        return problems
    charge = record.charge
    if day != record.date:
        problem = date_range_problem(day)
        billed = usage_record_billed_on(charge_id=record.charge_id, day=day)
        if problem:
            problems["date"] = f"The date {problem}."
        elif day < charge.start_date or (charge.end_date and day >= charge.end_date):
            problems["date"] = (
                f"{day.isoformat()} is outside the service of charge {charge.number}."
            )
        elif billed:
            problems["date"] = (
                f"{day.isoformat()} is in a period of charge {charge.number} already billed on "
                f"{billed}."
            )
    whole, _, places = f"{quantity:f}".partition(".")
    if quantity < 0:
        problems["quantity"] = "The quantity must be 0 or more."
    elif len(places.rstrip("0")) > QUANTITY_PLACES or len(whole) > QUANTITY_DIGITS:
        problems["quantity"] = (
            f"The quantity has at most {QUANTITY_PLACES} decimal places and is below 10^12."
        )
    return problems


def usage_record_change(*, record_id: str, day: datetime.date, quantity: Decimal) -> UsageRecord:
    """Moves an unbilled record to ``day`` and ``quantity``, and returns it.

    Transaction and locking: one transaction holding the account's lock, so
    a run's chunk either sums the record as it was or as it is now. Refuses
    (UsageRecordRefused, nothing changed) a billed record, and a date or
    quantity the import would refuse."""
    with transaction.atomic():
        problems = usage_record_change_problems(record_id=record_id, day=day, quantity=quantity)
        if problems:
            raise UsageRecordRefused(" ".join(problems.values()))
        UsageRecord.objects.filter(pk=record_id).update(date=day, quantity=quantity)
        return UsageRecord.objects.get(pk=record_id)


def usage_record_delete(*, record_id: str) -> None:
    """Deletes an unbilled record, under its account's lock; a billed one is
    refused (UsageRecordRefused) naming the document."""
    with transaction.atomic():
        record = _locked_record(record_id)
        billed = usage_record_billed_on(charge_id=record.charge_id, day=record.date)
        if billed:
            raise UsageRecordRefused(
                f"Usage record {record_id} is billed on {billed}: it cannot be deleted."
            )
        record.delete()
