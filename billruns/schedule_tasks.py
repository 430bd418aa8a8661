"""Task-queue entry point for scheduled bill runs (thin: the work is in
billruns.schedules). A django-q2 schedule, created by migration 0005, calls it
every minute; a redelivered or doubled call fires nothing twice."""

from billruns import schedules


def fire_due_schedules():
    runs = schedules.schedules_fire_due()
    return [run.number for run in runs]
