"""Charges keep half of each page free on PostgreSQL (fillfactor 50).

Every bill run updates the charged-through date of each charge it bills. A
row updated on a full page gets its new version elsewhere and an entry in
each of the charge's five indexes; with room on its page the update is HOT
(heap-only): no index is touched. Measured on a 20,000-account book: 51,400
charge updates, 158 of them HOT on packed pages, 50,823 with the room; the
run's database CPU about 12 % lower (docs/benchmarks.md). The room is taken
by the first run's new versions, so the table does not grow past what the
updates made it anyway. SQLite has no such setting.
"""

from django.db import migrations


def set_fillfactor(schema_editor, value):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE customers_charge SET (fillfactor = {value})")


def half_free(apps, schema_editor):
    set_fillfactor(schema_editor, 50)


def packed(apps, schema_editor):
    set_fillfactor(schema_editor, 100)


class Migration(migrations.Migration):
    dependencies = [("customers", "0007_account_uploads")]

    operations = [migrations.RunPython(half_free, packed)]
