"""Task-queue entry points of customers: thin, each loads by id and calls a
service. Idempotent: django-q2 may deliver a task twice."""

from customers.account_uploads import account_upload_import, account_uploads_sweep


def import_accounts_upload(upload_id):
    account_upload_import(upload_id=upload_id)


def sweep_account_uploads():
    account_uploads_sweep()
