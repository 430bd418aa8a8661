"""Usage files uploaded on the usage page (/billing/usage/), imported by the
task queue with ``invoices.usage.usage_import``, the import of
``import_usage``. How an upload is stored, read and imported, and where its
bytes live: ``core/uploads.py``, shared with the accounts import page."""

from core.uploads import upload_import, upload_store, uploads_sweep
from invoices.models import UsageUpload
from invoices.usage import UsageImportRefused, usage_import

IMPORT_TASK = "invoices.tasks.import_usage_upload"


def usage_upload_create(*, file, user) -> UsageUpload:
    """Store an uploaded ``import_usage`` file and queue its import
    (core.uploads.upload_store: one transaction, refuses with UploadRefused).
    The same file uploaded twice imports nothing new the second time: the
    import is idempotent by record id."""
    return upload_store(
        model=UsageUpload, file=file, user=user, task=IMPORT_TASK, command="import_usage"
    )


def usage_upload_import(*, upload_id: int) -> None:
    """Import a stored usage upload and record the outcome on it
    (core.uploads.upload_import: one transaction with the records; an upload
    already imported or refused is left alone)."""
    upload_import(
        model=UsageUpload,
        upload_id=upload_id,
        run_import=lambda stream: usage_import(stream=stream, stream_reads_database=True),
        refused=UsageImportRefused,
    )


def usage_uploads_sweep() -> int:
    """Queue again the imports of usage uploads whose task was lost
    (core.uploads.uploads_sweep)."""
    return uploads_sweep(model=UsageUpload, task=IMPORT_TASK)
