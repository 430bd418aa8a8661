"""Usage files uploaded from the usage page, imported by the task queue.

The page stores the file and queues its import; a worker runs
``invoices.usage.usage_import`` on it, the very import of ``import_usage``,
and records what came of it on the upload, which the page polls.

Where the file lives: in the database, in parts of UPLOAD_PART_BYTES
(``UsageUploadPart``), written in the transaction that creates the upload.
The workers of every host read the same database, so no shared disk is
needed (the site has no MEDIA storage), and the upload and its bytes commit
together: a task never finds an upload without its file. A worker that dies
mid-import rolls its transaction back; the queue hands the task to another
worker, which finds the parts where they were. The parts are deleted in the
transaction that records the outcome: what is left is the upload's row (who,
when, the file's name and size, the counts or the problems).
"""

import io
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from core.locks import lock_one
from invoices.models import UploadStatus, UsageUpload, UsageUploadPart
from invoices.usage import UsageImportRefused, usage_import

logger = logging.getLogger(__name__)

# One part is one row of at most this many bytes: a 200 MB file is 200 rows,
# and the import holds one part in memory at a time.
UPLOAD_PART_BYTES = 1024 * 1024
IMPORT_TASK = "invoices.tasks.import_usage_upload"


class UsageUploadRefused(Exception):
    """The file was not stored (too large, empty); nothing changed."""


def usage_upload_create(*, file, user) -> UsageUpload:
    """Store an uploaded ``import_usage`` file and queue its import.

    ``file`` is a Django UploadedFile. Transaction: one, for the upload and
    its parts; the task is queued once it commits. Refuses
    (UsageUploadRefused) a file larger than settings.IMPORT_MAX_BYTES or
    empty, storing nothing. Not idempotent: the same file uploaded twice is
    two uploads, and the second imports nothing new (the import is
    idempotent by record id)."""
    limit = settings.IMPORT_MAX_BYTES
    if file.size > limit:
        raise UsageUploadRefused(
            f"The file is {file.size:,} bytes; an upload holds at most {limit:,} bytes "
            "(IMPORT_MAX_BYTES). Split it into smaller files, or import it with "
            "manage.py import_usage. Nothing was stored."
        )
    if not file.size:
        raise UsageUploadRefused(
            "The file is empty; a usage file starts with the header id,charge,date,quantity."
        )
    with transaction.atomic():
        upload = UsageUpload.objects.create(
            file_name=file.name[:255], size=file.size, uploaded_by=user
        )
        for index, data in enumerate(file.chunks(UPLOAD_PART_BYTES)):
            UsageUploadPart.objects.create(upload=upload, index=index, data=data)
        transaction.on_commit(
            lambda: async_task(IMPORT_TASK, upload.pk, group="import_usage_upload")
        )
    return upload


class _PartsReader(io.RawIOBase):
    """An upload's bytes, read one part at a time from the database."""

    def __init__(self, upload_id: int):
        self.upload_id = upload_id
        self.index = 0
        self.pending = memoryview(b"")

    def readable(self):
        return True

    def readinto(self, buffer):
        while not self.pending:
            data = (
                UsageUploadPart.objects.filter(upload_id=self.upload_id, index=self.index)
                .values_list("data", flat=True)
                .first()
            )
            if data is None:
                return 0
            self.index += 1
            self.pending = memoryview(bytes(data))
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size


def _start(upload_id: int) -> bool:
    """Mark the upload Processing, in a transaction of its own so the page
    shows it while the import works. False when there is nothing to do."""
    with transaction.atomic():
        try:
            upload = lock_one(UsageUpload, upload_id)
        except UsageUpload.DoesNotExist:
            return False
        if upload.is_final:
            return False
        upload.status = UploadStatus.PROCESSING
        upload.attempts += 1
        upload.started_at = timezone.now()
        upload.save(update_fields=["status", "attempts", "started_at"])
        return True


def _finish(upload: UsageUpload, status: str, **outcome) -> None:
    for name, value in outcome.items():
        setattr(upload, name, value)
    upload.status = status
    upload.finished_at = timezone.now()
    upload.save(update_fields=["status", "finished_at", *outcome])
    upload.parts.all().delete()


def usage_upload_import(*, upload_id: int) -> None:
    """Import a stored upload and record the outcome on it: Imported with
    the counts, or Refused with the lines ``import_usage`` prints.

    Transaction: the outcome, the records and the deletion of the parts
    commit together, in the import's transaction. Locking: the upload's row
    first (core.locks), held to that commit, then the import's own locks.
    Idempotency: an upload already imported or refused is left alone, so the
    task may run twice, or twice at once (the second waits for the first's
    lock, then finds it done). A worker that dies leaves it Processing, and
    the queue's retry imports it. An unexpected error leaves it Error, with
    the message, and is raised again for the queue's log."""
    if not _start(upload_id):
        return
    try:
        with transaction.atomic():
            upload = lock_one(UsageUpload, upload_id)
            if upload.is_final:
                return
            stream = io.BufferedReader(_PartsReader(upload_id), buffer_size=64 * 1024)
            try:
                summary = usage_import(stream=stream)
            except UsageImportRefused as refusal:
                _finish(upload, UploadStatus.REFUSED, problems=refusal.lines())
            else:
                _finish(
                    upload,
                    UploadStatus.IMPORTED,
                    imported=summary.imported,
                    already_recorded=summary.already_recorded,
                )
    except Exception as exc:
        logger.exception("usage upload %s: the import stopped", upload_id)
        with transaction.atomic():
            upload = lock_one(UsageUpload, upload_id)
            if not upload.is_final:
                _finish(
                    upload,
                    UploadStatus.ERROR,
                    problems=[f"The import stopped: {exc}. Nothing was recorded."],
                )
        raise
