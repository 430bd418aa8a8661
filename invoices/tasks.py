"""Task-queue entry points of invoices: thin, each loads by id and calls a
service. Idempotent: django-q2 may deliver a task twice."""

from invoices.usage_uploads import usage_upload_import, usage_uploads_sweep


def import_usage_upload(upload_id):
    usage_upload_import(upload_id=upload_id)


def sweep_usage_uploads():
    usage_uploads_sweep()
