"""Canceling and deleting a bill run: the blocker (what makes a Completed run
impossible to cancel), the undo of what a run generated (shared with a run
that fails), and the removal of a Canceled or Error run."""

import logging

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from billruns import leases
from billruns.models import Action, BillRun, RunStatus
from billruns.services.common import (
    REVIEW_TASK,
    BillRunActionRefused,
    _enqueue,
    _record,
    _renew_run,
    _require,
)
from billruns.services.counters import COUNTER_FIELDS, _refresh_counters
from billruns.signals import bill_run_canceled
from core import locks
from core.users import acting_user, acting_user_id
from customers.models import Account, Charge
from invoices.models import Document, DocumentItem, DocumentStatus, ItemKind

logger = logging.getLogger(__name__)

# The start of the note on the event of a cancel that found, when it came to
# be done, that another run had billed the run's charges again meanwhile.
CANCEL_STOPPED = "Cancel stopped:"


def _cancel_blocker(run):
    """Why a Completed run cannot be canceled, or None."""
    if Document.objects.filter(bill_run=run, status=DocumentStatus.POSTED).exists():
        return f"{run.number} has posted documents; a run with posted documents cannot be canceled."
    # A live item (a charge item or an adjustment) of one of this run's
    # charges that another run wrote after this run's: canceling this run
    # would roll the charge back under it, or leave an adjustment
    # correcting an item that is gone. Items written before this run's are
    # what this run started from, and canceling it returns to them.
    # One pass: each charge's first item in this run, joined to the others'
    # items (a correlated EXISTS per item was a nested loop over all items,
    # quadratic in the book: docs/benchmarks.md). min() and not ORDER BY ...
    # LIMIT 1: with a LIMIT, PostgreSQL expects to meet a blocker early and
    # picks a nested loop over both sides, which, when there is none (the
    # usual case), compares every item with every charge: more than 23
    # minutes at 100,000 accounts after two runs, against 1.9 s hashed.
    items, documents = DocumentItem._meta.db_table, Document._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT min(i.document_id) FROM {items} AS i "  # noqa: S608 (table names only)
            "JOIN (SELECT j.charge_id, min(j.id) AS first_id "
            f"FROM {items} AS j JOIN {documents} AS e ON e.id = j.document_id "
            "WHERE e.bill_run_id = %s AND j.document_canceled = %s GROUP BY j.charge_id) AS f "
            "ON f.charge_id = i.charge_id AND i.id > f.first_id "
            f"JOIN {documents} AS d ON d.id = i.document_id "
            # (a preview's items bill nothing: never a reason to refuse)
            "WHERE i.document_canceled = %s AND i.preview = %s "
            "AND (d.bill_run_id IS NULL OR d.bill_run_id <> %s)",
            [run.pk, False, False, False, run.pk],
        )
        (blocker,) = cursor.fetchone()
    if blocker is not None:
        later = Document.objects.select_related("bill_run").get(pk=blocker)
        other = later.bill_run.number if later.bill_run_id else later
        return (
            f"{run.number} cannot be canceled: {other} has billed its charges again since. "
            f"Cancel {other} first."
        )
    return None


def bill_run_cancel(*, run, user, wait=True) -> BillRun:
    """Pending -> Canceled, or Completed -> CancelInProgress -> Canceled.

    A Completed run can be canceled only while none of its documents is
    posted and no later document bills its charges again. Its Draft
    documents become Canceled and the charged-through dates they advanced
    are rolled back, in one transaction under the run's lock, so two cancels
    racing roll back once. Canceled is announced (``bill_run_canceled``) in
    the transaction that makes it so. A preview (Pending or Completed) is
    deleted instead, unannounced; the run returned is then no longer stored.
    """
    with transaction.atomic():
        locked = locks.lock_one(BillRun, run.pk)
        _require(locked, Action.CANCEL)
        if locked.preview:
            # Canceling a preview deletes it: it consumed nothing to give back.
            _delete_preview(locked, user)
            locked.status = RunStatus.CANCELED
            return locked
        if locked.status == RunStatus.PENDING:
            locked.canceled_at = timezone.now()
            locked.canceled_by = acting_user(user)
            _record(locked, RunStatus.CANCELED, user)
            locked.save(update_fields=["status", "canceled_at", "canceled_by"])
            bill_run_canceled.send(sender=BillRun, run=locked, user=acting_user(user))
            return locked
        blocker = _cancel_blocker(locked)
        if blocker:
            raise BillRunActionRefused(blocker)
        locked.heartbeat_at = timezone.now()
        _record(locked, RunStatus.CANCEL_IN_PROGRESS, user)
        locked.save(update_fields=["status", "heartbeat_at"])
        if not wait:
            _enqueue("billruns.tasks.continue_canceling", locked.pk, acting_user_id(user))
    if not wait:
        return locked
    run = bill_run_continue_canceling(run_id=locked.pk, user=user)
    if run.status == RunStatus.COMPLETED:
        raise BillRunActionRefused(run.events.order_by("-id").values_list("note", flat=True)[0])
    return run


def bill_run_continue_canceling(*, run_id, user) -> BillRun:
    """Finish a cancel: one transaction; idempotent.

    The check that another run has not billed the run's charges again is
    made once more here, under the row locks of the run's accounts: a run
    that was generating for one of them when the cancel was asked has
    committed by then, and none can start billing them until this commits
    (generation locks the same rows). If one did bill them meanwhile, the
    run goes back to Completed with the reason (CANCEL_STOPPED) and nothing
    is canceled.
    """
    # (The transaction holds the run's row: the heartbeat renews it only
    # while this waits for that lock; the lock then tells the sweeper.)
    with leases.Heartbeat(lambda: _renew_run(run_id, RunStatus.CANCEL_IN_PROGRESS)):
        return _continue_canceling(run_id, user)


def _continue_canceling(run_id, user):
    with transaction.atomic():
        run = locks.lock_one(BillRun, run_id)
        if run.status != RunStatus.CANCEL_IN_PROGRESS:
            return run
        accounts = Account.objects.filter(
            id__in=Document.objects.filter(bill_run=run, status=DocumentStatus.DRAFT).values(
                "account_id"
            )
        )
        # Locked in id order, as generation locks them: no deadlock.
        list(locks.locked(accounts).values_list("id", flat=True))
        blocker = _cancel_blocker(run)
        if blocker:
            _record(run, RunStatus.COMPLETED, user, note=f"{CANCEL_STOPPED} {blocker}")
            run.save(update_fields=["status"])
            # Completed again: its review is keyed by this event (billruns.review).
            _enqueue(REVIEW_TASK, run.pk)
            return run
        _undo_generated(run, user)
        _refresh_counters(run)
        run.canceled_at = timezone.now()
        run.canceled_by = acting_user(user)
        _record(run, RunStatus.CANCELED, user)
        run.save(update_fields=["status", "canceled_at", "canceled_by", *COUNTER_FIELDS])
        bill_run_canceled.send(sender=BillRun, run=run, user=acting_user(user))
    return run


def _undo_generated(run, user):
    """Cancel the run's Draft documents and roll back exactly the
    charged-through dates they advanced. Runs inside the caller's
    transaction, which holds the run's lock. A preview that fails moved
    nothing: its documents are deleted."""
    if run.preview:
        documents = Document.all_objects.filter(bill_run=run)
        DocumentItem.all_objects.filter(document__in=documents).delete()
        documents.delete()
        return
    drafts = Document.objects.filter(bill_run=run, status=DocumentStatus.DRAFT)
    live_items = DocumentItem.objects.filter(document__in=drafts, document_canceled=False)
    _restore_charged_through(run)
    # The items the run's adjustments reversed from their first day cover
    # their service again once those adjustments are canceled; they return
    # to the unique index after the run's own items have left it (a piece
    # the run billed again from the same day).
    reversed_whole = list(
        live_items.filter(kind=ItemKind.ADJUSTMENT, adjusts__fully_reversed=True)
        .filter(service_start=F("adjusts__service_start"))
        .values_list("adjusts_id", flat=True)
    )
    DocumentItem.objects.filter(document__in=drafts).update(document_canceled=True)
    if reversed_whole:
        DocumentItem.objects.filter(id__in=reversed_whole).update(fully_reversed=False)
    drafts.update(
        status=DocumentStatus.CANCELED,
        canceled_at=timezone.now(),
        canceled_by=acting_user(user),
    )


def _restore_charged_through(run):
    """Each charge the run's Draft documents bill gets back the charged-through
    date it had before the run: every item of a charge in one run carries that
    value (``previous_charged_through``; the first one by service start is
    read). One statement over the run's items: a correlated subquery per
    charge found no index to use (the items' index on the charge is partial,
    live charge items only) and scanned all items for each charge, hours for
    a 100,000-account run (docs/benchmarks.md)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Charge._meta.db_table} SET charged_through_date = p.previous_charged_through "  # noqa: S608 (table names only)
            "FROM (SELECT i.charge_id, i.previous_charged_through, "
            "row_number() OVER (PARTITION BY i.charge_id ORDER BY i.service_start, i.id) AS n "
            f"FROM {DocumentItem._meta.db_table} AS i JOIN {Document._meta.db_table} AS d "
            "ON d.id = i.document_id "
            "WHERE d.bill_run_id = %s AND d.status = %s AND i.document_canceled = %s) AS p "
            f"WHERE p.n = 1 AND {Charge._meta.db_table}.id = p.charge_id",
            [run.pk, DocumentStatus.DRAFT, False],
        )


def _delete_preview(run, user):
    """Delete a preview with its documents and items, in the caller's
    transaction, which holds its lock. Nothing else refers to them: a
    preview is never posted, paid, emailed or retried."""
    logger.info("preview %s deleted by %s", run.number, user)
    documents = Document.all_objects.filter(bill_run=run)
    DocumentItem.all_objects.filter(document__in=documents).delete()
    documents.delete()
    run.delete()


def _delete_stale_previews(run):
    """Delete the previews whose adjustments correct items of ``run``, a
    Canceled or Error run being deleted: those previews were computed over
    items that no longer bill anything (and their items would PROTECT the
    run's). Runs in the caller's transaction, which holds ``run``'s lock."""
    stale = (
        BillRun.objects.filter(preview=True, documents__items__adjusts__document__bill_run=run)
        .distinct()
        .order_by("id")
    )
    for preview in list(stale):
        _delete_preview(preview, None)


def bill_run_delete(*, run, user) -> None:
    """Remove a Canceled or Error run with its canceled documents. A run
    holding a document that is not Canceled is refused: a posted document is
    never deleted. A preview is deleted in any status but Processing, with
    its Preview documents."""
    with transaction.atomic():
        locked = locks.lock_one(BillRun, run.pk)
        _require(locked, Action.DELETE)
        if locked.preview:
            _delete_preview(locked, user)
            return
        kept = (
            Document.objects.filter(bill_run=locked)
            .exclude(status=DocumentStatus.CANCELED)
            .values_list("number", "status")
            .first()
        )
        if kept is not None:
            raise BillRunActionRefused(
                f"{locked.number} cannot be deleted: its document {kept[0]} is {kept[1]}, "
                "and only canceled documents are deleted with their run."
            )
        retry = locked.retries.order_by("id").values_list("number", flat=True).first()
        if retry is not None:
            raise BillRunActionRefused(
                f"{locked.number} cannot be deleted: {retry} retried it, "
                "and that run's details name it."
            )
        logger.info("bill run %s deleted by %s", locked.number, user)
        # Documents are PROTECT from their run: only these, all canceled, go.
        _delete_stale_previews(locked)
        Document.objects.filter(bill_run=locked).delete()
        locked.delete()
