"""Usage records' ids compared byte by byte on PostgreSQL, without the
index of LIKE patterns (issue 13, the import's speed: docs/benchmarks.md).

``COLLATE "C"`` (core.fields.BytewiseCharField) makes the primary key's
comparisons ``memcmp`` instead of the locale's ``strcoll``. The
``varchar_pattern_ops`` index Django adds beside a text key on PostgreSQL
was a third B-tree every inserted record wrote; the admin searches ids
exactly, and a "C" B-tree serves prefix patterns itself. SQLite: the field
changes class only (its comparison is already bytewise; no table rebuild).

It also depends on 0007: 0008 was renamed after it without its dependency,
which left two leaves.
"""

from django.db import migrations

import core.fields
import customers.models

LIKE_INDEX = "customers_usagerecord_record_id_d39ea4a1_like"


def bytewise(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            'ALTER TABLE customers_usagerecord ALTER COLUMN record_id TYPE varchar(100) COLLATE "C"'
        )
        schema_editor.execute(f"DROP INDEX IF EXISTS {LIKE_INDEX}")


def localized(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "ALTER TABLE customers_usagerecord ALTER COLUMN record_id TYPE varchar(100) "
            'COLLATE "default"'
        )
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {LIKE_INDEX} ON customers_usagerecord "
            "(record_id varchar_pattern_ops)"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0010_charge_removed_no_service"),
    ]

    # The database's part in SQL, on PostgreSQL only: Django's AlterField
    # would rebuild SQLite's table, and with it lose the triggers of
    # customers.usage_guard.
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="usagerecord",
                    name="record_id",
                    field=core.fields.BytewiseCharField(
                        max_length=100,
                        primary_key=True,
                        serialize=False,
                        validators=[customers.models.validate_record_id],
                        verbose_name="id",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(bytewise, localized)],
        ),
    ]
