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
from customers.importer.values import AMOUNT_LIMIT, ValueChecks, type_name
from customers.models import (
    BillingPeriod,
    ChargeType,
    PricingModel,
    Status,
    TaxRate,
    tax_code_problem,
)
from customers.pricing import EXACT, PRICING_MODELS, ZERO, Tier, plain, pricing_problems

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
        "tax_codes",
    }
)
SUBSCRIPTION_FIELDS = frozenset({"number", "start_date", "status", "charges"})
CHARGE_FIELDS = frozenset(
    {
        "number",
        "name",
        "type",
        "amount",
        "quantity",
        "currency",
        "period",
        "start_date",
        "end_date",
        "unit",
        "pricing",
        "taxable",
    }
)
PRICING_FIELDS = frozenset({"model", "unit_price", "tiers"})
TIER_FIELDS = frozenset({"up_to", "unit_price", "flat_fee"})

# The choices' ``.values`` is rebuilt on every access; the import checks
# hundreds of thousands of fields.
STATUSES = tuple(Status.values)
CHARGE_TYPES = tuple(ChargeType.values)
PERIODS = tuple(BillingPeriod.values)
ONE_TIME = str(ChargeType.ONE_TIME.value)
USAGE = str(ChargeType.USAGE.value)
BILLED_BY_PERIOD = (str(ChargeType.RECURRING.value), USAGE)
PER_UNIT = str(PricingModel.PER_UNIT.value)
ACTIVE = str(Status.ACTIVE.value)


@dataclass(slots=True)
class Row:
    """A validated object with where it came from, ready to become a model."""

    path: str
    values: dict[str, Any]
    children: list["Row"] = field(default_factory=list)
    # An account's tax codes, in the file's order (checked against the
    # database with the numbers: TaxCodesSeen).
    tax_codes: tuple[str, ...] = ()


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


def _account_tax_codes(check, obj, path, values, account):
    """``tax_codes``: a list of distinct tax codes (each must name a rate:
    ``TaxCodesSeen``); absent or null, none. Kept out of the account's
    model values (``_account_row`` moves them to the row)."""
    codes = obj.get("tax_codes")
    values["tax_codes"] = ()
    if codes is None:
        return
    where = f"{path}.tax_codes"
    if not isinstance(codes, list):
        check.problems.add(
            where, f'must be an array of tax codes such as ["VAT20"], not {type_name(codes)}'
        )
        return
    seen: dict[str, int] = {}
    valid = True
    for i, code in enumerate(codes):
        if not isinstance(code, str):
            check.problems.add(f"{where}[{i}]", f"must be a string, not {type_name(code)}")
            valid = False
            continue
        problem = tax_code_problem(code)
        if problem:
            check.problems.add(f"{where}[{i}]", problem)
            valid = False
            continue
        first = seen.setdefault(code, i)
        if first != i:
            check.problems.add(
                f"{where}[{i}]",
                f"tax code {code} appears more than once (first at {where}[{first}])",
            )
            valid = False
    if valid:
        values["tax_codes"] = tuple(codes)


# The fields that stand alone in one call: this runs per account of a
# 100,000-account file.
ACCOUNT_RULES: tuple[Rule, ...] = (_account_fields, _account_tax_codes)


# --- a subscription ----------------------------------------------------------------


def _subscription_fields(check, obj, path, values, account):
    values["number"] = check.number(obj, path)
    values["start_date"] = check.date(obj, "start_date", path, required=True)
    values["status"] = check.choice(obj, "status", path, choices=STATUSES, default=ACTIVE)


SUBSCRIPTION_RULES: tuple[Rule, ...] = (_subscription_fields,)


# --- a charge ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PricingTerms:
    """A usage charge's pricing as the file gives it, valid as
    ``pricing_problems`` says; the writer makes it a Pricing and its tiers."""

    model: str
    tiers: tuple[Tier, ...]


def _charge_number(check, obj, path, values, account):
    values["number"] = check.number(obj, path)


def _charge_type_period_and_dates(check, obj, path, values, account):
    """The type, and what depends on it: a recurring or usage charge has a
    period, a one_time charge neither a period nor an end date; an end date
    is after the start date."""
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
        if charge_type in BILLED_BY_PERIOD:
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


def _charge_terms(check, obj, path, values, account):
    """What the charge costs: a recurring or one_time charge its amount (the
    unit price) x quantity, a usage charge its unit and pricing. A charge
    whose type is unknown is checked as priced by amount, as the first
    release did, unless it has a pricing."""
    if values["charge_type"] == USAGE or (values["charge_type"] is None and "pricing" in obj):
        _usage_terms(check, obj, path, values)
    else:
        _amount_terms(check, obj, path, values)


def _amount_terms(check, obj, path, values):
    amount = check.amount(obj, path)
    quantity = check.quantity(obj, path)
    # Exact: the limit is on the price itself, never on a rounded one.
    if (
        amount is not None
        and quantity is not None
        and abs(EXACT.multiply(amount, quantity)) >= AMOUNT_LIMIT
    ):
        check.problems.add(
            f"{path}.quantity",
            f"amount × quantity ({amount} × {plain(quantity)}) must be below 10^13 "
            "in absolute value",
        )
        quantity = None
    for key in ("unit", "pricing"):
        if obj.get(key) is not None:
            check.problems.add(f"{path}.{key}", f"only a usage charge has a {key}")
    values["amount"] = amount
    values["quantity"] = quantity
    values["unit"] = ""
    values["pricing"] = None


def _usage_terms(check, obj, path, values):
    if obj.get("amount") is not None:
        check.problems.add(
            f"{path}.amount", "a usage charge has no amount: its pricing rates its usage"
        )
    if obj.get("quantity") is not None:
        check.problems.add(
            f"{path}.quantity", "a usage charge has no quantity: its usage is its quantity"
        )
    values["amount"] = None
    values["quantity"] = None
    values["unit"] = check.text(obj, "unit", path, max_length=50, required=True)
    values["pricing"] = _pricing(check, obj, path)


def _pricing(check: ValueChecks, obj: dict, path: str) -> PricingTerms | None:
    """The charge's ``pricing``: ``{"model": "per_unit", "unit_price": ...}``
    or a graduated or volume model with ``tiers``. Each value is read here;
    the whole is judged by ``pricing_problems``, the rules of every pricing."""
    where = f"{path}.pricing"
    pricing = obj.get("pricing")
    if pricing is None:
        check.problems.add(where, check.missing_or_null(obj, "pricing"))
        return None
    if not isinstance(pricing, dict):
        check.problems.add(where, f"must be an object, not {type_name(pricing)}")
        return None
    check.known_fields(pricing, PRICING_FIELDS, where)
    model = check.choice(pricing, "model", where, choices=PRICING_MODELS)
    if model is None:
        return None
    count = check.problems.count
    if model == PER_UNIT:
        if pricing.get("tiers") is not None:
            check.problems.add(f"{where}.tiers", "a per_unit pricing has one unit_price, not tiers")
        unit_price = check.decimal(pricing, "unit_price", where, example="0.0025")
        tiers = (Tier(up_to=None, unit_price=unit_price),)
        # pricing_problems speaks of the one tier a per-unit pricing is made of.
        at = {"tiers[0].unit_price": "unit_price"}
    else:
        if pricing.get("unit_price") is not None:
            check.problems.add(
                f"{where}.unit_price",
                f"a {model} pricing gives its unit prices in its tiers",
            )
        tiers = _tiers(check, pricing, where)
        at = {}
    if check.problems.count > count:
        return None
    problems = pricing_problems(model=model, tiers=tiers)
    for place, message in problems:
        check.problems.add(f"{where}.{at.get(place, place)}", message)
    return None if problems else PricingTerms(model, tiers)


def _tiers(check: ValueChecks, pricing: dict, where: str) -> tuple[Tier, ...]:
    if pricing.get("tiers") is None:
        check.problems.add(f"{where}.tiers", check.missing_or_null(pricing, "tiers"))
        return ()
    tiers = []
    for i, tier in enumerate(check.array(pricing, "tiers", where)):
        tier_path = f"{where}.tiers[{i}]"
        if not isinstance(tier, dict):
            check.problems.add(tier_path, f"must be an object, not {type_name(tier)}")
            continue
        check.known_fields(tier, TIER_FIELDS, tier_path)
        if "up_to" not in tier:
            check.problems.add(
                f"{tier_path}.up_to",
                "required field is missing (null for the last tier, which is unbounded)",
            )
        up_to = check.decimal(tier, "up_to", tier_path, example="1000", required=False)
        unit_price = check.decimal(tier, "unit_price", tier_path, example="0.0025")
        flat_fee = check.decimal(tier, "flat_fee", tier_path, example="5.00", required=False)
        tiers.append(
            Tier(
                up_to=up_to, unit_price=unit_price, flat_fee=ZERO if flat_fee is None else flat_fee
            )
        )
    return tuple(tiers)


def _charge_taxable(check, obj, path, values, account):
    """``taxable``: true or false; absent or null, true."""
    taxable = obj.get("taxable")
    if taxable is None:
        values["taxable"] = True
        return
    if not isinstance(taxable, bool):
        check.problems.add(f"{path}.taxable", f"must be true or false, not {type_name(taxable)}")
        taxable = True
    values["taxable"] = taxable


CHARGE_RULES: tuple[Rule, ...] = (
    _charge_number,
    _charge_type_period_and_dates,
    _charge_currency,
    _charge_name,
    _charge_terms,
    _charge_taxable,
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
        row.tax_codes = row.values.pop("tax_codes")
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


def document_accounts(check: ValueChecks, document: Any) -> list:
    """The document's ``accounts`` list (empty when the document is not an
    object with one); problems of the document's shape are added to
    ``check.problems``."""
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
    return accounts


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


# --- across records, in one pass over a file ---------------------------------------

# Numbers looked up in the database per query.
NUMBERS_PER_QUERY = 10_000


def _account_path(place: int) -> str:
    return f"accounts[{place}]"


def _subscription_path(place: int) -> str:
    return f"accounts[{place >> 32}].subscriptions[{place & 0xFFFFFFFF}]"


def _charge_path(place: int) -> str:
    return f"{_subscription_path(place >> 32)}.charges[{place & 0xFFFFFFFF}]"


class NumbersSeen:
    """The numbers of one kind of record of a file, as ``check_unique_numbers``
    judges them, kept small: each number once, lowered, with where it was
    first seen packed in an int (the record's place: its account's index,
    its subscription's, its own) and how it was spelled (as lowered, as
    upper case, or kept apart). No row is kept: a file's rows are streamed,
    and this is what the checks across them need.

    ``add`` reports a number seen before in ``duplicates`` at once, worded as
    check_unique_numbers words it; ``check_database`` reports those the
    database already has, in the order the file first gives them."""

    def __init__(self, model, noun: str, path):
        self.model = model
        self.noun = noun
        self._path = path
        self.first: dict[str, int] = {}
        self._spelled: dict[str, str] = {}
        self.duplicates = Problems()

    def __contains__(self, lowered: str) -> bool:
        return lowered in self.first

    def add(self, number: str, place: int) -> None:
        lowered = number.lower()
        spelling = 0 if number == lowered else 1 if number == lowered.upper() else 2
        code = place << 2 | spelling
        first = self.first.setdefault(lowered, code)
        if first == code:  # places are unique: this is the first time
            if spelling == 2:
                self._spelled[lowered] = number
            return
        earlier = self._spelling(lowered, first)
        first_path = self._path(first >> 2)
        path = self._path(place)
        noun = self.noun
        if earlier == number:
            self.duplicates.add(
                f"{path}.number",
                f"{noun} number {number} appears more than once in the file "
                f"(first at {first_path}.number)",
            )
        else:
            self.duplicates.add(
                f"{path}.number",
                f"{noun} number {number} differs only in case from {earlier} at "
                f"{first_path}.number (numbers must differ in more than case)",
            )

    def _spelling(self, lowered: str, code: int) -> str:
        spelling = code & 3
        if spelling == 0:
            return lowered
        if spelling == 1:
            return lowered.upper()
        return self._spelled[lowered]

    def check_database(self, problems: Problems) -> None:
        """Add this file's duplicates to ``problems``, then the numbers the
        database already has (ignoring case, as _numbers_in_use compares)."""
        problems.extend(self.duplicates)
        noun = self.noun
        items = iter(self.first.items())
        while True:
            chunk = [(self._spelling(lowered, code), code) for lowered, code in _take(items)]
            if not chunk:
                return
            existing = _numbers_in_use(self.model, [number for number, _ in chunk])
            for number, code in chunk:
                stored = existing.get(number)
                if stored is None:
                    continue
                if stored == number:
                    message = f"{noun} {number} already exists (importing does not update)"
                else:
                    message = (
                        f"{noun} number {number} differs only in case from {noun} {stored}, "
                        "which already exists (numbers must differ in more than case)"
                    )
                problems.add(f"{self._path(code >> 2)}.number", message)


def _take(items: Iterator, size: int = NUMBERS_PER_QUERY) -> list:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            break
    return chunk


class TaxCodesSeen:
    """The accounts' tax codes of a file, as ``check_tax_codes`` judges them:
    for each list of codes, the indexes of the accounts that give it."""

    def __init__(self) -> None:
        self.accounts: dict[tuple[str, ...], list[int]] = {}

    def add(self, codes: tuple[str, ...], place: int) -> None:
        if codes:
            self.accounts.setdefault(codes, []).append(place)

    def check(self, problems: Problems) -> dict[str, int]:
        """Report the codes that name no tax rate, in the file's order;
        return the id of each code that does."""
        wanted = {code for codes in self.accounts for code in codes}
        if not wanted:
            return {}
        ids = dict(TaxRate.objects.filter(code__in=sorted(wanted)).values_list("code", "id"))
        missing = sorted(
            (place, i, code)
            for codes, places in self.accounts.items()
            for i, code in enumerate(codes)
            if code not in ids
            for place in places
        )
        for place, i, code in missing:
            problems.add(
                f"{_account_path(place)}.tax_codes[{i}]",
                f"no tax rate has the code {code} (tax_rate --list shows them)",
            )
        return ids


class FileChecks:
    """Everything a file's checks across records keep while its accounts
    are validated one by one (``account``): the value checks and their
    problems, the numbers of each kind, the tax codes, and the counts."""

    def __init__(self, account_model, subscription_model, charge_model) -> None:
        self.values = ValueChecks()
        self.accounts = NumbersSeen(account_model, "account", _account_path)
        self.subscriptions = NumbersSeen(subscription_model, "subscription", _subscription_path)
        self.charges = NumbersSeen(charge_model, "charge", _charge_path)
        self.tax_codes = TaxCodesSeen()
        self.counts = [0, 0, 0]

    @property
    def clean(self) -> bool:
        """No problem so far (the import may still be refused later)."""
        return not (
            self.values.problems.count
            or self.accounts.duplicates.count
            or self.subscriptions.duplicates.count
            or self.charges.duplicates.count
        )

    def account(self, obj: Any, index: int) -> Row | None:
        """Validate the file's ``index``-th account with its subscriptions and
        charges; returns its row (None: not an object)."""
        row = _account_row(self.values, obj, _account_path(index))
        if row is None:
            return None
        counts = self.counts
        counts[0] += 1
        number = row.values["number"]
        if number is not None:
            self.accounts.add(number, index)
        self.tax_codes.add(row.tax_codes, index)
        for j, sub in enumerate(row.children):
            if sub is None:
                continue
            counts[1] += 1
            place = index << 32 | j
            number = sub.values["number"]
            if number is not None:
                self.subscriptions.add(number, place)
            for k, charge in enumerate(sub.children):
                if charge is None:
                    continue
                counts[2] += 1
                number = charge.values["number"]
                if number is not None:
                    self.charges.add(number, place << 32 | k)
        return row

    def check_database(self) -> dict[str, int]:
        """The checks against the database, in check_unique_numbers' order;
        raises ImportRefused with every problem of the file, if any. Returns
        the tax codes' rate ids."""
        problems = self.values.problems
        self.accounts.check_database(problems)
        self.subscriptions.check_database(problems)
        self.charges.check_database(problems)
        tax_rate_ids = self.tax_codes.check(problems)
        problems.raise_if_any()
        return tax_rate_ids
