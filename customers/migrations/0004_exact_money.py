import customers.fields
from django.db import migrations

# On SQLite the money column now holds integer cents (customers.fields): the
# amounts written before, as floating-point or integer numbers, are scaled.
MONEY_COLUMNS = [("customers_charge", "amount")]


def to_units(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for table, column in MONEY_COLUMNS:
            schema_editor.execute(
                f'UPDATE {table} SET "{column}" = CASE WHEN typeof("{column}") = \'integer\' '
                f'THEN "{column}" * 100 ELSE CAST(ROUND("{column}" * 100) AS INTEGER) END'
            )


def to_decimals(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for table, column in MONEY_COLUMNS:
            schema_editor.execute(f'UPDATE {table} SET "{column}" = "{column}" / 100.0')


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0003_number_case_insensitive"),
    ]

    operations = [
        migrations.AlterField(
            model_name="charge",
            name="amount",
            field=customers.fields.ExactDecimalField(
                decimal_places=2, help_text="Negative for a credit.", max_digits=18
            ),
        ),
        migrations.RunPython(to_units, to_decimals),
    ]
