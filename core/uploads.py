"""Import files uploaded from a page and imported by the task queue: the
usage page's ``import_usage`` files (invoices.UsageUpload) and the accounts
import page's ``import_accounts`` files (customers.AccountUpload).

A page stores the file and queues its import; a worker runs the very import
of the command on it and records what came of it on the upload, which the
page polls. Each kind has its own model (its app's, below or beside its
importer), made of the abstract models here; the storing, the reading and
the task's steps are shared.

Where a file lives: in the database, in parts of UPLOAD_PART_BYTES (the
kind's part model, ``upload.parts``), written in the transaction that
creates the upload. The workers of every host read the same database, so no
shared disk is needed (the site has no MEDIA storage), and the upload and
its bytes commit together: a task never finds an upload without its file. A
worker that dies mid-import rolls its transaction back; the queue hands the
task to another worker, which finds the parts where they were. The parts are
deleted in the transaction that records the outcome: what is left is the
upload's row (who, when, the file's name and size, the summary or the
problems).
"""

import datetime
import io
import logging
from collections.abc import Callable
from typing import IO

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task

from core.locks import lock_one, locked

logger = logging.getLogger(__name__)

# An upload still Pending this long after it was stored, or left Processing
# by a worker that is gone this long after it started, is queued again by
# the sweep (uploads_sweep), once a minute.
SWEEP_GRACE_SECONDS = 120
# One part is one row of at most this many bytes: a 200 MB file is 200 rows,
# and the import holds one part in memory at a time.
UPLOAD_PART_BYTES = 1024 * 1024
READ_BUFFER_BYTES = 64 * 1024


class UploadStatus(models.TextChoices):
    PENDING = "Pending"
    PROCESSING = "Processing"
    IMPORTED = "Imported"
    REFUSED = "Refused"
    ERROR = "Error"


UPLOAD_FINAL_STATUSES = (UploadStatus.IMPORTED, UploadStatus.REFUSED, UploadStatus.ERROR)


class FileUpload(models.Model):
    """An import file a clerk uploaded, and what came of its import. A
    concrete kind adds ``Meta.constraints`` (its status check, named for its
    table) and ``get_absolute_url``; its part model points here as
    ``parts``."""

    file_name = models.CharField(max_length=255)
    size = models.PositiveBigIntegerField(help_text="The file's size in bytes.")
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    uploaded_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(
        max_length=16, choices=UploadStatus.choices, default=UploadStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="How many times a worker started the import."
    )
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Imported: the line the command prints on success.
    summary = models.CharField(max_length=255, blank=True)
    # Refused: the lines the command prints to stderr (the first 100
    # problems, then how many more); Error: what stopped the import.
    problems = models.JSONField(default=list, blank=True)

    class Meta:
        abstract = True
        ordering = ["-id"]

    def __str__(self):
        return f"{self.file_name} ({self.status})"

    @property
    def is_final(self):
        return self.status in UPLOAD_FINAL_STATUSES


def upload_status_constraint(name: str) -> models.CheckConstraint:
    return models.CheckConstraint(condition=Q(status__in=UploadStatus.values), name=name)


class FileUploadPart(models.Model):
    """One piece of an uploaded file, in order. A concrete kind adds
    ``upload = ForeignKey(<its upload>, CASCADE, related_name="parts")`` and
    a unique constraint on (upload, index)."""

    index = models.PositiveIntegerField()
    data = models.BinaryField()

    class Meta:
        abstract = True

    def __str__(self):
        return f"upload {self.upload_id} part {self.index}"


class UploadRefused(Exception):
    """The file was not stored (too large, empty); nothing changed."""


def upload_store(*, model, file, user, task: str, command: str) -> FileUpload:
    """Store an uploaded file as a ``model`` upload and queue ``task`` (a
    dotted path, called with the upload's id) for its import.

    ``file`` is a Django UploadedFile; ``command`` names the import command
    for the message that refuses a file too large. Transaction: one, for the
    upload and its parts; the task is queued once it commits. Refuses
    (UploadRefused) a file larger than settings.IMPORT_MAX_BYTES or empty,
    storing nothing. Not idempotent: the same file uploaded twice is two
    uploads (what the second import does is the import's rule)."""
    limit = settings.IMPORT_MAX_BYTES
    if file.size > limit:
        raise UploadRefused(
            f"The file is {file.size:,} bytes; an upload holds at most {limit:,} bytes "
            f"(IMPORT_MAX_BYTES). Split it into smaller files, or import it with "
            f"manage.py {command}. Nothing was stored."
        )
    if not file.size:
        raise UploadRefused("The file is empty. Nothing was stored.")
    part_model = model.parts.rel.related_model
    with transaction.atomic():
        upload = model.objects.create(file_name=file.name[:255], size=file.size, uploaded_by=user)
        for index, data in enumerate(file.chunks(UPLOAD_PART_BYTES)):
            part_model.objects.create(upload=upload, index=index, data=data)
        transaction.on_commit(lambda: async_task(task, upload.pk, group=task.rsplit(".", 1)[-1]))
    return upload


class _PartsReader(io.RawIOBase):
    """An upload's bytes, read one part at a time from the database."""

    def __init__(self, upload: FileUpload):
        self.parts = upload.parts.all()
        self.index = 0
        self.pending = memoryview(b"")

    def readable(self):
        return True

    def readinto(self, buffer):
        while not self.pending:
            data = self.parts.filter(index=self.index).values_list("data", flat=True).first()
            if data is None:
                return 0
            self.index += 1
            self.pending = memoryview(bytes(data))
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size


def _start(model, upload_id: int) -> bool:
    """Mark the upload Processing, in a transaction of its own so the page
    shows it while the import works. False when there is nothing to do."""
    with transaction.atomic():
        try:
            upload = lock_one(model, upload_id)
        except model.DoesNotExist:
            return False
        if upload.is_final:
            return False
        upload.status = UploadStatus.PROCESSING
        upload.attempts += 1
        upload.started_at = timezone.now()
        upload.save(update_fields=["status", "attempts", "started_at"])
        return True


def _finish(upload: FileUpload, status: str, **outcome) -> None:
    for name, value in outcome.items():
        setattr(upload, name, value)
    upload.status = status
    upload.finished_at = timezone.now()
    upload.save(update_fields=["status", "finished_at", *outcome])
    upload.parts.all().delete()


def upload_import(
    *,
    model,
    upload_id: int,
    run_import: Callable[[IO[bytes]], object],
    refused: type[Exception],
) -> None:
    """Import a stored upload with ``run_import`` (the command's import, on
    the file's bytes as a stream; its result's ``str`` is the summary line)
    and record the outcome on it: Imported with the summary, or Refused with
    the lines of the ``refused`` exception (its ``lines()``), as the command
    prints them.

    Transaction: the outcome, what the import writes and the deletion of the
    parts commit together, in one transaction. Locking: the upload's row
    first (core.locks), held to that commit, then the import's own locks.
    Idempotency: an upload already imported or refused is left alone, so the
    task may run twice, or twice at once (the second waits for the first's
    lock, then finds it done). A worker that dies leaves it Processing, and
    the queue's retry imports it. An unexpected error leaves it Error, with
    the message, and is raised again for the queue's log."""
    if not _start(model, upload_id):
        return
    try:
        with transaction.atomic():
            upload = lock_one(model, upload_id)
            if upload.is_final:
                return
            stream = io.BufferedReader(_PartsReader(upload), buffer_size=READ_BUFFER_BYTES)
            try:
                summary = run_import(stream)
            except refused as refusal:
                _finish(upload, UploadStatus.REFUSED, problems=refusal.lines())
            else:
                _finish(upload, UploadStatus.IMPORTED, summary=str(summary))
    except Exception as exc:
        logger.exception("%s %s: the import stopped", model._meta.label, upload_id)
        with transaction.atomic():
            upload = lock_one(model, upload_id)
            if not upload.is_final:
                _finish(
                    upload,
                    UploadStatus.ERROR,
                    problems=[f"The import stopped: {exc}. Nothing was imported."],
                )
        raise


def uploads_sweep(*, model, task: str, grace_seconds: int = SWEEP_GRACE_SECONDS) -> int:
    """Queue ``task`` again for the uploads whose import was lost (once a
    minute, on the task queue); returns how many.

    Lost: still Pending ``grace_seconds`` after the upload (its task was
    never queued: the process died between the commit and the queueing), or
    Processing ``grace_seconds`` after the import started while no worker
    holds its lock (a working import holds the upload's row to its commit,
    so a row this sweep can lock has no worker). Queuing an import that was
    merely slow to start is harmless: the import is idempotent."""
    cutoff = timezone.now() - datetime.timedelta(seconds=grace_seconds)
    with transaction.atomic():
        pending = model.objects.filter(status=UploadStatus.PENDING, uploaded_at__lt=cutoff)
        abandoned = model.objects.filter(status=UploadStatus.PROCESSING, started_at__lt=cutoff)
        # Locked by id, without joins (core.locks); a held row is skipped.
        lost = [upload.pk for upload in locked(pending | abandoned, skip_locked=True).only("pk")]
        group = task.rsplit(".", 1)[-1]
        for upload_id in lost:
            transaction.on_commit(
                lambda upload_id=upload_id: async_task(task, upload_id, group=group)
            )
    return len(lost)
