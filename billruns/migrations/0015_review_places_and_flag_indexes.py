from django.db import migrations, models


def delete_reviews(apps, schema_editor):
    # Reviews are written again from the runs (on completion or on a view):
    # the old ones have no places, and the new constraints need them.
    # Set-based (a review holds a line per account); the foreign keys
    # checked at once, so that no check is left pending for the ALTERs below.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    for name in ("ReviewLine", "RunReview"):
        table = apps.get_model("billruns", name)._meta.db_table
        schema_editor.execute(f"DELETE FROM {table}")  # noqa: S608


class Migration(migrations.Migration):
    dependencies = [
        ("billruns", "0014_preview_runs"),
        ("customers", "0013_roles_subscription_changes"),
    ]

    operations = [
        migrations.RunPython(delete_reviews, migrations.RunPython.noop),
        migrations.RemoveIndex(
            model_name="reviewline",
            name="review_line_account",
        ),
        migrations.RemoveIndex(
            model_name="reviewline",
            name="review_line_change",
        ),
        migrations.RemoveIndex(
            model_name="reviewline",
            name="review_line_percent",
        ),
        migrations.RemoveIndex(
            model_name="reviewline",
            name="review_line_total",
        ),
        migrations.AddField(
            model_name="reviewline",
            name="pos_account",
            field=models.PositiveIntegerField(default=0),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="reviewline",
            name="pos_change",
            field=models.PositiveIntegerField(default=0),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="reviewline",
            name="pos_currency",
            field=models.PositiveIntegerField(default=0),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="reviewline",
            name="pos_percent",
            field=models.PositiveIntegerField(default=0),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="reviewline",
            name="pos_previous",
            field=models.PositiveIntegerField(default=0),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="reviewline",
            name="pos_total",
            field=models.PositiveIntegerField(default=0),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="runreview",
            name="due_dates",
            field=models.JSONField(default=dict),
        ),
        migrations.AddField(
            model_name="runreview",
            name="lines_count",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddIndex(
            model_name="reviewline",
            index=models.Index(
                condition=models.Q(("total__isnull", True)),
                fields=["review", "pos_account"],
                name="review_line_flag_missing",
            ),
        ),
        migrations.AddIndex(
            model_name="reviewline",
            index=models.Index(
                condition=models.Q(("previous_total__isnull", True)),
                fields=["review", "pos_account"],
                name="review_line_flag_new",
            ),
        ),
        migrations.AddIndex(
            model_name="reviewline",
            index=models.Index(
                condition=models.Q(("beyond_threshold", True)),
                fields=["review", "pos_account"],
                name="review_line_flag_changed",
            ),
        ),
        migrations.AddIndex(
            model_name="reviewline",
            index=models.Index(
                condition=models.Q(("total", 0)),
                fields=["review", "pos_account"],
                name="review_line_flag_zero",
            ),
        ),
        migrations.AddIndex(
            model_name="reviewline",
            index=models.Index(
                condition=models.Q(("total__lt", 0)),
                fields=["review", "pos_account"],
                name="review_line_flag_negative",
            ),
        ),
        migrations.AddIndex(
            model_name="reviewline",
            index=models.Index(
                condition=models.Q(("has_adjustments", True)),
                fields=["review", "pos_account"],
                name="review_line_flag_adjusted",
            ),
        ),
        migrations.AddConstraint(
            model_name="reviewline",
            constraint=models.UniqueConstraint(
                fields=("review", "pos_account"), name="review_line_pos_account"
            ),
        ),
        migrations.AddConstraint(
            model_name="reviewline",
            constraint=models.UniqueConstraint(
                fields=("review", "pos_currency"), name="review_line_pos_currency"
            ),
        ),
        migrations.AddConstraint(
            model_name="reviewline",
            constraint=models.UniqueConstraint(
                fields=("review", "pos_previous"), name="review_line_pos_previous"
            ),
        ),
        migrations.AddConstraint(
            model_name="reviewline",
            constraint=models.UniqueConstraint(
                fields=("review", "pos_total"), name="review_line_pos_total"
            ),
        ),
        migrations.AddConstraint(
            model_name="reviewline",
            constraint=models.UniqueConstraint(
                fields=("review", "pos_change"), name="review_line_pos_change"
            ),
        ),
        migrations.AddConstraint(
            model_name="reviewline",
            constraint=models.UniqueConstraint(
                fields=("review", "pos_percent"), name="review_line_pos_percent"
            ),
        ),
        migrations.AddField(
            model_name='runreview',
            name='previous_key',
            field=models.CharField(blank=True, default='', max_length=64),
        ),
    ]
