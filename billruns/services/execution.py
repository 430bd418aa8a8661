"""Executing a bill run: start (the selection split into chunks), the chunks,
finish (counters, statistics, auto-post, announcement), fail, and
``bill_run_execute`` that does all of it in this process."""

import datetime
import logging
import uuid

from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from billruns import generation, leases
from billruns.models import (
    Action,
    BillRun,
    BillRunChunk,
    BillRunFailure,
    BillRunTaxRate,
    ChunkStatus,
    RunStatus,
)
from billruns.services.cancel import _undo_generated
from billruns.services.common import REVIEW_TASK, _announce, _enqueue, _record
from billruns.services.counters import COUNTER_FIELDS, _refresh_counters
from billruns.services.posting import _auto_post
from billruns.signals import bill_run_completed, bill_run_failed
from core import locks
from customers.models import Account, Charge, Status, TaxRate
from invoices.models import Document, DocumentItem

logger = logging.getLogger(__name__)

# A chunk whose attempts reach this number without finishing is not one
# account's fault (those are isolated): the run as a whole fails (Error).
MAX_CHUNK_ATTEMPTS = 3


def _selected_account_ids(run):
    if run.retry_of_id:
        accounts = Account.objects.filter(
            id__in=BillRunFailure.objects.filter(bill_run_id=run.retry_of_id).values("account_id")
        )
    elif run.account_id:
        accounts = Account.objects.filter(id=run.account_id)
    else:
        accounts = Account.objects.all()
        if run.batches:
            accounts = accounts.filter(batch__in=run.batches)
        if run.bill_cycle_days:
            accounts = accounts.filter(bill_cycle_day__in=run.bill_cycle_days)
    return accounts.filter(status=Status.ACTIVE).order_by("id").values_list("id", flat=True)


def bill_run_start(*, run_id, enqueue_chunks=True):
    """Pending -> Processing: evaluate the selection and split it into chunks.

    Returns the ids of the chunks still to do: all of them when this call
    started the run; the unfinished ones when the run was already
    Processing (a redelivered start task, or bill_run_execute taking up an
    interrupted run picks up where it stopped); none when the table allows
    no start (the run was canceled before it started, or it ended long ago):
    a late start changes nothing.

    Transaction: one, under the run's lock. A selection that cannot be
    evaluated fails the run (Processing -> Error, BILLING_RULES.md) in the
    same transaction: the selection and the chunks are written in a
    savepoint, so the run never commits Processing without its chunks. A
    failure outside the savepoint (the database gone) leaves the run
    Pending, and the sweeper queues its start again.
    """
    with transaction.atomic():
        run = locks.locked(BillRun.objects.filter(pk=run_id)).first()
        if run is None:
            return []  # a preview deleted before it started
        if run.status == RunStatus.PROCESSING:
            pending = list(
                run.chunks.filter(status=ChunkStatus.PENDING).values_list("id", flat=True)
            )
        elif not run.allows(Action.START):
            return []
        else:
            run.started_at = run.heartbeat_at = timezone.now()
            _record(run, RunStatus.PROCESSING, None)
            run.save(update_fields=["status", "started_at", "heartbeat_at"])
            try:
                with transaction.atomic():
                    _snapshot_tax_rates(run)
                    pending = _write_chunks(run)
            except Exception as exc:
                logger.exception("bill run %s: selection failed", run.number)
                _fail(run, f"The selection could not be evaluated: {exc}")
                return []
        if enqueue_chunks:
            for chunk_id in pending:
                _enqueue("billruns.tasks.process_bill_run_chunk", chunk_id)
            if not pending:
                transaction.on_commit(lambda: bill_run_finish_if_done(run_id=run_id))
    return pending


def _snapshot_tax_rates(run):
    """The tenant's tax rates as they are now, kept on the run
    (``BillRunTaxRate``): every chunk computes its tax lines with them, so a
    rate changed while the run is Processing, or later, never alters it
    (BILLING_RULES.md, Taxes)."""
    BillRunTaxRate.objects.bulk_create(
        BillRunTaxRate(bill_run=run, code=code, name=name, rate=rate)
        for code, name, rate in TaxRate.objects.values_list("code", "name", "rate")
    )


def _write_chunks(run):
    """Evaluate the run's selection and write its chunks
    (``BILLRUN_CHUNK_SIZE`` accounts each); return their ids."""
    size = generation.chunk_size()
    ids = list(_selected_account_ids(run))
    queued_at = timezone.now()
    chunks = [
        BillRunChunk(
            bill_run=run,
            index=index,
            account_ids=ids[start : start + size],
            account_count=len(ids[start : start + size]),
            leased_at=queued_at,
        )
        for index, start in enumerate(range(0, len(ids), size))
    ]
    BillRunChunk.objects.bulk_create(chunks, batch_size=500)
    run.accounts_selected = len(ids)
    run.save(update_fields=["accounts_selected"])
    return list(run.chunks.values_list("id", flat=True))


def bill_run_process_chunk(*, chunk_id, cluster=""):
    """Run one chunk, counting the attempt; fail the run when a chunk keeps failing.

    The worker takes the chunk (its holder and heartbeat, under the chunk's
    row lock) and renews the heartbeat while it works (billruns.leases); a
    delivery that finds the chunk taken by a worker whose heartbeat is still
    fresh leaves it to that worker, so a slow live chunk is never worked
    twice. An exception that is not one account's (those are recorded as
    failures) is re-raised after it is recorded on the chunk, so the task
    queue sees a failed task and the sweeper hands the chunk out again.
    """
    holder = f"{cluster or 'inline'}/{uuid.uuid4().hex[:12]}"[-160:]
    with transaction.atomic():
        chunk = locks.locked(BillRunChunk.objects.filter(pk=chunk_id)).first()
        if chunk is None or chunk.status == ChunkStatus.DONE:
            return False
        now = timezone.now()
        if _held_by_a_live_worker(chunk, now):
            logger.info(
                "chunk %s is being processed by %s; this delivery leaves it", chunk_id, chunk.holder
            )
            return False
        exhausted = chunk.attempts >= MAX_CHUNK_ATTEMPTS
        if not exhausted:
            chunk.attempts += 1
            chunk.holder = holder
            chunk.heartbeat_at = now
            chunk.save(update_fields=["attempts", "holder", "heartbeat_at"])
    if exhausted:
        last_error = f": {chunk.last_error}" if chunk.last_error else "."
        bill_run_fail(
            run_id=chunk.bill_run_id,
            message=f"Chunk {chunk.index + 1} failed {chunk.attempts} times{last_error}",
        )
        return False

    def beat():
        leases.renew(BillRunChunk, chunk_id, holder=holder, status=ChunkStatus.PENDING)

    done = False
    try:
        with leases.Heartbeat(beat):
            done = generation.process_chunk(chunk_id, cluster=cluster)
    except Exception as exc:
        BillRunChunk.objects.filter(pk=chunk_id).update(last_error=str(exc)[:2000])
        raise
    finally:
        if not done:
            # Let go at once: a redelivery (or the sweeper) need not wait
            # for the lease to run out.
            BillRunChunk.objects.filter(pk=chunk_id, holder=holder).update(holder="")
    if done:
        bill_run_finish_if_done(run_id=chunk.bill_run_id)
    return done


def _held_by_a_live_worker(chunk, now):
    return bool(
        chunk.holder
        and chunk.heartbeat_at is not None
        and chunk.heartbeat_at >= now - datetime.timedelta(seconds=leases.lease_seconds())
    )


def bill_run_finish_if_done(*, run_id):
    """Processing -> Completed once every chunk is done, announced
    (``bill_run_completed``, and ``bill_run_finished`` unless the run
    auto-posts) in the same transaction; then the auto-post, which announces
    the run's end when it ends.

    Safe to call any number of times, from any chunk: the run row lock makes
    exactly one caller complete the run.
    """
    # Every chunk but the last finds chunks still pending: it need not queue
    # for the run's row lock to learn that.
    if BillRunChunk.objects.filter(bill_run_id=run_id, status=ChunkStatus.PENDING).exists():
        return BillRun.objects.filter(pk=run_id).first()
    with transaction.atomic():
        run = locks.locked(BillRun.objects.filter(pk=run_id)).first()
        if run is None:
            return None  # a preview deleted once it completed
        if not run.allows(Action.FINISH):
            return run  # completed by another caller already, failed or canceled
        if run.chunks.filter(status=ChunkStatus.PENDING).exists():
            return run
        _refresh_counters(run)
        run.completed_at = timezone.now()
        _record(run, RunStatus.COMPLETED, None, note="with errors" if run.has_errors else "")
        run.save(update_fields=["status", "completed_at", *COUNTER_FIELDS])
        bill_run_completed.send(sender=BillRun, run=run)
        if not run.auto_post:
            _announce(run)
        # In this transaction, so that the statistics commit with the run's
        # end: every task its commit queues (the owner's notice and email,
        # which read the review, the webhooks) plans on them. Planned on
        # those from before a large run, the review's one statement took a
        # nested loop over the run's documents and items that ran for many
        # minutes (seen when the notice's task wrote the review first).
        _refresh_statistics(run)
    # The Review tab's lines (seconds at 100,000 accounts: never in the
    # completion's transaction, nor on the tab).
    _enqueue(REVIEW_TASK, run.pk)
    if run.auto_post:
        run = _auto_post(run)
    return run


# A run that wrote this many documents changes the tables enough for the
# planner's statistics to mislead it until autovacuum catches up. (Seen at
# 2,000: canceling a 2,000-account run right after the accounts were
# imported took 165 s on statistics from before the run, 3 s after ANALYZE.)
ANALYZE_AFTER_DOCUMENTS = 1000


def _refresh_statistics(run):
    """ANALYZE the tables a large run (a preview too: its review is read)
    has just filled (PostgreSQL).

    Right after a bulk write the planner still believes the old row counts
    and can pick a nested loop that is quadratic in the run's size (seen:
    canceling a 20,000-account run). A few hundred milliseconds here, once
    per large run, keeps posting, canceling and the pages on good plans.
    """
    if connection.vendor != "postgresql":
        return
    if run.invoices_count + run.credit_memos_count < ANALYZE_AFTER_DOCUMENTS:
        return
    tables = [Document._meta.db_table, DocumentItem._meta.db_table, Charge._meta.db_table]
    try:
        # A savepoint: a refused ANALYZE leaves the caller's transaction whole.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {', '.join(tables)}")
    except DatabaseError as exc:  # e.g. a database user that does not own the tables
        logger.warning("could not refresh planner statistics after %s: %s", run.number, exc)


def bill_run_fail(*, run_id, message):
    """Processing -> Error: undo what the run generated, as cancel does, and
    announce it (``bill_run_failed``, ``bill_run_finished``) in the same
    transaction. A run the table allows no failure (it ended already, or was
    canceled) is left as it is: a late failure changes nothing."""
    with transaction.atomic():
        run = locks.lock_one(BillRun, run_id)
        if run.allows(Action.FAIL):
            _fail(run, message)
    return run


def _fail(run, message):
    """Processing -> Error, in the caller's transaction, which holds the run's lock."""
    _undo_generated(run, None)
    _refresh_counters(run)
    run.error_message = message
    run.completed_at = timezone.now()
    _record(run, RunStatus.ERROR, None, note=message)
    run.save(update_fields=["status", "error_message", "completed_at", *COUNTER_FIELDS])
    bill_run_failed.send(sender=BillRun, run=run)
    _announce(run)


def bill_run_execute(*, run_id):
    """Execute a Pending (or interrupted) run in this process until it ends.

    Used by ``billrun create --wait``; the task queue does the same work
    spread over workers.
    """
    chunk_ids = bill_run_start(run_id=run_id, enqueue_chunks=False)
    for chunk_id in chunk_ids:
        for _attempt in range(MAX_CHUNK_ATTEMPTS + 1):
            try:
                bill_run_process_chunk(chunk_id=chunk_id, cluster="inline")
                break
            except Exception:
                logger.exception("bill run %s: chunk %s failed", run_id, chunk_id)
    return bill_run_finish_if_done(run_id=run_id)
