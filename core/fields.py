"""Exact decimal columns on every database.

Django keeps a ``DecimalField`` on SQLite as a floating-point number (REAL):
15 significant digits, so 19,999,999,999,999.98 comes back as
20,000,000,000,000.00 and sums lose cents. ``ExactDecimalField`` stores the
same values exactly everywhere:

- on PostgreSQL (and any other database with a decimal type) it is the usual
  ``numeric(max_digits, decimal_places)``;
- on SQLite it is an INTEGER count of 10^-decimal_places units (cents, for
  money), which SQLite stores, compares and sums exactly up to 2^63.

The scale is the column's own: money has 2 places (cents), quantities 4 or
6 (usage, issue 13), each stored as whole units of its last place. SQLite's
integers have 64 bits (up to 9.2 x 10^18), so a column has at most 18
digits (``MAX_DIGITS``) whatever its places: a wider one is refused when the
field is defined, not when a value overflows.

Either way a value written that does not fit is refused before it reaches
the database (``ValueError``): more decimal places than the column has (never
rounded silently), or ``max_digits - decimal_places`` digits or more before
the point (PostgreSQL's "numeric field overflow"). A value compared with the
column in a filter may be anything.

Reading a column, filtering on it (``amount__gt=0``), ``F()`` between columns
of one scale and ``Sum()`` stay exact on SQLite. Two things need care there,
because a plain Python value in SQL knows nothing of the scale:

- arithmetic with a literal: ``F("balance") - Value(amount, output_field=field)``
  (a bare ``Decimal`` would be bound as text and mixed with units);
- arithmetic selected as a value (``annotate(x=F("a") - F("b"))``): give
  ``output_field=`` the money field, or Django reads units as an amount.

``ExactSum`` is ``Sum`` that stays exact on SQLite past 2^63 units (SQLite's
own SUM of integers fails with "integer overflow" there): a run's totals.
"""

from decimal import Context, Decimal

from django.db import models
from django.utils.functional import cached_property

# The split of ExactSum on SQLite: each part's sum stays far inside 2^63.
SUM_SPLIT = 10**9
# The widest column SQLite's 64-bit integers hold as units: 10^18 - 1 < 2^63.
MAX_DIGITS = 18


class ExactDecimalField(models.DecimalField):
    description = "Decimal number stored exactly (%(max_digits)s digits, %(decimal_places)s places)"

    def __init__(self, *args, max_digits, decimal_places, **kwargs):
        if not 0 <= decimal_places <= max_digits <= MAX_DIGITS:
            raise ValueError(
                f"ExactDecimalField holds at most {MAX_DIGITS} digits, its places among them "
                f"(SQLite stores them as a 64-bit integer), not max_digits={max_digits}, "
                f"decimal_places={decimal_places}."
            )
        super().__init__(*args, max_digits=max_digits, decimal_places=decimal_places, **kwargs)

    def get_internal_type(self):
        # Not "DecimalField": Django's SQLite backend would then convert every
        # value read through a 15-digit float context.
        return "ExactDecimalField"

    def db_type(self, connection):
        if connection.vendor == "sqlite":
            return "integer"
        return connection.data_types["DecimalField"] % self.db_type_parameters(connection)

    def rel_db_type(self, connection):
        return self.db_type(connection)

    @cached_property
    def limit(self):
        """The smallest absolute value the column cannot hold."""
        return Decimal(10) ** (self.max_digits - self.decimal_places)

    def exact(self, value):
        """``value`` with exactly ``decimal_places`` places, or ValueError."""
        if abs(value) >= self.limit:
            raise ValueError(
                f"{self.name}: {value} does not fit: the column holds less than "
                f"{self.limit:,} in absolute value."
            )
        quantized = value.quantize(Decimal(1).scaleb(-self.decimal_places), context=self._wide)
        if quantized != value:
            raise ValueError(
                f"{self.name}: {value} has more than {self.decimal_places} decimal places."
            )
        return quantized

    @cached_property
    def _wide(self):
        # Room for every value below the limit, and for the digits past the
        # column's places that make a value inexact.
        return Context(prec=self.max_digits + 50)

    def get_db_prep_save(self, value, connection):
        # What is written must fit exactly; refused here, not rounded.
        if value is None or hasattr(value, "as_sql"):
            return value
        value = self.exact(self.to_python(self.get_prep_value(value)))
        if connection.vendor == "sqlite":
            return int(value.scaleb(self.decimal_places, context=self._wide))
        return connection.ops.adapt_decimalfield_value(value, self.max_digits, self.decimal_places)

    def sqlite_units(self, value, connection):
        """What ``get_db_prep_save`` writes to SQLite (the integer units),
        without its conversions when ``value`` is already an exact Decimal
        that fits: a bulk write prepares hundreds of thousands of them."""
        if value is None:
            return None
        if type(value) is Decimal and value.is_finite() and abs(value) < self.limit:
            units = value.scaleb(self.decimal_places, context=self._wide)
            integral = int(units)
            if integral == units:
                return integral
        # Not a plain Decimal, or refused: the general path (and its message).
        return self.get_db_prep_save(value, connection)

    def get_db_prep_value(self, value, connection, prepared=False):
        # A value compared with the column (a filter): any value compares
        # right, also one the column could not hold.
        if not prepared:
            value = self.get_prep_value(value)
        if value is None or hasattr(value, "as_sql"):
            return value
        value = self.to_python(value)
        if connection.vendor != "sqlite":
            return connection.ops.adapt_decimalfield_value(
                value, self.max_digits, self.decimal_places
            )
        units = value.scaleb(self.decimal_places, context=self._wide)
        if units == units.to_integral_value() and abs(units) < 2**63:
            return int(units)
        # A fraction of a unit, or beyond SQLite's integers: as text, which
        # SQLite turns into a number to compare with the integer column.
        return str(units)

    def get_db_converters(self, connection):
        # Only SQLite's integers need converting: with no converter, Django
        # skips its pass over every row read (a fifth of the Python time of
        # reading a page of documents on PostgreSQL).
        return super().get_db_converters(connection) if connection.vendor == "sqlite" else []

    def from_db_value(self, value, expression, connection):
        if value is None or connection.vendor != "sqlite":
            return value
        if isinstance(value, str):
            # ExactSum's "high:low" (see ExactSum.as_sqlite).
            high, low = value.split(":")
            value = int(high) * SUM_SPLIT + int(low)
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(
                f"{self.name}: read {value!r} where a count of units was expected; "
                "an expression over this column needs output_field (see core.fields)."
            )
        # The string constructor is exact at any size; scaleb() would round
        # to the context's precision.
        return Decimal(f"{value}E-{self.decimal_places}")


class ExactSum(models.Sum):
    """``Sum`` of an ``ExactDecimalField``, exact at any size on SQLite too.

    SQLite sums integers exactly but fails past 2^63 units (about 9.2 x 10^16
    in cents). Here it sums the high and the low part of every value apart,
    neither of which can come near that, and the field puts them together.
    No ``distinct`` or ``default`` (the parts of distinct values are not
    distinct, and a default would be a value without the field's scale)."""

    def __init__(self, *expressions, **extra):
        if extra.get("distinct") or extra.get("default") is not None:
            raise TypeError("ExactSum takes neither distinct nor default.")
        super().__init__(*expressions, **extra)

    def as_sqlite(self, compiler, connection, **extra_context):
        expression = self.get_source_expressions()[0]
        if self.filter:
            expression = models.Case(models.When(self.filter, then=expression))
        sql, params = compiler.compile(expression)
        # SQLite's / truncates and % takes the dividend's sign, so
        # high * SUM_SPLIT + low == value for negative values too.
        high = f"SUM(({sql}) / {SUM_SPLIT})"
        low = f"SUM(({sql}) %% {SUM_SPLIT})"
        return f"(CAST({high} AS TEXT) || ':' || CAST({low} AS TEXT))", (*params, *params)


class BytewiseCharField(models.CharField):
    """A ``CharField`` compared byte by byte on PostgreSQL (``COLLATE "C"``),
    for keys that are codes, not words (usage record ids: printable ASCII,
    equal only when identical).

    The database's default collation (C.UTF-8 here, often en_US.UTF-8 in
    production) sends every comparison of a B-tree through the locale's
    ``strcoll``; "C" compares with ``memcmp``, and a B-tree in "C" order also
    answers ``LIKE 'prefix%'``, so no second ``varchar_pattern_ops`` index is
    needed for it. Other databases keep their own comparison (SQLite's is
    already bytewise and has no collation named "C"). Whatever a query
    compares with the column must be in the same collation (a temporary
    table's column declared ``COLLATE "C"``), or PostgreSQL refuses the
    comparison of two collations."""

    def db_parameters(self, connection):
        params = super().db_parameters(connection)
        if connection.vendor == "postgresql" and not self.db_collation:
            params["collation"] = "C"
        return params
