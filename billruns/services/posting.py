"""Posting a bill run: Completed -> PostInProgress -> Posted, its documents
posted in batches by ``invoices.services.documents_post_for_run``."""

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from billruns import leases
from billruns.models import DOCUMENT_POST_STATUSES, Action, BillRun, RunStatus
from billruns.services.common import (
    BillRunActionRefused,
    _announce,
    _announce_now,
    _enqueue,
    _record,
    _renew_run,
    _require,
)
from billruns.signals import bill_run_posted
from core import locks
from core.users import acting_user, acting_user_id
from invoices.models import TenantSettings
from invoices.services import documents_post_for_run

logger = logging.getLogger(__name__)


def bill_run_post(*, run, user, wait=False, automatic=False) -> BillRun:
    """Completed -> PostInProgress -> Posted.

    Posts every Draft invoice of the run, and its Draft credit memos when
    Advanced AR Settlement is on, in batches (invoices.services); documents
    already posted stay exactly as they are. If posting fails, what was
    posted stays Posted, the run returns to Completed with the reason, and
    BillRunActionRefused is raised; posting again posts the rest.

    With ``wait`` the posting happens in this process; otherwise it is
    queued and the run is PostInProgress when this returns. Posted is
    announced (``bill_run_posted``) in the transaction that makes it so; an
    auto-post run's end (``bill_run_finished``) is announced there too, or in
    the transaction that puts it back to Completed when posting fails.
    """
    with transaction.atomic():
        locked = locks.lock_one(BillRun, run.pk)
        _require(locked, Action.POST)
        locked.last_post_error = ""
        locked.heartbeat_at = timezone.now()
        _record(locked, RunStatus.POST_IN_PROGRESS, user, note="auto-post" if automatic else "")
        locked.save(update_fields=["status", "last_post_error", "heartbeat_at"])
        if not wait:
            _enqueue("billruns.tasks.continue_posting", locked.pk, acting_user_id(user))
    if not wait:
        return locked
    return bill_run_continue_posting(run_id=locked.pk, user=user)


def bill_run_continue_posting(*, run_id, user) -> BillRun:
    """Do the posting of a run in PostInProgress; idempotent (a run in any
    other status is left alone), so a sweeper may call it for a run whose
    worker died."""
    run = BillRun.objects.get(pk=run_id)
    if run.status != RunStatus.POST_IN_PROGRESS:
        return run
    advanced_ar = TenantSettings.current().advanced_ar_settlement
    try:
        with leases.Heartbeat(lambda: _renew_run(run_id, RunStatus.POST_IN_PROGRESS)):
            documents_post_for_run(
                bill_run_id=run.pk,
                user=user,
                include_credit_memos=advanced_ar,
                batch_size=settings.POST_BATCH_SIZE,
                workers=settings.POST_WORKERS,
            )
    except Exception as exc:
        logger.exception("posting %s failed", run.number)
        reason = str(exc) or exc.__class__.__name__
        with transaction.atomic():
            run = locks.lock_one(BillRun, run_id)
            if run.status == RunStatus.POST_IN_PROGRESS:
                run.last_post_error = reason
                _record(run, RunStatus.COMPLETED, user, note=f"Posting failed: {reason}")
                run.save(update_fields=["status", "last_post_error"])
                if run.auto_post:
                    _announce(run)
        raise BillRunActionRefused(
            f"Posting {run.number} failed: {reason}. Documents posted so far stay Posted; "
            "post the run again to post the rest."
        ) from exc
    with transaction.atomic():
        run = locks.lock_one(BillRun, run_id)
        if run.status != RunStatus.POST_IN_PROGRESS:
            return run
        run.posted_at = timezone.now()
        run.posted_by = acting_user(user)
        _record(run, RunStatus.POSTED, user)
        run.save(update_fields=["status", "posted_at", "posted_by"])
        bill_run_posted.send(sender=BillRun, run=run, user=acting_user(user))
        if run.auto_post:
            _announce(run)
    return run


def _auto_post(run):
    """Post a run that completed with auto-post, as its creator. The posting
    announces the run's end; if posting is refused (the run was taken on by
    someone else first) or fails, the end is announced all the same."""
    try:
        return bill_run_post(run=run, user=run.created_by, wait=True, automatic=True)
    except BillRunActionRefused as exc:
        logger.warning("auto-post of %s failed: %s", run.number, exc)
        return _announce_now(run.pk)


def document_post_refusal(document, *, lock=False) -> str:
    """billruns' rule for posting one document on its own
    (invoices.services.document_post, which billruns.apps registers it with):
    why ``document`` may not be posted while its run is in its status, or "".
    With ``lock``, the run's row is locked first (core.locks: a run before
    its documents), so a cancel of the run and the posting of one of its
    documents exclude each other."""
    if document.bill_run_id is None:
        return ""
    runs = BillRun.objects.filter(pk=document.bill_run_id)
    run = locks.locked(runs).get() if lock else runs.get()
    if run.status in DOCUMENT_POST_STATUSES:
        return ""
    return (
        f"{document.number} belongs to bill run {run.number}, which is "
        f"{RunStatus(run.status).label}: a document can be posted only once its run is Completed."
    )
