"""The checks of one value of an import file: its type, length, format and
range. Each problem is reported at the value's JSON path, worded for the
person who fixes the file."""

import datetime
import json
import re
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator

from core.dates import DATE_PATTERN, date_range_problem
from core.money import CENT
from customers.currencies import currency_problem
from customers.importer.parsing import KeysSeenTwice
from customers.importer.problems import Problems
from customers.models import CHARGE_QUANTITY, number_problem

AMOUNT_LIMIT = Decimal(10) ** 13
AMOUNT_RE = re.compile(r"-?[0-9]+(?:\.[0-9]{1,2})?")
# A charge's quantity: positive, at most 4 places (BILLING_RULES.md,
# Customers), and below what its column holds.
QUANTITY_PLACES = CHARGE_QUANTITY["decimal_places"]
QUANTITY_LIMIT = Decimal(10) ** (CHARGE_QUANTITY["max_digits"] - QUANTITY_PLACES)
QUANTITY_RE = re.compile(rf"[0-9]+(?:\.[0-9]{{1,{QUANTITY_PLACES}}})?")
QUANTITY_STEP = Decimal(1).scaleb(-QUANTITY_PLACES)
# A plain decimal of any sign and any places: what a pricing's values are
# parsed with; their sign, places and size are pricing_problems' to judge.
DECIMAL_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")

_email_validator = EmailValidator()


def type_name(value: Any) -> str:
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


def quote(value: str, limit: int = 40) -> str:
    shown = value if len(value) <= limit else value[:limit] + "..."
    return json.dumps(shown)


def _key(key: str) -> str:
    return key if key.isidentifier() and key.isascii() else json.dumps(key)[:60]


class ValueChecks:
    """The checks of one value of an object: each reads ``obj[key]``, adds a
    problem at ``path.key`` when it is wrong, and returns the cleaned value
    (None after a problem)."""

    def __init__(self) -> None:
        self.problems = Problems()

    def text(self, obj: dict, key: str, path: str, *, max_length: int, required: bool):
        value = obj.get(key)
        if value is None:
            if required:
                self.problems.add(f"{path}.{key}", self.missing_or_null(obj, key))
            return None
        where = f"{path}.{key}"
        if not isinstance(value, str):
            self.problems.add(where, f"must be a string, not {type_name(value)}")
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
                self.problems.add(f"{path}.{key}", self.missing_or_null(obj, key))
            return default
        # bool is a subclass of int; true is not a day of the month.
        if type(value) is not int:
            self.problems.add(f"{path}.{key}", f"must be an integer, not {type_name(value)}")
            return None
        if not low <= value <= high:
            self.problems.add(f"{path}.{key}", f"must be between {low} and {high}, not {value}")
            return None
        return value

    def date(self, obj, key, path, *, required):
        value = obj.get(key)
        if value is None:
            if required:
                self.problems.add(f"{path}.{key}", self.missing_or_null(obj, key))
            return None
        where = f"{path}.{key}"
        if not isinstance(value, str):
            self.problems.add(where, f"must be a date string YYYY-MM-DD, not {type_name(value)}")
            return None
        if not DATE_PATTERN.fullmatch(value):
            self.problems.add(where, f"must be a date YYYY-MM-DD, not {quote(value)}")
            return None
        try:
            day = datetime.date.fromisoformat(value)
        except ValueError:
            self.problems.add(where, f"is not a calendar date: {quote(value)}")
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
            self.problems.add(where, self.missing_or_null(obj, "amount"))
            return None
        if not isinstance(value, str):
            self.problems.add(
                where,
                f'must be a decimal string such as "100.00", not {type_name(value)} '
                "(a JSON number would lose cents)",
            )
            return None
        if not AMOUNT_RE.fullmatch(value):
            self.problems.add(
                where,
                f'must be a decimal string with at most 2 decimal places such as "100.00" '
                f'or "-5.5", not {quote(value)}',
            )
            return None
        amount = Decimal(value)  # the pattern admits only plain decimals
        if abs(amount) >= AMOUNT_LIMIT:
            self.problems.add(where, "must be below 10^13 in absolute value")
            return None
        # "-0.00" is zero; keep one spelling of it.
        return amount.quantize(CENT) if amount else Decimal("0.00")

    def quantity(self, obj, path):
        """A charge's quantity: a decimal string above 0 with at most 4
        places; "1" when absent."""
        value = obj.get("quantity")
        where = f"{path}.quantity"
        if value is None:
            return Decimal(1).quantize(QUANTITY_STEP)
        if not isinstance(value, str):
            self.problems.add(
                where,
                f'must be a decimal string such as "3" or "2.5", not {type_name(value)} '
                "(a JSON number would lose digits)",
            )
            return None
        if not QUANTITY_RE.fullmatch(value):
            if DECIMAL_RE.fullmatch(value) and value.startswith("-"):
                self.problems.add(where, f"must be above 0, not {value}")
                return None
            self.problems.add(
                where,
                f"must be a decimal string with at most {QUANTITY_PLACES} decimal places "
                f'such as "3" or "2.5", not {quote(value)}',
            )
            return None
        quantity = Decimal(value)  # the pattern admits only plain decimals
        if not quantity:
            self.problems.add(where, f"must be above 0, not {value}")
            return None
        if quantity >= QUANTITY_LIMIT:
            self.problems.add(where, f"must be below 10^{QUANTITY_LIMIT.adjusted()}")
            return None
        return quantity.quantize(QUANTITY_STEP)

    def decimal(self, obj, key, path, *, example, required=True):
        """A decimal string of any sign and places, as a Decimal (the
        caller judges its range); ``None`` when absent and not required."""
        value = obj.get(key)
        where = f"{path}.{key}"
        if value is None:
            if required:
                self.problems.add(where, self.missing_or_null(obj, key))
            return None
        if not isinstance(value, str):
            self.problems.add(
                where,
                f'must be a decimal string such as "{example}", not {type_name(value)} '
                "(a JSON number would lose digits)",
            )
            return None
        if not DECIMAL_RE.fullmatch(value):
            self.problems.add(
                where, f'must be a decimal string such as "{example}", not {quote(value)}'
            )
            return None
        return Decimal(value)

    def choice(self, obj, key, path, *, choices, default=None):
        value = obj.get(key)
        if value is None:
            if default is None:
                self.problems.add(f"{path}.{key}", self.missing_or_null(obj, key))
            return default
        if not isinstance(value, str) or value not in choices:
            expected = ", ".join(f'"{choice}"' for choice in choices)
            shown = quote(value) if isinstance(value, str) else type_name(value)
            self.problems.add(f"{path}.{key}", f"must be one of {expected}, not {shown}")
            return None
        return value

    def currency(self, obj, path, *, default=None):
        value = obj.get("currency")
        if value is None:
            if default is None:
                self.problems.add(f"{path}.currency", self.missing_or_null(obj, "currency"))
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
                f"{path}.bill_to_email", f"is not a valid email address: {quote(value)}"
            )
            return None
        return value

    def array(self, obj, key, path) -> list:
        value = obj.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.problems.add(f"{path}.{key}", f"must be an array, not {type_name(value)}")
            return []
        return value

    def known_fields(self, obj: dict, allowed: frozenset, path: str) -> None:
        if not allowed.issuperset(obj):
            for key in [key for key in obj if key not in allowed]:
                self.problems.add(f"{path}.{_key(key)}", "unknown field")
        if type(obj) is KeysSeenTwice:
            for key in obj.duplicate_keys:
                self.problems.add(f"{path}.{_key(key)}", "field appears more than once")

    @staticmethod
    def missing_or_null(obj: dict, key: str) -> str:
        return "must not be null" if key in obj else "required field is missing"
