"""A change may leave a charge with no service (BILLING_RULES.md,
Subscription changes): a one-time charge removed before it bills ends on
its start date (end = start: it never bills), which its type's check now
allows (0009 lets any charge end on its start); the import and the admin
still give an end after the start.

SQLite changes a check by copying the table, which fails on, then drops,
the triggers of customers.usage_guard that name customers_charge: they are
dropped before the copy and made again after it (PostgreSQL alters the
table in place and keeps its triggers)."""

from django.db import migrations, models

from customers import usage_guard


def sqlite_only(operation):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "sqlite":
            operation(apps, schema_editor)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0009_subscription_changes"),
    ]

    operations = [
        migrations.RunPython(sqlite_only(usage_guard.drop), sqlite_only(usage_guard.create)),
        migrations.RemoveConstraint(
            model_name="charge",
            name="charge_period_matches_type",
        ),
        migrations.AddConstraint(
            model_name="charge",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(
                        ("charge_type__in", ["recurring", "usage"]),
                        ("period__in", ["month", "quarter", "semi_annual", "annual"]),
                    ),
                    models.Q(
                        ("charge_type", "one_time"),
                        ("period", ""),
                        models.Q(
                            ("end_date__isnull", True),
                            ("end_date", models.F("start_date")),
                            _connector="OR",
                        ),
                    ),
                    _connector="OR",
                ),
                name="charge_period_matches_type",
            ),
        ),
        migrations.RunPython(sqlite_only(usage_guard.create), sqlite_only(usage_guard.drop)),
    ]
