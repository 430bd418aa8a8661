"""Usage records' (charge, date) index as a BRIN on PostgreSQL (issue 13, the
import's speed: docs/benchmarks.md, session 8).

The B-tree on (charge, date, quantity) was the import's costliest write: a
million records in file order land in it at random places. The import now
writes its records in (charge, date) order, a run of lines at a time
(``invoices.usage``), so the heap itself is clustered by charge within each
run, and a BRIN of a few pages per range finds a charge's records: a summary
per range, written nearly free, instead of an index entry per record. The
run's sum (``customers.selectors.usage_range_quantities``) reads them with a
bitmap heap scan over its chunk's charge ranges.

The index keeps its name (the model's state is unchanged: a later migration
that drops it by name still works); only its kind and columns differ on
PostgreSQL. SQLite keeps the B-tree: it has no BRIN, and its inserts are not
the bottleneck there.
"""

from django.db import migrations

NAME = "usage_charge_date_quantity"
TABLE = "customers_usagerecord"
# Heap pages per BRIN range: a range holds some 450 records (about 110 a page).
PAGES_PER_RANGE = 4


def brin(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {NAME}")
        schema_editor.execute(
            f"CREATE INDEX {NAME} ON {TABLE} USING brin (charge_id, date) "
            f"WITH (pages_per_range = {PAGES_PER_RANGE})"
        )


def btree(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {NAME}")
        schema_editor.execute(f"CREATE INDEX {NAME} ON {TABLE} (charge_id, date, quantity)")


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0013_roles_subscription_changes"),
    ]

    operations = [migrations.RunPython(brin, btree, elidable=False)]
