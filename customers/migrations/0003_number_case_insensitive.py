"""Account and subscription numbers are unique ignoring case, and the dates
of subscriptions and charges lie between 2000-01-01 and 2099-12-31
(INTERFACES.md, "Numbers and dates, everywhere")."""

import django.db.models.functions.text
from django.db import migrations, models
from django.db.models import Count
from django.db.models.functions import Lower

import customers.dates


def refuse_numbers_equal_ignoring_case(apps, schema_editor):
    """Say which numbers stand in the way, rather than the database's bare
    "UNIQUE constraint failed": they must be renamed by hand (which one is
    the customer's own number is for a person to decide)."""
    clashes = []
    for model_name in ("Account", "Subscription"):
        model = apps.get_model("customers", model_name)
        lowered = (
            model.objects.annotate(lowered=Lower("number"))
            .values("lowered")
            .annotate(count=Count("id"))
            .filter(count__gt=1)
            .values_list("lowered", flat=True)[:20]
        )
        for value in lowered:
            numbers = (
                model.objects.annotate(lowered=Lower("number"))
                .filter(lowered=value)
                .order_by("number")
                .values_list("number", flat=True)
            )
            clashes.append(f"{model_name.lower()} numbers {', '.join(numbers)}")
    if clashes:
        raise RuntimeError(
            "Numbers must differ in more than case; rename one of each of these, "
            "then migrate again: " + "; ".join(clashes)
        )


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0002_number_validators"),
    ]

    operations = [
        migrations.AlterField(
            model_name="charge",
            name="end_date",
            field=models.DateField(
                blank=True,
                help_text="Exclusive.",
                null=True,
                validators=[customers.dates.validate_date_in_range],
            ),
        ),
        migrations.AlterField(
            model_name="charge",
            name="start_date",
            field=models.DateField(validators=[customers.dates.validate_date_in_range]),
        ),
        migrations.AlterField(
            model_name="subscription",
            name="start_date",
            field=models.DateField(validators=[customers.dates.validate_date_in_range]),
        ),
        migrations.RunPython(refuse_numbers_equal_ignoring_case, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="account",
            constraint=models.UniqueConstraint(
                django.db.models.functions.text.Lower("number"),
                name="account_number_unique_ignoring_case",
                violation_error_message="Another account has this number, ignoring case.",
            ),
        ),
        migrations.AddConstraint(
            model_name="subscription",
            constraint=models.UniqueConstraint(
                django.db.models.functions.text.Lower("number"),
                name="subscription_number_unique_ignoring_case",
                violation_error_message="Another subscription has this number, ignoring case.",
            ),
        ),
    ]
