"""The records' ``imported_at`` defaults to the statement's time on
PostgreSQL (issue 13, the import's speed: docs/benchmarks.md, session 10).

``import_usage`` COPYs its records straight into their table and leaves the
column out: the server then fills it from this default, one value for the
whole COPY (its statement's time), instead of parsing the same timestamp
from every line (0.7 s of a million records' 1.65 s COPY into a bare
table). The model's state is unchanged: Django still sends the time of
every record it writes itself (the admin, the staging path, SQLite).
"""

from django.db import migrations

TABLE = "customers_usagerecord"


def default(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"ALTER TABLE {TABLE} ALTER COLUMN imported_at SET DEFAULT statement_timestamp()"
        )


def no_default(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN imported_at DROP DEFAULT")


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0014_usage_brin"),
    ]

    operations = [migrations.RunPython(default, no_default, elidable=False)]
