"""Loading accounts, subscriptions and charges from an import document.

The format is the one of ``manage.py import_accounts`` (INTERFACES.md,
"Loading customers"). An import is all or nothing: the whole document is
validated before anything is written, every problem is reported with its JSON
path, and the rows are then inserted in bulk in one transaction (COPY on
PostgreSQL, ``bulk_create`` elsewhere).
Importing is not an update: a number that is already in use is a problem.
"""

import codecs
import datetime
import gc
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.db import IntegrityError, connection, transaction
from django.db.models.functions import Lower
from django.utils import timezone

from core import bulk
from core.dates import DATE_PATTERN, date_range_problem
from core.money import CENT
from customers.currencies import currency_problem
from customers.models import (
    Account,
    BillingPeriod,
    Charge,
    ChargeType,
    Status,
    Subscription,
    number_problem,
)

# Operators fix a file from the top; past this many, the rest is a count.
MAX_REPORTED_PROBLEMS = 100

# Rows per INSERT where bulk_create is used (not PostgreSQL, which COPYs):
# an account row has ~10 columns, and Django lowers the batch further to the
# database's own parameter limit (999 on SQLite).
INSERT_BATCH_SIZE = 2000

# Candidate numbers looked up per query when generating numbers: a database
# whose low numbers are all taken is skipped through in a few large steps.
NUMBER_PROBE_SIZE = 10_000

ACCOUNT_NUMBER_FORMAT = ("A", 8)
SUBSCRIPTION_NUMBER_FORMAT = ("S", 8)

AMOUNT_LIMIT = Decimal(10) ** 13

ACCOUNT_FIELDS = frozenset(
    {
        "number",
        "name",
        "bill_to_email",
        "currency",
        "bill_cycle_day",
        "batch",
        "payment_term_days",
        "status",
        "subscriptions",
    }
)
SUBSCRIPTION_FIELDS = frozenset({"number", "start_date", "status", "charges"})
CHARGE_FIELDS = frozenset(
    {"name", "type", "amount", "currency", "period", "start_date", "end_date"}
)

AMOUNT_RE = re.compile(r"-?[0-9]+(?:\.[0-9]{1,2})?")

_email_validator = EmailValidator()

# The choices' ``.values`` is rebuilt on every access; the import checks
# hundreds of thousands of fields.
STATUSES = tuple(Status.values)
CHARGE_TYPES = tuple(ChargeType.values)
PERIODS = tuple(BillingPeriod.values)
RECURRING = str(ChargeType.RECURRING.value)
ONE_TIME = str(ChargeType.ONE_TIME.value)
ACTIVE = str(Status.ACTIVE.value)


class ImportRefused(Exception):
    """The import was refused; nothing was written.

    ``problems`` holds the first MAX_REPORTED_PROBLEMS messages, each starting
    with the JSON path it is about; ``total`` counts all of them.
    """

    def __init__(self, problems: list[str], total: int | None = None):
        super().__init__(problems[0] if problems else "import refused")
        self.problems = problems
        self.total = len(problems) if total is None else total

    @property
    def more(self) -> int:
        return self.total - len(self.problems)

    def lines(self) -> list[str]:
        """The lines to show an operator: the problems, then how many more."""
        if self.more > 0:
            return [*self.problems, f"... and {self.more} more problems"]
        return list(self.problems)


@dataclass(frozen=True)
class ImportSummary:
    accounts: int
    subscriptions: int
    charges: int

    def __str__(self) -> str:
        return (
            f"imported {self.accounts} accounts, {self.subscriptions} subscriptions, "
            f"{self.charges} charges"
        )


def read_import_file(*, path: str, stdin: IO[bytes] | None = None, max_bytes: int) -> bytes:
    """Read an import file (``-``: ``stdin``), refusing one over ``max_bytes``.

    A file's size is checked before it is read; standard input is read at
    most ``max_bytes + 1`` bytes, so an oversized stream is never held in
    memory. No database access. Raises ImportRefused.
    """
    if path == "-":
        data = stdin.read(max_bytes + 1)
        if isinstance(data, str):
            data = data.encode("utf-8", errors="surrogatepass")
        if len(data) > max_bytes:
            raise ImportRefused(
                [
                    f"standard input: larger than the import limit of {max_bytes} bytes "
                    "(IMPORT_MAX_BYTES); nothing was imported"
                ]
            )
        return data
    try:
        size = os.stat(path).st_size
        if size > max_bytes:
            raise ImportRefused(
                [
                    f"{path}: the file is {size} bytes, larger than the import limit of "
                    f"{max_bytes} bytes (IMPORT_MAX_BYTES); nothing was imported"
                ]
            )
        with open(path, "rb") as stream:
            data = stream.read(max_bytes + 1)
    except OSError as exc:
        raise ImportRefused([f"{path}: cannot read the file ({exc.strerror or exc})"]) from exc
    if len(data) > max_bytes:
        # The file grew between the stat and the read.
        raise ImportRefused(
            [f"{path}: larger than the import limit of {max_bytes} bytes (IMPORT_MAX_BYTES)"]
        )
    return data


class _KeysSeenTwice(dict):
    """A JSON object in which some key appeared more than once."""

    duplicate_keys: list[str]


def _object_from_pairs(pairs: list[tuple[str, Any]]) -> dict:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    flagged = _KeysSeenTwice(obj)
    seen: set[str] = set()
    flagged.duplicate_keys = [key for key, _ in pairs if key in seen or seen.add(key)]
    return flagged


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# What json.detect_encoding names when a file is not UTF-8, as people say it.
OTHER_ENCODINGS = {
    "utf-16": "UTF-16",
    "utf-16-be": "UTF-16 (big-endian)",
    "utf-16-le": "UTF-16 (little-endian)",
    "utf-32": "UTF-32",
    "utf-32-be": "UTF-32 (big-endian)",
    "utf-32-le": "UTF-32 (little-endian)",
}
ENCODING_RULE = "import files are UTF-8 text (a byte order mark is allowed)"


def decode_import_text(*, raw: bytes) -> str:
    """An import file's text. Import files are UTF-8, with or without a byte
    order mark; anything else (UTF-16, as some spreadsheet programs save,
    or bytes that are not UTF-8) raises ImportRefused saying so.

    json.loads would read UTF-16 and UTF-32 too, guessing from the first
    bytes: the import takes one encoding, the one its documentation names."""
    other = OTHER_ENCODINGS.get(json.detect_encoding(raw))
    if other:
        raise ImportRefused([f"the file is {other} text; {ENCODING_RULE}: save it as UTF-8"])
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # The codec counts from after the byte order mark.
        offset = exc.start + (len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0)
        raise ImportRefused(
            [
                f"the file is not UTF-8 text (byte 0x{raw[offset]:02x} at offset {offset} "
                f"is not UTF-8); {ENCODING_RULE}"
            ]
        ) from exc


def parse_import_json(*, raw: bytes) -> Any:
    """Parse an import file's bytes into Python values.

    Any malformed input (encoding, syntax, NaN/Infinity, numbers too long to
    convert, nesting too deep) raises ImportRefused with one clean message,
    never another exception. No database access.
    """
    text = decode_import_text(raw=raw)
    try:
        return json.loads(
            text, object_pairs_hook=_object_from_pairs, parse_constant=_refuse_constant
        )
    except json.JSONDecodeError as exc:
        raise ImportRefused(
            [f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"]
        ) from exc
    except RecursionError as exc:
        raise ImportRefused(["invalid JSON: nested too deeply"]) from exc
    except ValueError as exc:
        # Integers with thousands of digits, NaN/Infinity literals.
        raise ImportRefused([f"invalid JSON: {exc}"]) from exc


@dataclass
class _Problems:
    count: int = 0
    first: list[str] = field(default_factory=list)

    def add(self, path: str, message: str) -> None:
        self.count += 1
        if len(self.first) < MAX_REPORTED_PROBLEMS:
            self.first.append(f"{path}: {message}")

    def raise_if_any(self) -> None:
        if self.count:
            raise ImportRefused(self.first, self.count)


@dataclass(slots=True)
class _Row:
    """A validated object with where it came from, ready to become a model."""

    path: str
    values: dict[str, Any]
    children: list["_Row"] = field(default_factory=list)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


class _Validator:
    def __init__(self, *, consume: bool = False) -> None:
        self.problems = _Problems()
        # Drop each parsed account from the document once it is a row, so
        # the parsed file and its rows are never all in memory at once.
        self.consume = consume

    # Fields. Each returns the cleaned value, or None after adding a problem.

    def text(self, obj: dict, key: str, path: str, *, max_length: int, required: bool):
        value = obj.get(key)
        if value is None:
            if required:
                self.problems.add(f"{path}.{key}", self._missing_or_null(obj, key))
            return None
        where = f"{path}.{key}"
        if not isinstance(value, str):
            self.problems.add(where, f"must be a string, not {_type_name(value)}")
            return None
        if required and not value.strip():
            self.problems.add(where, "must not be empty")
            return None
        if len(value) > max_length:
            self.problems.add(where, f"must be at most {max_length} characters long")
            return None
        if "\x00" in value:
            self.problems.add(where, "must not contain NUL characters")
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            self.problems.add(where, "contains an unpaired surrogate (\\ud800-\\udfff)")
            return None
        return value

    def number(self, obj: dict, path: str):
        value = self.text(obj, "number", path, max_length=64, required=False)
        if value is not None and value != value.strip():
            self.problems.add(f"{path}.number", "must not start or end with spaces")
            return None
        if value == "":
            self.problems.add(f"{path}.number", "must not be empty (leave it out to generate one)")
            return None
        problem = number_problem(value) if value is not None else None
        if problem:
            self.problems.add(f"{path}.number", problem)
            return None
        return value

    def integer(self, obj, key, path, *, low, high, default=None):
        value = obj.get(key)
        if value is None:
            if default is None:
                self.problems.add(f"{path}.{key}", self._missing_or_null(obj, key))
            return default
        # bool is a subclass of int; true is not a day of the month.
        if type(value) is not int:
            self.problems.add(f"{path}.{key}", f"must be an integer, not {_type_name(value)}")
            return None
        if not low <= value <= high:
            self.problems.add(f"{path}.{key}", f"must be between {low} and {high}, not {value}")
            return None
        return value

    def date(self, obj, key, path, *, required):
        value = obj.get(key)
        if value is None:
            if required:
                self.problems.add(f"{path}.{key}", self._missing_or_null(obj, key))
            return None
        where = f"{path}.{key}"
        if not isinstance(value, str):
            self.problems.add(where, f"must be a date string YYYY-MM-DD, not {_type_name(value)}")
            return None
        if not DATE_PATTERN.fullmatch(value):
            self.problems.add(where, f"must be a date YYYY-MM-DD, not {_quote(value)}")
            return None
        try:
            day = datetime.date.fromisoformat(value)
        except ValueError:
            self.problems.add(where, f"is not a calendar date: {_quote(value)}")
            return None
        problem = date_range_problem(day)
        if problem:
            self.problems.add(where, problem)
            return None
        return day

    def amount(self, obj, path):
        value = obj.get("amount")
        where = f"{path}.amount"
        if value is None:
            self.problems.add(where, self._missing_or_null(obj, "amount"))
            return None
        if not isinstance(value, str):
            self.problems.add(
                where,
                f'must be a decimal string such as "100.00", not {_type_name(value)} '
                "(a JSON number would lose cents)",
            )
            return None
        if not AMOUNT_RE.fullmatch(value):
            self.problems.add(
                where,
                f'must be a decimal string with at most 2 decimal places such as "100.00" '
                f'or "-5.5", not {_quote(value)}',
            )
            return None
        amount = Decimal(value)  # the pattern admits only plain decimals
        if abs(amount) >= AMOUNT_LIMIT:
            self.problems.add(where, "must be below 10^13 in absolute value")
            return None
        # "-0.00" is zero; keep one spelling of it.
        return amount.quantize(CENT) if amount else Decimal("0.00")

    def choice(self, obj, key, path, *, choices, default=None):
        value = obj.get(key)
        if value is None:
            if default is None:
                self.problems.add(f"{path}.{key}", self._missing_or_null(obj, key))
            return default
        if not isinstance(value, str) or value not in choices:
            expected = ", ".join(f'"{choice}"' for choice in choices)
            shown = _quote(value) if isinstance(value, str) else _type_name(value)
            self.problems.add(f"{path}.{key}", f"must be one of {expected}, not {shown}")
            return None
        return value

    def currency(self, obj, path, *, default=None):
        value = obj.get("currency")
        if value is None:
            if default is None:
                self.problems.add(f"{path}.currency", self._missing_or_null(obj, "currency"))
            return default
        problem = currency_problem(value)
        if problem:
            self.problems.add(f"{path}.currency", problem)
            return None
        return value

    def email(self, obj, path):
        value = self.text(obj, "bill_to_email", path, max_length=254, required=False)
        if not value:
            return ""
        try:
            _email_validator(value)
        except ValidationError:
            self.problems.add(
                f"{path}.bill_to_email", f"is not a valid email address: {_quote(value)}"
            )
            return None
        return value

    def array(self, obj, key, path) -> list:
        value = obj.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.problems.add(f"{path}.{key}", f"must be an array, not {_type_name(value)}")
            return []
        return value

    def known_fields(self, obj: dict, allowed: frozenset, path: str) -> None:
        if not allowed.issuperset(obj):
            for key in [key for key in obj if key not in allowed]:
                self.problems.add(f"{path}.{_key(key)}", "unknown field")
        if type(obj) is _KeysSeenTwice:
            for key in obj.duplicate_keys:
                self.problems.add(f"{path}.{_key(key)}", "field appears more than once")

    @staticmethod
    def _missing_or_null(obj: dict, key: str) -> str:
        return "must not be null" if key in obj else "required field is missing"

    # Objects.

    def document(self, document: Any) -> list[_Row]:
        if not isinstance(document, dict):
            self.problems.add(
                "(top level)",
                f'must be a JSON object with an "accounts" array, not {_type_name(document)}',
            )
            return []
        self.known_fields(document, frozenset({"accounts"}), "(top level)")
        if "accounts" not in document:
            self.problems.add("accounts", "required field is missing")
            return []
        accounts = document["accounts"]
        if not isinstance(accounts, list):
            self.problems.add("accounts", f"must be an array, not {_type_name(accounts)}")
            return []
        if not self.consume:
            return [self.account(obj, f"accounts[{i}]") for i, obj in enumerate(accounts)]
        rows = []
        for i in range(len(accounts)):
            obj, accounts[i] = accounts[i], None
            rows.append(self.account(obj, f"accounts[{i}]"))
        return rows

    def account(self, obj: Any, path: str) -> _Row | None:
        if not isinstance(obj, dict):
            self.problems.add(path, f"must be an object, not {_type_name(obj)}")
            return None
        self.known_fields(obj, ACCOUNT_FIELDS, path)
        row = _Row(
            path,
            {
                "number": self.number(obj, path),
                "name": self.text(obj, "name", path, max_length=255, required=True),
                "bill_to_email": self.email(obj, path),
                "currency": self.currency(obj, path),
                "bill_cycle_day": self.integer(obj, "bill_cycle_day", path, low=1, high=31),
                "batch": self.integer(obj, "batch", path, low=1, high=50, default=1),
                "payment_term_days": self.integer(
                    obj, "payment_term_days", path, low=0, high=365, default=30
                ),
                "status": self.choice(obj, "status", path, choices=STATUSES, default=ACTIVE),
            },
        )
        currency = row.values["currency"]
        for i, sub in enumerate(self.array(obj, "subscriptions", path)):
            row.children.append(self.subscription(sub, f"{path}.subscriptions[{i}]", currency))
        return row

    def subscription(self, obj: Any, path: str, account_currency: str | None) -> _Row | None:
        if not isinstance(obj, dict):
            self.problems.add(path, f"must be an object, not {_type_name(obj)}")
            return None
        self.known_fields(obj, SUBSCRIPTION_FIELDS, path)
        row = _Row(
            path,
            {
                "number": self.number(obj, path),
                "start_date": self.date(obj, "start_date", path, required=True),
                "status": self.choice(obj, "status", path, choices=STATUSES, default=ACTIVE),
            },
        )
        for i, charge in enumerate(self.array(obj, "charges", path)):
            row.children.append(self.charge(charge, f"{path}.charges[{i}]", account_currency))
        return row

    def charge(self, obj: Any, path: str, account_currency: str | None) -> _Row | None:
        if not isinstance(obj, dict):
            self.problems.add(path, f"must be an object, not {_type_name(obj)}")
            return None
        self.known_fields(obj, CHARGE_FIELDS, path)
        charge_type = self.choice(obj, "type", path, choices=CHARGE_TYPES)
        start_date = self.date(obj, "start_date", path, required=True)
        end_date = self.date(obj, "end_date", path, required=False)
        period = ""
        if charge_type == ONE_TIME:
            if obj.get("period") is not None:
                self.problems.add(f"{path}.period", "a one_time charge has no period")
            if obj.get("end_date") is not None:
                self.problems.add(f"{path}.end_date", "a one_time charge has no end date")
        else:
            if charge_type == RECURRING:
                period = self.choice(obj, "period", path, choices=PERIODS)
            if start_date and end_date and end_date <= start_date:
                self.problems.add(
                    f"{path}.end_date",
                    f"must be after start_date {start_date.isoformat()}, "
                    f"not {end_date.isoformat()}",
                )
        # Without a currency of its own a charge takes its account's; when
        # that one is invalid it is reported on the account.
        currency = self.currency(obj, path, default=account_currency or "")
        return _Row(
            path,
            {
                "name": self.text(obj, "name", path, max_length=255, required=True),
                "charge_type": charge_type,
                "amount": self.amount(obj, path),
                "currency": currency,
                "period": period,
                "start_date": start_date,
                "end_date": end_date,
            },
        )


def _quote(value: str, limit: int = 40) -> str:
    shown = value if len(value) <= limit else value[:limit] + "..."
    return json.dumps(shown)


def _key(key: str) -> str:
    return key if key.isidentifier() and key.isascii() else json.dumps(key)[:60]


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _numbers_in_use(model, numbers: list[str]) -> dict[str, str]:
    """The numbers of ``numbers`` that the database already has, ignoring
    case: each maps to the number it is stored as.

    Both sides are lowered by the database, as its unique constraint on
    ``Lower("number")`` does (SQLite lowers only ASCII letters, PostgreSQL
    every letter), so the check refuses what the constraint would."""
    table = connection.ops.quote_name(model._meta.db_table)
    in_use: dict[str, str] = {}
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One array parameter: a single query driven by the index on
            # lower(number), for any count, where an IN list would bind (and
            # plan) one parameter per number.
            cursor.execute(
                "SELECT given.number, t.number FROM unnest(%s::text[]) AS given(number) "  # noqa: S608
                f"JOIN {table} AS t ON lower(t.number) = lower(given.number)",
                [numbers],
            )
            in_use.update(cursor.fetchall())
            return in_use
        # SQLite binds at most 999 parameters per statement.
        for chunk in _chunks(numbers, connection.features.max_query_params or 999):
            values = ", ".join(["(%s)"] * len(chunk))
            # The table name is the model's own; the numbers are parameters.
            cursor.execute(
                f"WITH given(number) AS (VALUES {values}) "  # noqa: S608
                f"SELECT given.number, t.number FROM given "
                f"JOIN {table} AS t ON lower(t.number) = lower(given.number)",
                chunk,
            )
            in_use.update(cursor.fetchall())
    return in_use


def _check_unique_numbers(problems: _Problems, rows: list[_Row], model, noun: str) -> None:
    """Report numbers given twice in the file or already in the database,
    ignoring case: numbers are compared exactly (a clerk types ``mixcase1``
    to bill that customer), so two that differ only in case must not exist."""
    first_seen: dict[str, _Row] = {}
    for row in rows:
        number = row.values["number"]
        if number is None:
            continue
        first = first_seen.setdefault(number.lower(), row)
        if first is row:
            continue
        earlier = first.values["number"]
        if earlier == number:
            problems.add(
                f"{row.path}.number",
                f"{noun} number {number} appears more than once in the file "
                f"(first at {first.path}.number)",
            )
        else:
            problems.add(
                f"{row.path}.number",
                f"{noun} number {number} differs only in case from {earlier} at "
                f"{first.path}.number (numbers must differ in more than case)",
            )
    if not first_seen:
        return
    existing = _numbers_in_use(model, [row.values["number"] for row in first_seen.values()])
    for row in first_seen.values():
        number = row.values["number"]
        stored = existing.get(number)
        if stored is None:
            continue
        if stored == number:
            message = f"{noun} {number} already exists (importing does not update)"
        else:
            message = (
                f"{noun} number {number} differs only in case from {noun} {stored}, which "
                "already exists (numbers must differ in more than case)"
            )
        problems.add(f"{row.path}.number", message)


def _free_numbers(model, *, prefix: str, digits: int, count: int, taken: set[str]) -> list[str]:
    """The ``count`` lowest numbers ``<prefix><digits>`` used neither in the
    file (``taken``, lowered) nor in the database, ignoring case."""
    found: list[str] = []
    candidate = 1
    while len(found) < count:
        wanted: list[str] = []
        while len(wanted) < max(count - len(found), NUMBER_PROBE_SIZE):
            number = f"{prefix}{candidate:0{digits}d}"
            candidate += 1
            if number.lower() not in taken:
                wanted.append(number)
        # Fixed-width numbers sort like their values, so one range scan of the
        # index on lower(number) finds every candidate already in use.
        in_use = set(
            model.objects.annotate(lowered=Lower("number"))
            .filter(lowered__gte=wanted[0].lower(), lowered__lte=wanted[-1].lower())
            .order_by()
            .values_list("lowered", flat=True)
        )
        found.extend(number for number in wanted if number.lower() not in in_use)
    return found[:count]


def _assign_numbers(rows: list[_Row], model, number_format: tuple[str, int]) -> None:
    missing = [row for row in rows if row.values["number"] is None]
    if not missing:
        return
    prefix, digits = number_format
    taken = {row.values["number"].lower() for row in rows if row.values["number"] is not None}
    numbers = _free_numbers(model, prefix=prefix, digits=digits, count=len(missing), taken=taken)
    for row, number in zip(missing, numbers, strict=True):
        row.values["number"] = number


def accounts_import(*, document: Any, consume: bool = False) -> ImportSummary:
    """Import accounts with their subscriptions and charges from ``document``,
    the parsed JSON of an import file. With ``consume`` the document's
    accounts are dropped from it as they are validated (it is left with
    ``None`` in their places), which bounds the memory of a large file.

    Transaction: the whole document is validated first (its shape and values,
    then its numbers against the database); on any problem ImportRefused is
    raised and nothing is written. Otherwise every row is inserted in bulk
    inside one ``transaction.atomic()``: all or nothing.

    Idempotency: none by design; importing is not an update, so importing the
    same file twice refuses the second time (its numbers exist). Generated
    numbers are chosen inside the transaction; a concurrent writer that takes
    one of them first makes the insert fail, which is reported as
    ImportRefused with nothing written.
    """
    with _garbage_collection_paused():
        validator = _Validator(consume=consume)
        accounts = [row for row in validator.document(document) if row is not None]
        subscriptions = [sub for acc in accounts for sub in acc.children if sub is not None]
        charges_count = sum(
            1 for sub in subscriptions for charge in sub.children if charge is not None
        )
        problems = validator.problems

        with transaction.atomic():
            _check_unique_numbers(problems, accounts, Account, "account")
            _check_unique_numbers(problems, subscriptions, Subscription, "subscription")
            problems.raise_if_any()
            _assign_numbers(accounts, Account, ACCOUNT_NUMBER_FORMAT)
            _assign_numbers(subscriptions, Subscription, SUBSCRIPTION_NUMBER_FORMAT)
            try:
                if connection.vendor == "postgresql":
                    _insert_with_copy(accounts)
                else:
                    _insert_with_bulk_create(accounts)
            except IntegrityError as exc:
                # PostgreSQL adds DETAIL and CONTEXT lines; the first one says it.
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                raise ImportRefused(
                    [
                        f"the database refused the import ({reason}); another import may have "
                        "taken the same numbers meanwhile. Nothing was imported."
                    ]
                ) from exc
    return ImportSummary(len(accounts), len(subscriptions), charges_count)


@contextmanager
def _garbage_collection_paused():
    """An import builds millions of small objects that all stay alive; on
    Python 3.11 the cyclic collector rescans them over and over (measured:
    it doubles the time of a 100,000-account import). Nothing here makes
    cycles, so collection can wait until the import is done."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _insert_with_bulk_create(accounts: list[_Row]) -> None:
    account_objs = [Account(**row.values) for row in accounts]
    Account.objects.bulk_create(account_objs, batch_size=INSERT_BATCH_SIZE)

    subscription_rows: list[_Row] = []
    subscription_objs: list[Subscription] = []
    for account, row in zip(account_objs, accounts, strict=True):
        for sub in row.children:
            subscription_rows.append(sub)
            subscription_objs.append(Subscription(account_id=account.pk, **sub.values))
    Subscription.objects.bulk_create(subscription_objs, batch_size=INSERT_BATCH_SIZE)

    charge_objs = [
        Charge(subscription_id=subscription.pk, **charge.values)
        for subscription, row in zip(subscription_objs, subscription_rows, strict=True)
        for charge in row.children
    ]
    Charge.objects.bulk_create(charge_objs, batch_size=INSERT_BATCH_SIZE)


def _insert_with_copy(accounts: list[_Row]) -> None:
    """PostgreSQL: reserve the ids from each table's sequence, then stream the
    rows with COPY. bulk_create spends most of its time building model
    instances and compiling parameters (measured: 48 s of a 100,000-account
    import against about 5 s for COPY)."""
    now = timezone.now()
    with connection.cursor() as cursor:
        account_ids = bulk.reserve_ids(cursor, Account, len(accounts))
        subscriptions = [
            (account_id, sub)
            for account_id, acc in zip(account_ids, accounts, strict=True)
            for sub in acc.children
        ]
        subscription_ids = bulk.reserve_ids(cursor, Subscription, len(subscriptions))
        charges = [
            (subscription_id, charge)
            for subscription_id, (_, sub) in zip(subscription_ids, subscriptions, strict=True)
            for charge in sub.children
        ]
        charge_ids = bulk.reserve_ids(cursor, Charge, len(charges))

        bulk.copy_rows(
            cursor,
            Account,
            (
                {**row.values, "id": id_, "created_at": now}
                for id_, row in zip(account_ids, accounts, strict=True)
            ),
        )
        bulk.copy_rows(
            cursor,
            Subscription,
            (
                {**sub.values, "id": id_, "account_id": account_id, "created_at": now}
                for id_, (account_id, sub) in zip(subscription_ids, subscriptions, strict=True)
            ),
        )
        bulk.copy_rows(
            cursor,
            Charge,
            (
                {**charge.values, "id": id_, "subscription_id": subscription_id}
                for id_, (subscription_id, charge) in zip(charge_ids, charges, strict=True)
            ),
        )


def accounts_import_file(*, path: str, stdin: IO[bytes] | None = None) -> ImportSummary:
    """Read, parse and import an import file (``-``: ``stdin``).

    Refuses a file larger than settings.IMPORT_MAX_BYTES before reading it.
    Transaction and idempotency: as accounts_import. Raises ImportRefused.
    """
    raw = read_import_file(path=path, stdin=stdin, max_bytes=settings.IMPORT_MAX_BYTES)
    with _garbage_collection_paused():
        document = parse_import_json(raw=raw)
        del raw  # the parsed document is what the import needs now
        return accounts_import(document=document, consume=True)
