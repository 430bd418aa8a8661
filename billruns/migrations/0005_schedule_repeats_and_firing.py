"""Schedules get their repeat rules, selection and next run; every minute the
task queue fires the schedules that are due (billruns.schedules)."""

import datetime
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


def create_firing_schedule(apps, schema_editor):
    # The task itself picks the due schedules and fires at most the latest
    # missed occurrence of each, so this every-minute trigger is all the
    # task queue needs to know (catch_up is off cluster-wide).
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name="Fire due bill run schedules",
        defaults={
            "func": "billruns.schedule_tasks.fire_due_schedules",
            "schedule_type": "I",
            "minutes": 1,
            "repeats": -1,
        },
    )


def remove_firing_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(
        name="Fire due bill run schedules"
    ).delete()


class Migration(migrations.Migration):

    dependencies = [
        ('billruns', '0004_sweeper_schedule'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.AddField(
            model_name='schedule',
            name='auto_post',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='schedule',
            name='batches',
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name='schedule',
            name='bill_cycle_day',
            field=models.CharField(default='all', max_length=8),
        ),
        migrations.AddField(
            model_name='schedule',
            name='day_of_month',
            field=models.PositiveSmallIntegerField(blank=True, default=1, null=True),
        ),
        migrations.AddField(
            model_name='schedule',
            name='end_date',
            field=models.DateField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='schedule',
            name='invoice_date_offset_days',
            field=models.IntegerField(default=0),
        ),
        migrations.AddField(
            model_name='schedule',
            name='last_day_of_month',
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name='schedule',
            name='next_run_at',
            field=models.DateTimeField(blank=True, help_text='UTC; empty: no more runs.', null=True),
        ),
        migrations.AddField(
            model_name='schedule',
            name='repeats',
            field=models.CharField(choices=[('once', 'Once'), ('daily', 'Daily'), ('weekly', 'Weekly'), ('monthly', 'Monthly')], default='monthly', max_length=16),
        ),
        migrations.AddField(
            model_name='schedule',
            name='run_time',
            field=models.TimeField(default=datetime.time(6, 0)),
        ),
        migrations.AddField(
            model_name='schedule',
            name='skipped_occurrences',
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name='schedule',
            name='start_date',
            field=models.DateField(default=django.utils.timezone.localdate),
        ),
        migrations.AddField(
            model_name='schedule',
            name='status',
            field=models.CharField(choices=[('active', 'Active'), ('paused', 'Paused'), ('canceled', 'Canceled')], default='active', max_length=16),
        ),
        migrations.AddField(
            model_name='schedule',
            name='target_date_offset_days',
            field=models.IntegerField(default=0),
        ),
        migrations.AddField(
            model_name='schedule',
            name='time_zone',
            field=models.CharField(default='UTC', help_text='An IANA time zone.', max_length=64),
        ),
        migrations.AddField(
            model_name='schedule',
            name='updated_at',
            field=models.DateTimeField(auto_now=True),
        ),
        migrations.AddField(
            model_name='schedule',
            name='weekdays',
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddIndex(
            model_name='schedule',
            index=models.Index(fields=['status', 'next_run_at'], name='schedule_due'),
        ),
        migrations.AddConstraint(
            model_name='schedule',
            constraint=models.CheckConstraint(condition=models.Q(('status__in', ['active', 'paused', 'canceled'])), name='schedule_status_valid'),
        ),
        migrations.AddConstraint(
            model_name='schedule',
            constraint=models.CheckConstraint(condition=models.Q(('day_of_month__isnull', True), models.Q(('day_of_month__gte', 1), ('day_of_month__lte', 31)), _connector='OR'), name='schedule_day_of_month_1_31'),
        ),
        migrations.RunPython(create_firing_schedule, remove_firing_schedule),
    ]
