from django.db import migrations

from invoices.sequences import create_postgresql_sequences, drop_postgresql_sequences


class Migration(migrations.Migration):
    dependencies = [("invoices", "0001_initial")]

    operations = [
        migrations.RunPython(create_postgresql_sequences, drop_postgresql_sequences),
    ]
