"""Account files uploaded on the accounts import page
(/billing/accounts/import/), imported by the task queue with
``customers.importer.accounts_import_file``, the import of
``import_accounts``. How an upload is stored, read and imported, and where
its bytes live: ``core/uploads.py``, shared with the usage page."""

from core.uploads import upload_import, upload_store, uploads_sweep
from customers.importer import ImportRefused, accounts_import_file
from customers.models import AccountUpload

IMPORT_TASK = "customers.tasks.import_accounts_upload"


def account_upload_create(*, file, user) -> AccountUpload:
    """Store an uploaded ``import_accounts`` file and queue its import
    (core.uploads.upload_store: one transaction, refuses with UploadRefused).
    The same file uploaded twice is refused the second time when its numbers
    are given (importing is not an update), and imported again when they are
    generated: the upload, like the command, does what the file says."""
    return upload_store(
        model=AccountUpload, file=file, user=user, task=IMPORT_TASK, command="import_accounts"
    )


def account_upload_import(*, upload_id: int) -> None:
    """Import a stored accounts upload and record the outcome on it
    (core.uploads.upload_import: one transaction with the accounts; an upload
    already imported or refused is left alone, so the task may run twice)."""
    upload_import(
        model=AccountUpload,
        upload_id=upload_id,
        run_import=lambda stream: accounts_import_file(path="-", stdin=stream),
        refused=ImportRefused,
    )


def account_uploads_sweep() -> int:
    """Queue again the imports of accounts uploads whose task was lost
    (core.uploads.uploads_sweep)."""
    return uploads_sweep(model=AccountUpload, task=IMPORT_TASK)
