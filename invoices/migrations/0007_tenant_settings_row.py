from django.db import migrations


def create_row(apps, schema_editor):
    apps.get_model("invoices", "TenantSettings").objects.get_or_create(id=1)


class Migration(migrations.Migration):
    dependencies = [("invoices", "0006_item_fewer_indexes")]

    operations = [migrations.RunPython(create_row, migrations.RunPython.noop)]
