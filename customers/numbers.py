"""Charge numbers (``C00000001``): handed out once, never twice, on both databases.

A charge given no number gets the next one of the charge counter, skipping
a number already taken in any case (numbers are unique ignoring case, and a
file may give ``C00000007`` to one charge and leave the next one without).
The counter is gap-tolerant, like the document numbers of
``invoices.sequences``:

- on PostgreSQL it is the sequence ``billing_seq_charge``: ``nextval`` never
  blocks and never repeats, also across transactions that roll back, so
  concurrent imports and admins never wait on each other for numbers;
- on SQLite it is a row of ``NumberCounter`` advanced with ``UPDATE ...
  RETURNING``, which one writer at a time makes just as safe.

Three ways in, one counter: ``ChargeNumberField.pre_save`` numbers a charge
saved or bulk-created without one (so the number is known in Python as soon
as it is written); ``charge_numbers_allocate`` gives a writer many numbers in
two queries; and on PostgreSQL a trigger (``billing_charge_number()``, made
by the migration) numbers a row written without one by COPY, which passes no
Python code. A number a concurrent transaction gives by hand while another
generates the same one is caught by the unique index on ``lower(number)``.
"""

from collections.abc import Iterable

from django.db import connection, models

CHARGE_NUMBER_PREFIX = "C"
CHARGE_NUMBER_DIGITS = 8
CHARGE_COUNTER = "charge"
PG_CHARGE_SEQUENCE = "billing_seq_charge"


def charge_number(value: int) -> str:
    """The charge number of counter value ``value``: ``C00000001``; more
    digits once past 99,999,999, never cut."""
    return f"{CHARGE_NUMBER_PREFIX}{value:0{CHARGE_NUMBER_DIGITS}d}"


def _next_values(cursor, count: int) -> list[int]:
    if connection.vendor == "postgresql":
        cursor.execute(
            "SELECT nextval(%s) FROM generate_series(1, %s)", [PG_CHARGE_SEQUENCE, count]
        )
        return sorted(row[0] for row in cursor.fetchall())
    cursor.execute(
        "INSERT INTO customers_numbercounter (name, last_value) VALUES (%s, 0) "
        "ON CONFLICT (name) DO NOTHING",
        [CHARGE_COUNTER],
    )
    cursor.execute(
        "UPDATE customers_numbercounter SET last_value = last_value + %s "
        "WHERE name = %s RETURNING last_value",
        [count, CHARGE_COUNTER],
    )
    last = cursor.fetchone()[0]
    return list(range(last - count + 1, last + 1))


def _taken(cursor, numbers: list[str]) -> set[str]:
    """Those of ``numbers`` (lowered) that a charge already has, ignoring
    case, found through the unique index on ``lower(number)``."""
    lowered = [number.lower() for number in numbers]
    if connection.vendor == "postgresql" and len({len(number) for number in lowered}) == 1:
        # Counter numbers of one width sort as their values: one range scan
        # of the index finds those in use, where an array looked each one up
        # (measured: 2.3 s of the server's time for an import's 260,000).
        wanted = set(lowered)
        cursor.execute(
            "SELECT lower(number) FROM customers_charge "
            "WHERE lower(number) >= %s AND lower(number) <= %s",
            [min(lowered), max(lowered)],
        )
        return {row[0] for row in cursor.fetchall() if row[0] in wanted}
    if connection.vendor == "postgresql":
        cursor.execute(
            "SELECT lower(number) FROM customers_charge WHERE lower(number) = ANY(%s::text[])",
            [lowered],
        )
        return {row[0] for row in cursor.fetchall()}
    taken: set[str] = set()
    step = connection.features.max_query_params or 999
    for start in range(0, len(lowered), step):
        chunk = lowered[start : start + step]
        cursor.execute(
            "SELECT lower(number) FROM customers_charge "  # noqa: S608 (placeholders only)
            f"WHERE lower(number) IN ({', '.join(['%s'] * len(chunk))})",
            chunk,
        )
        taken.update(row[0] for row in cursor.fetchall())
    return taken


def charge_numbers_allocate(count: int, *, taken: Iterable[str] = ()) -> list[str]:
    """``count`` fresh charge numbers, in counter order.

    Skips numbers a charge already has and those in ``taken`` (numbers a
    caller is about to write, such as those given in an import file),
    ignoring case. Gap-tolerant: the numbers of a transaction that rolls
    back are not handed out again on PostgreSQL; on SQLite the counter rolls
    back with it, and so do the charges that held them."""
    if count <= 0:
        return []
    reserved = {number.lower() for number in taken}
    found: list[str] = []
    with connection.cursor() as cursor:
        while len(found) < count:
            candidates = [
                charge_number(value) for value in _next_values(cursor, count - len(found))
            ]
            candidates = [number for number in candidates if number.lower() not in reserved]
            in_use = _taken(cursor, candidates) if candidates else set()
            found.extend(number for number in candidates if number.lower() not in in_use)
    return found


class ChargeNumberField(models.CharField):
    """A charge's number; left blank, it is the counter's next when the charge
    is first written (``save()`` and ``bulk_create`` alike), as ``auto_now``
    gives a date. Blank in a form means "generate one"."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)

    def pre_save(self, model_instance, add):
        value = getattr(model_instance, self.attname)
        if add and not value:
            value = charge_numbers_allocate(1)[0]
            setattr(model_instance, self.attname, value)
        return value


# PostgreSQL: the same numbering for rows that reach the table without Python
# (the import's COPY writes an empty number). A BEFORE trigger sets the row's
# value, so RETURNING and every reader see the number.
PG_CREATE_TRIGGER = """
CREATE OR REPLACE FUNCTION billing_charge_number() RETURNS trigger AS $$
DECLARE
    value bigint;
    candidate text;
BEGIN
    LOOP
        value := nextval('billing_seq_charge');
        -- charge_number(): C and 8 digits, more past 99,999,999, never cut.
        candidate := 'C' || CASE
            WHEN value < 100000000 THEN lpad(value::text, 8, '0') ELSE value::text END;
        EXIT WHEN NOT EXISTS (
            SELECT 1 FROM customers_charge WHERE lower(number) = lower(candidate)
        );
    END LOOP;
    NEW.number := candidate;
    RETURN NEW;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER charge_number_generated BEFORE INSERT ON customers_charge
    FOR EACH ROW WHEN (NEW.number = '') EXECUTE FUNCTION billing_charge_number();
"""

PG_DROP_TRIGGER = """
DROP TRIGGER IF EXISTS charge_number_generated ON customers_charge;
DROP FUNCTION IF EXISTS billing_charge_number();
"""
