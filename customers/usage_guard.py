"""The database's guard of ``UsageRecord.charge``, in place of a foreign key.

A foreign key constraint is checked one row at a time: inserting a million
usage records on PostgreSQL, its checks took more time than the inserts with
both indexes of the table (docs/benchmarks.md). What it guarded is kept:

- a charge with usage records cannot be deleted, whatever deletes it
  (PostgreSQL: a trigger per deleted charge; deleting a charge is rare). A
  record being imported meanwhile is covered by the import's ``FOR KEY
  SHARE`` lock on its charges, what a foreign key's check takes: the delete
  waits for the import to commit, then sees its records. On SQLite, one
  writer at a time and Django's PROTECT refuse it (a trigger there would
  also stop Django's test flush, which empties the tables in name order);
- a record names a charge that exists: on SQLite a trigger per row, which
  costs SQLite nearly nothing; on PostgreSQL the import, the only writer of
  records, inserts them from a join with the charges it has locked (a check
  per statement, over a table of its new rows, still added a third to the
  insert's time).

A migration that remakes the table on SQLite (Django copies it to change a
column) drops its triggers; tests/test_usage_data.py checks they are there.
"""

PG_CREATE = """
CREATE OR REPLACE FUNCTION billing_charge_without_usage() RETURNS trigger AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM customers_usagerecord WHERE charge_id = OLD.id) THEN
        RAISE EXCEPTION USING
            MESSAGE = 'charge ' || OLD.number || ' has usage records and cannot be deleted',
            ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN OLD;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER charge_without_usage BEFORE DELETE ON customers_charge
    FOR EACH ROW EXECUTE FUNCTION billing_charge_without_usage();
"""

PG_DROP = """
DROP TRIGGER IF EXISTS charge_without_usage ON customers_charge;
DROP FUNCTION IF EXISTS billing_charge_without_usage();
"""

SQLITE_CREATE = [
    """
    CREATE TRIGGER usage_charge_exists_on_insert BEFORE INSERT ON customers_usagerecord
    WHEN NOT EXISTS (SELECT 1 FROM customers_charge WHERE id = NEW.charge_id)
    BEGIN
        SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed: no such charge');
    END
    """,
    """
    CREATE TRIGGER usage_charge_exists_on_update BEFORE UPDATE OF charge_id
    ON customers_usagerecord
    WHEN NOT EXISTS (SELECT 1 FROM customers_charge WHERE id = NEW.charge_id)
    BEGIN
        SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed: no such charge');
    END
    """,
]

SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS usage_charge_exists_on_insert",
    "DROP TRIGGER IF EXISTS usage_charge_exists_on_update",
]


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_CREATE)
    else:
        for statement in SQLITE_CREATE:
            schema_editor.execute(statement)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_DROP)
    else:
        for statement in SQLITE_DROP:
            schema_editor.execute(statement)
