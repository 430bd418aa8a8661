"""Every minute, the task queue takes up runs a dead worker left behind."""

from django.db import migrations


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name="Sweep bill runs",
        defaults={
            "func": "billruns.tasks.sweep_bill_runs",
            "schedule_type": "I",
            "minutes": 1,
            "repeats": -1,
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="Sweep bill runs").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("billruns", "0003_billrun_request_key"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
