from django.db import migrations, models

# The function the statement triggers call (core.stamps installs the
# triggers after every migrate, so a table added later gets one too).
# PostgreSQL only: SQLite has no statement triggers, and its pages are not
# cached (core.stamps.current is None there).
CREATE_FUNCTION = """
CREATE SEQUENCE IF NOT EXISTS core_changestamp_seq;
CREATE OR REPLACE FUNCTION core_changestamp_bump() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO core_changestamp (backend, version)
    VALUES (pg_backend_pid(), nextval('core_changestamp_seq'))
    ON CONFLICT (backend) DO UPDATE SET version = nextval('core_changestamp_seq');
    RETURN NULL;
END
$$;
"""
DROP_FUNCTION = """
DROP FUNCTION IF EXISTS core_changestamp_bump() CASCADE;
DROP SEQUENCE IF EXISTS core_changestamp_seq;
"""


def create_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE_FUNCTION)


def drop_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_FUNCTION)


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="ChangeStamp",
            fields=[
                ("backend", models.IntegerField(primary_key=True, serialize=False)),
                ("version", models.BigIntegerField()),
            ],
            options={"verbose_name": "change stamp"},
        ),
        migrations.RunPython(create_function, drop_function),
    ]
