"""Previews older than ``PREVIEW_KEEP_DAYS`` are deleted by the task queue
(``billruns.tasks.sweep_previews``, once an hour: migration
0014_preview_runs), each in a transaction of its own under its lock, as
``bill_run_delete`` deletes one."""

import datetime
import logging

from django.db import transaction
from django.utils import timezone

from billruns.models import PREVIEW_KEEP_DAYS, Action, BillRun
from billruns.services.cancel import _delete_preview
from core import locks

logger = logging.getLogger(__name__)


def previews_sweep(*, now=None, keep_days=PREVIEW_KEEP_DAYS) -> int:
    """Delete the previews created more than ``keep_days`` days before
    ``now``; how many. A preview still Processing is left for the next
    sweep (its chunks are writing). Idempotent."""
    cutoff = (now or timezone.now()) - datetime.timedelta(days=keep_days)
    deleted = 0
    for run_id in list(
        BillRun.objects.filter(preview=True, created_at__lt=cutoff)
        .order_by("id")
        .values_list("id", flat=True)
    ):
        with transaction.atomic():
            run = locks.locked(BillRun.objects.filter(pk=run_id, preview=True)).first()
            if run is None or not run.allows(Action.DELETE):
                continue
            _delete_preview(run, "the preview sweep")
            deleted += 1
    if deleted:
        logger.info("deleted %s preview(s) older than %s days", deleted, keep_days)
    return deleted
