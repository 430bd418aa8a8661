"""Usage files uploaded on the usage page (/billing/usage/), and the roles'
permissions for it: both roles may view usage records and uploads, a
billing clerk may upload."""

import django.db.models.deletion
from django.conf import settings
from django.contrib.auth.management import create_permissions
from django.db import migrations, models

ROLES = ["Billing viewer", "Billing clerk"]
VIEW = [("customers", "view_usagerecord"), ("invoices", "view_usageupload")]
SWEEP_NAME = "Sweep usage uploads"
SWEEP_TASK = "invoices.tasks.sweep_usage_uploads"
CLERK = [("invoices", "add_usageupload")]


def permissions(apps, pairs):
    # Permissions are normally created after all migrations; make sure these
    # exist now so that the groups can hold them.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None
    Permission = apps.get_model("auth", "Permission")
    return [
        Permission.objects.get(content_type__app_label=app_label, codename=codename)
        for app_label, codename in pairs
    ]


def grant(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    view, clerk = permissions(apps, VIEW), permissions(apps, CLERK)
    for group in Group.objects.filter(name__in=ROLES):
        group.permissions.add(*view)
    for group in Group.objects.filter(name="Billing clerk"):
        group.permissions.add(*clerk)


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for group in Group.objects.filter(name__in=ROLES):
        group.permissions.remove(*permissions(apps, VIEW + CLERK))


def create_sweep_schedule(apps, schema_editor):
    # Every minute, the task queue takes up uploads whose import was lost.
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=SWEEP_NAME,
        defaults={"func": SWEEP_TASK, "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def remove_sweep_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SWEEP_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("invoices", "0011_item_quantities"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        # The roles are made there.
        ("billruns", "0002_roles"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.CreateModel(
            name="UsageUpload",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("file_name", models.CharField(max_length=255)),
                ("size", models.PositiveBigIntegerField(help_text="The file's size in bytes.")),
                ("uploaded_at", models.DateTimeField(auto_now_add=True)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("Pending", "Pending"),
                            ("Processing", "Processing"),
                            ("Imported", "Imported"),
                            ("Refused", "Refused"),
                            ("Error", "Error"),
                        ],
                        default="Pending",
                        max_length=16,
                    ),
                ),
                (
                    "attempts",
                    models.PositiveSmallIntegerField(
                        default=0, help_text="How many times a worker started the import."
                    ),
                ),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("summary", models.CharField(blank=True, max_length=255)),
                ("problems", models.JSONField(blank=True, default=list)),
                (
                    "uploaded_by",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["-id"],
                "abstract": False,
            },
        ),
        migrations.CreateModel(
            name="UsageUploadPart",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("index", models.PositiveIntegerField()),
                ("data", models.BinaryField()),
                (
                    "upload",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="parts",
                        to="invoices.usageupload",
                    ),
                ),
            ],
        ),
        migrations.AddConstraint(
            model_name="usageupload",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("status__in", ["Pending", "Processing", "Imported", "Refused", "Error"])
                ),
                name="usage_upload_status_valid",
            ),
        ),
        migrations.AddConstraint(
            model_name="usageuploadpart",
            constraint=models.UniqueConstraint(
                fields=("upload", "index"), name="one_usage_upload_part_index"
            ),
        ),
        migrations.RunPython(grant, revoke),
        migrations.RunPython(create_sweep_schedule, remove_sweep_schedule),
    ]
