"""The two roles of the product, as groups with real model permissions."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEW_MODELS = [
    ("customers", "account"),
    ("customers", "subscription"),
    ("customers", "charge"),
    ("invoices", "document"),
    ("invoices", "invoice"),
    ("invoices", "creditmemo"),
    ("invoices", "documentitem"),
    ("invoices", "payment"),
    ("invoices", "creditapplication"),
    ("billruns", "billrun"),
    ("billruns", "billrunfailure"),
    ("billruns", "billrunevent"),
    ("billruns", "schedule"),
]

CLERK_EXTRA = [
    ("billruns", "add_billrun"),
    ("billruns", "post_billrun"),
    ("billruns", "cancel_billrun"),
    ("billruns", "retry_billrun"),
    ("billruns", "email_billrun"),
    ("billruns", "delete_billrun"),
    ("billruns", "add_schedule"),
    ("billruns", "change_schedule"),
    ("invoices", "add_payment"),
    ("invoices", "add_creditapplication"),
    ("invoices", "post_document"),
]


def create_roles(apps, schema_editor):
    # Permissions are normally created after all migrations; make sure they
    # exist now so that the groups can hold them.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")

    def perms(pairs):
        found = []
        for app_label, codename in pairs:
            found.append(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        return found

    view = perms((app, f"view_{model}") for app, model in VIEW_MODELS)
    viewer, _ = Group.objects.get_or_create(name="Billing viewer")
    viewer.permissions.set(view)
    clerk, _ = Group.objects.get_or_create(name="Billing clerk")
    clerk.permissions.set(view + perms(CLERK_EXTRA))


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(
        name__in=["Billing viewer", "Billing clerk"]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("billruns", "0001_initial"),
        ("invoices", "0002_sequences"),
        ("customers", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
