"""The two roles may view the models made after they were created
(billruns 0002_roles): document deliveries, run emails and run notices.

This lives in notifications, the top app, because it is the one app that may
depend on the migrations of all the others.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLES = ["Billing viewer", "Billing clerk"]

VIEW_MODELS = [
    ("invoices", "documentdelivery"),
    ("notifications", "emaildelivery"),
    ("notifications", "runnotification"),
]


def view_permissions(apps):
    # Permissions are normally created after all migrations; make sure they
    # exist now so that the groups can hold them.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None
    Permission = apps.get_model("auth", "Permission")
    return [
        Permission.objects.get(content_type__app_label=app_label, codename=f"view_{model}")
        for app_label, model in VIEW_MODELS
    ]


def grant(apps, schema_editor):
    permissions = view_permissions(apps)
    for group in apps.get_model("auth", "Group").objects.filter(name__in=ROLES):
        group.permissions.add(*permissions)


def revoke(apps, schema_editor):
    permissions = view_permissions(apps)
    for group in apps.get_model("auth", "Group").objects.filter(name__in=ROLES):
        group.permissions.remove(*permissions)


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0002_resend_schedule"),
        ("invoices", "0003_documentdelivery"),
        ("billruns", "0002_roles"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
