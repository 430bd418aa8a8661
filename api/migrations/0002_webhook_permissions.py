"""Who may manage webhook endpoints through the API: a billing clerk
creates and deletes them; both roles see them and their delivery attempts."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEW = [("webhooks", "view_endpoint"), ("webhooks", "view_deliveryattempt")]
CLERK = [("webhooks", "add_endpoint"), ("webhooks", "delete_endpoint")]


def permissions(apps, pairs):
    Permission = apps.get_model("auth", "Permission")
    return [
        Permission.objects.get(content_type__app_label=app, codename=codename)
        for app, codename in pairs
    ]


def grant(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    view, clerk = permissions(apps, VIEW), permissions(apps, CLERK)
    for group in Group.objects.filter(name="Billing viewer"):
        group.permissions.add(*view)
    for group in Group.objects.filter(name="Billing clerk"):
        group.permissions.add(*view, *clerk)


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    every = permissions(apps, VIEW + CLERK)
    for group in Group.objects.filter(name__in=["Billing viewer", "Billing clerk"]):
        group.permissions.remove(*every)


class Migration(migrations.Migration):
    dependencies = [
        ("api", "0001_api_keys"),
        ("webhooks", "0001_initial"),
        ("billruns", "0002_roles"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
