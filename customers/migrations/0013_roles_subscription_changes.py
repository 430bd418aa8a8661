"""The roles' permissions for subscription changes (issue 14): both roles may
view the changes and the price segments they make; only a billing clerk may
make a change (``add_subscriptionchange``: the subscription page's change
forms, which until now asked for ``change_account``, the permission of the
account page's contact form)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLES = ["Billing viewer", "Billing clerk"]
VIEW = [("customers", "view_subscriptionchange"), ("customers", "view_chargeprice")]
CLERK = [("customers", "add_subscriptionchange")]


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


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0012_taxes"),
        # The roles are made there.
        ("billruns", "0002_roles"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
