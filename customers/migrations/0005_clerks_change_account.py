"""Billing clerks may change an account (its bill-to contact, from the account
page): "Bill-to contact is missing" is the commonest failure of a run, and
until now only an operator could fix it, in the admin."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

CLERK = "Billing clerk"


def change_account(apps):
    # Permissions are normally created after all migrations; make sure this
    # one exists now so that the group can hold it.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None
    return apps.get_model("auth", "Permission").objects.get(
        content_type__app_label="customers", codename="change_account"
    )


def grant(apps, schema_editor):
    permission = change_account(apps)
    for group in apps.get_model("auth", "Group").objects.filter(name=CLERK):
        group.permissions.add(permission)


def revoke(apps, schema_editor):
    permission = change_account(apps)
    for group in apps.get_model("auth", "Group").objects.filter(name=CLERK):
        group.permissions.remove(permission)


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0004_exact_money"),
        # The roles are made there.
        ("billruns", "0002_roles"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
