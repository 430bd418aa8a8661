"""Document and run numbers that are never handed out twice.

Numbers are gap-tolerant: a number taken by a transaction that later rolls
back is never reused. On PostgreSQL they come from real sequences, which
``nextval`` advances outside any transaction, so concurrent bill run chunks
never wait on each other for numbers. SQLite has no sequences; there a row of
``NumberSequence`` is advanced with ``UPDATE ... RETURNING``, which is safe
because SQLite lets one writer in at a time.
"""

from django.db import connection

# name -> (prefix, digits)
FORMATS = {
    "BR": ("BR-", 8),
    "INV": ("INV", 8),
    "CM": ("CM", 8),
}


def pg_sequence_name(name):
    return f"billing_seq_{name.lower()}"


def allocate(name, count=1):
    """Return ``count`` fresh numbers of sequence ``name`` as formatted strings."""
    if count <= 0:
        return []
    prefix, digits = FORMATS[name]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(%s) FROM generate_series(1, %s)",
                [pg_sequence_name(name), count],
            )
            values = sorted(row[0] for row in cursor.fetchall())
        else:
            cursor.execute(
                "INSERT INTO invoices_numbersequence (name, last_value) VALUES (%s, 0) "
                "ON CONFLICT (name) DO NOTHING",
                [name],
            )
            cursor.execute(
                "UPDATE invoices_numbersequence SET last_value = last_value + %s "
                "WHERE name = %s RETURNING last_value",
                [count, name],
            )
            last = cursor.fetchone()[0]
            values = range(last - count + 1, last + 1)
    return [f"{prefix}{value:0{digits}d}" for value in values]


def create_postgresql_sequences(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in FORMATS:
        schema_editor.execute(f"CREATE SEQUENCE IF NOT EXISTS {pg_sequence_name(name)}")


def drop_postgresql_sequences(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in FORMATS:
        schema_editor.execute(f"DROP SEQUENCE IF EXISTS {pg_sequence_name(name)}")
