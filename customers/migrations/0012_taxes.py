"""Taxes (issue 15): tax rates with the history of their changes, an
account's tax codes in order, and whether a charge is taxable.

SQLite adds a column with a default by copying the table, which fails on,
then drops, the triggers of customers.usage_guard that name
customers_charge: they are dropped before the copy and made again after it,
as in 0010 (PostgreSQL adds the column in place and keeps its triggers)."""

import core.fields
import django.core.validators
import django.db.models.deletion
import django.utils.timezone
from decimal import Decimal
from django.conf import settings
from django.db import migrations, models

from customers import usage_guard


def sqlite_only(operation):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "sqlite":
            operation(apps, schema_editor)

    return run


class Migration(migrations.Migration):

    dependencies = [
        ('customers', '0011_usage_speed'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(sqlite_only(usage_guard.drop), sqlite_only(usage_guard.create)),
        migrations.AddField(
            model_name='charge',
            name='taxable',
            field=models.BooleanField(db_default=True, default=True, help_text="Its items count in the taxable base of the account's tax lines."),
        ),
        migrations.RunPython(sqlite_only(usage_guard.create), sqlite_only(usage_guard.drop)),
        migrations.CreateModel(
            name='TaxRate',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('code', models.CharField(max_length=20, unique=True, validators=[django.core.validators.RegexValidator('^[A-Z0-9_-]{1,20}$', 'A tax code is 1 to 20 characters: capital letters A-Z, digits, _ and -.')])),
                ('name', models.CharField(max_length=255)),
                ('rate', core.fields.ExactDecimalField(decimal_places=4, help_text='Percent, 0 to 100, at most 4 decimal places.', max_digits=7, validators=[django.core.validators.MinValueValidator(Decimal('0')), django.core.validators.MaxValueValidator(Decimal('100'))])),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'ordering': ['code'],
                'constraints': [models.CheckConstraint(condition=models.Q(('rate__gte', 0), ('rate__lte', 100)), name='tax_rate_0_100')],
            },
        ),
        migrations.CreateModel(
            name='TaxRateChange',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('changed_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('old_name', models.CharField(blank=True, default='', max_length=255)),
                ('new_name', models.CharField(max_length=255)),
                ('old_rate', core.fields.ExactDecimalField(blank=True, decimal_places=4, max_digits=7, null=True)),
                ('new_rate', core.fields.ExactDecimalField(decimal_places=4, max_digits=7)),
                ('changed_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('tax_rate', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='changes', to='customers.taxrate')),
            ],
            options={
                'ordering': ['tax_rate_id', 'changed_at', 'id'],
            },
        ),
        migrations.CreateModel(
            name='AccountTaxCode',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('position', models.PositiveSmallIntegerField()),
                ('account', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='tax_codes', to='customers.account')),
                ('tax_rate', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='accounts', to='customers.taxrate')),
            ],
            options={
                'ordering': ['account_id', 'position'],
                'constraints': [models.UniqueConstraint(fields=('account', 'tax_rate'), name='account_tax_code_once'), models.UniqueConstraint(fields=('account', 'position'), name='account_tax_code_position_unique')],
            },
        ),
    ]
