"""Taking up what a dead worker or a lost task left: Pending runs never
started, chunks, postings and cancels whose lease ran out, runs left
completed but not auto-posted or not announced."""

import datetime
import logging

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task

from billruns.models import BillRun, BillRunChunk, BillRunEvent, ChunkStatus, RunStatus
from billruns.services.common import _announce_now
from billruns.services.execution import bill_run_finish_if_done
from billruns.services.posting import _auto_post
from core import locks, stamps

logger = logging.getLogger(__name__)


def bill_runs_sweep(*, lease_seconds, pending_grace_seconds):
    """Take up runs whose worker died or whose task was lost (once a minute,
    on the task queue).

    A Pending run older than the grace period is queued again; the leases
    are swept (``bill_runs_sweep_leases``); a run a dead worker left
    Completed is auto-posted and announced. Every step is idempotent, so a
    run that was merely slow is not harmed.
    """
    now = timezone.now()
    stale_pending = BillRun.objects.filter(
        status=RunStatus.PENDING,
        created_at__lt=now - datetime.timedelta(seconds=pending_grace_seconds),
    )
    for run_id in stale_pending.values_list("id", flat=True):
        async_task("billruns.tasks.start_bill_run", run_id, group="start_bill_run")
    bill_runs_sweep_leases(lease_seconds=lease_seconds)
    # A run whose worker died between completing and auto-posting: post it
    # (the posting announces its end). A run that ended unannounced (before
    # announcements were made in the transaction of the run's end, or an
    # auto-post refused and its worker gone): announce it.
    grace = now - datetime.timedelta(seconds=pending_grace_seconds)
    unposted = BillRun.objects.filter(
        status=RunStatus.COMPLETED, auto_post=True, completed_at__lt=grace
    ).exclude(events__to_status=RunStatus.POST_IN_PROGRESS)
    for run in unposted:
        _auto_post(run)
    unannounced = BillRun.objects.filter(
        status__in=[RunStatus.COMPLETED, RunStatus.POSTED, RunStatus.ERROR],
        announced_at__isnull=True,
        completed_at__lt=grace,
        completed_at__gt=now - datetime.timedelta(days=1),
    )
    for run_id in unannounced.values_list("id", flat=True):
        _announce_now(run_id)
    # The change stamps of connections that are gone (core.stamps): one row
    # per live connection stays, so reading the stamp stays one small scan.
    stamps.fold()


def bill_runs_sweep_leases(*, lease_seconds):
    """Hand to another worker each step whose worker is gone (every few
    seconds, from every worker: billruns.leases).

    A chunk is queued again when its task was queued more than the lease ago
    and no live worker has it: the worker that took it stopped renewing its
    heartbeat (it died), or let go of it after a failed attempt, or no
    worker ever took it while the queue passed it by (a chunk queued after
    it is done: its task was lost with a dead host's prefetched tasks) or
    worked on no chunk at all for the whole lease. A posting or a cancel is
    continued when its heartbeat is older than the lease. A Processing run
    whose chunks are all done is completed. Each hand-over is claimed under
    the row's lock (rows locked by the step's own transaction are skipped:
    that worker is alive), so sweepers racing queue it once.
    """
    now = timezone.now()
    expired = now - datetime.timedelta(seconds=lease_seconds)
    queue_idle = None
    processing = BillRun.objects.filter(status=RunStatus.PROCESSING)
    for run_id in list(processing.values_list("id", flat=True)):
        chunks = BillRunChunk.objects.filter(bill_run_id=run_id)
        pending = chunks.filter(status=ChunkStatus.PENDING)
        if not pending.exists():
            bill_run_finish_if_done(run_id=run_id)
            continue
        candidates = list(
            pending.filter(leased_at__lt=expired)
            .exclude(_live_holder(expired))
            .values_list("id", "index", "leased_at", "attempts", named=True)
        )
        if not candidates:
            continue
        # The last chunk, in queue order, that a worker has finished.
        passed = (
            chunks.filter(status=ChunkStatus.DONE)
            .order_by("-leased_at", "-index")
            .values_list("leased_at", "index")
            .first()
        )
        due = []
        for chunk in candidates:
            if chunk.attempts or (passed and (chunk.leased_at, chunk.index) < passed):
                due.append(chunk.id)
                continue
            if queue_idle is None:
                queue_idle = not BillRunChunk.objects.filter(
                    bill_run__status=RunStatus.PROCESSING,
                    status=ChunkStatus.PENDING,
                    heartbeat_at__gte=expired,
                ).exists()
            if queue_idle:
                due.append(chunk.id)
        if due:
            _requeue_chunks(due, expired, now)
    for status, task in (
        (RunStatus.POST_IN_PROGRESS, "billruns.tasks.continue_posting"),
        (RunStatus.CANCEL_IN_PROGRESS, "billruns.tasks.continue_canceling"),
    ):
        stuck = BillRun.objects.filter(status=status, heartbeat_at__lt=expired)
        if not stuck.exists():  # the usual case: no transaction (on SQLite, no write lock)
            continue
        with transaction.atomic():
            stuck = list(locks.locked(stuck, skip_locked=True).values_list("id", flat=True))
            BillRun.objects.filter(pk__in=stuck).update(heartbeat_at=now)
        for run_id in stuck:
            logger.info("bill run %s: its worker is gone; continuing in another", run_id)
            user_id = (
                BillRunEvent.objects.filter(bill_run_id=run_id, to_status=status)
                .order_by("-id")
                .values_list("user_id", flat=True)
                .first()
            )
            async_task(task, run_id, user_id, group=task.rsplit(".", 1)[-1])


def _live_holder(expired):
    """A chunk taken by a worker whose heartbeat is fresh."""
    return Q(heartbeat_at__gte=expired) & ~Q(holder="")


def _requeue_chunks(chunk_ids, expired, now):
    with transaction.atomic():
        claimable = BillRunChunk.objects.filter(
            pk__in=chunk_ids, status=ChunkStatus.PENDING, leased_at__lt=expired
        ).exclude(_live_holder(expired))
        claimed = list(locks.locked(claimable, skip_locked=True).values_list("id", flat=True))
        BillRunChunk.objects.filter(pk__in=claimed).update(leased_at=now)
    for chunk_id in claimed:
        logger.info("chunk %s: its worker or its task is gone; queued again", chunk_id)
        async_task("billruns.tasks.process_bill_run_chunk", chunk_id, group="chunk")
