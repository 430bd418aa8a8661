"""Validating an import document: the rules of each record (an account, a
subscription, a charge) and the rules across records (numbers unique in the
file and in the database).

A record's rules are small functions, run in the order of their tuple
(``ACCOUNT_RULES``, ``SUBSCRIPTION_RULES``, ``CHARGE_RULES``), which is the
order its problems are reported in. Each takes the value checks, the record's
JSON object and path, the model values made so far (to fill in), and its
account's values; it adds problems and model values. A new field of a charge
is a new rule in CHARGE_RULES and its name in CHARGE_FIELDS.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import connection

from customers.importer.problems import Problems
from customers.importer.values import ValueChecks, type_name
from customers.models import BillingPeriod, ChargeType, Status

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

# The choices' ``.values`` is rebuilt on every access; the import checks
# hundreds of thousands of fields.
STATUSES = tuple(Status.values)
CHARGE_TYPES = tuple(ChargeType.values)
PERIODS = tuple(BillingPeriod.values)
RECURRING = str(ChargeType.RECURRING.value)
ONE_TIME = str(ChargeType.ONE_TIME.value)
ACTIVE = str(Status.ACTIVE.value)


@dataclass(slots=True)
class Row:
    """A validated object with where it came from, ready to become a model."""

    path: str
    values: dict[str, Any]
    children: list["Row"] = field(default_factory=list)


# (checks, the record's object, its path, its model values, its account's model values)
Rule = Callable[[ValueChecks, dict, str, dict[str, Any], dict[str, Any]], None]


# --- an account ------------------------------------------------------------------


def _account_fields(check, obj, path, values, account):
    values["number"] = check.number(obj, path)
    values["name"] = check.text(obj, "name", path, max_length=255, required=True)
    values["bill_to_email"] = check.email(obj, path)
    values["currency"] = check.currency(obj, path)
    values["bill_cycle_day"] = check.integer(obj, "bill_cycle_day", path, low=1, high=31)
    values["batch"] = check.integer(obj, "batch", path, low=1, high=50, default=1)
    values["payment_term_days"] = check.integer(
        obj, "payment_term_days", path, low=0, high=365, default=30
    )
    values["status"] = check.choice(obj, "status", path, choices=STATUSES, default=ACTIVE)


# One rule for the fields that stand alone, in one call: this runs per
# account of a 100,000-account file.
ACCOUNT_RULES: tuple[Rule, ...] = (_account_fields,)


# --- a subscription ----------------------------------------------------------------


def _subscription_fields(check, obj, path, values, account):
    values["number"] = check.number(obj, path)
    values["start_date"] = check.date(obj, "start_date", path, required=True)
    values["status"] = check.choice(obj, "status", path, choices=STATUSES, default=ACTIVE)


SUBSCRIPTION_RULES: tuple[Rule, ...] = (_subscription_fields,)


# --- a charge ----------------------------------------------------------------------


def _charge_type_period_and_dates(check, obj, path, values, account):
    """The type, and what depends on it: a recurring charge has a period, a
    one_time charge neither a period nor an end date; an end date is after
    the start date."""
    charge_type = check.choice(obj, "type", path, choices=CHARGE_TYPES)
    start_date = check.date(obj, "start_date", path, required=True)
    end_date = check.date(obj, "end_date", path, required=False)
    period = ""
    if charge_type == ONE_TIME:
        if obj.get("period") is not None:
            check.problems.add(f"{path}.period", "a one_time charge has no period")
        if obj.get("end_date") is not None:
            check.problems.add(f"{path}.end_date", "a one_time charge has no end date")
    else:
        if charge_type == RECURRING:
            period = check.choice(obj, "period", path, choices=PERIODS)
        if start_date and end_date and end_date <= start_date:
            check.problems.add(
                f"{path}.end_date",
                f"must be after start_date {start_date.isoformat()}, not {end_date.isoformat()}",
            )
    values["charge_type"] = charge_type
    values["period"] = period
    values["start_date"] = start_date
    values["end_date"] = end_date


def _charge_currency(check, obj, path, values, account):
    # Without a currency of its own a charge takes its account's; when
    # that one is invalid it is reported on the account.
    values["currency"] = check.currency(obj, path, default=account["currency"] or "")


def _charge_name(check, obj, path, values, account):
    values["name"] = check.text(obj, "name", path, max_length=255, required=True)


def _charge_amount(check, obj, path, values, account):
    values["amount"] = check.amount(obj, path)


CHARGE_RULES: tuple[Rule, ...] = (
    _charge_type_period_and_dates,
    _charge_currency,
    _charge_name,
    _charge_amount,
)


# --- the document ------------------------------------------------------------------


def _row(
    check: ValueChecks,
    obj: Any,
    path: str,
    allowed: frozenset,
    rules: tuple[Rule, ...],
    account: dict[str, Any] | None,
) -> Row | None:
    """Check one record: an object with only the ``allowed`` fields, each
    once, then its ``rules``. ``account`` None: the record is the account."""
    if not isinstance(obj, dict):
        check.problems.add(path, f"must be an object, not {type_name(obj)}")
        return None
    check.known_fields(obj, allowed, path)
    values: dict[str, Any] = {}
    for rule in rules:
        rule(check, obj, path, values, values if account is None else account)
    return Row(path, values)


def _account_row(check: ValueChecks, obj: Any, path: str) -> Row | None:
    row = _row(check, obj, path, ACCOUNT_FIELDS, ACCOUNT_RULES, None)
    if row is not None:
        for i, sub in enumerate(check.array(obj, "subscriptions", path)):
            sub_path = f"{path}.subscriptions[{i}]"
            row.children.append(_subscription_row(check, sub, sub_path, row.values))
    return row


def _subscription_row(check: ValueChecks, obj: Any, path: str, account: dict) -> Row | None:
    row = _row(check, obj, path, SUBSCRIPTION_FIELDS, SUBSCRIPTION_RULES, account)
    if row is not None:
        for i, charge in enumerate(check.array(obj, "charges", path)):
            charge_path = f"{path}.charges[{i}]"
            row.children.append(
                _row(check, charge, charge_path, CHARGE_FIELDS, CHARGE_RULES, account)
            )
    return row


def document_rows(check: ValueChecks, document: Any, *, consume: bool = False) -> list[Row | None]:
    """The document's accounts as rows (None for an account that is not an
    object), with their subscriptions and charges; every problem is added to
    ``check.problems``. With ``consume`` each parsed account is dropped from
    the document once it is a row, so the parsed file and its rows are never
    all in memory at once."""
    if not isinstance(document, dict):
        check.problems.add(
            "(top level)",
            f'must be a JSON object with an "accounts" array, not {type_name(document)}',
        )
        return []
    check.known_fields(document, frozenset({"accounts"}), "(top level)")
    if "accounts" not in document:
        check.problems.add("accounts", "required field is missing")
        return []
    accounts = document["accounts"]
    if not isinstance(accounts, list):
        check.problems.add("accounts", f"must be an array, not {type_name(accounts)}")
        return []
    if not consume:
        return [_account_row(check, obj, f"accounts[{i}]") for i, obj in enumerate(accounts)]
    rows = []
    for i in range(len(accounts)):
        obj, accounts[i] = accounts[i], None
        rows.append(_account_row(check, obj, f"accounts[{i}]"))
    return rows


# --- across records: numbers -------------------------------------------------------


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


def check_unique_numbers(problems: Problems, rows: list[Row], model, noun: str) -> None:
    """Report numbers given twice in the file or already in the database,
    ignoring case: numbers are compared exactly (a clerk types ``mixcase1``
    to bill that customer), so two that differ only in case must not exist."""
    first_seen: dict[str, Row] = {}
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
