"""Everything that changes a bill run: create, execute, post, cancel, retry, delete.

Each action is one function. It locks the run row (``select_for_update``),
checks the transition table (``billruns.models.ALLOWED_ACTIONS``) under the
lock, writes the change and its event row in one short transaction, and
raises ``BillRunActionRefused`` (a message naming the run, its status and
what is allowed) when the rules say no. Slow work (generating, posting) runs
outside that transaction, on the task queue or, with ``wait=True``, in the
caller's process; every step is idempotent, so a redelivered task or a
sweeper taking up a dead worker's run does no harm.
"""

import datetime
import logging
import uuid
from collections import defaultdict
from decimal import Decimal

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Count, Exists, OuterRef, Q, Subquery
from django.utils import timezone
from django_q.tasks import async_task

from billruns import generation, leases
from billruns.models import (
    ALLOWED_ACTIONS,
    Action,
    BillRun,
    BillRunChunk,
    BillRunEvent,
    BillRunFailure,
    ChunkStatus,
    RunStatus,
)
from billruns.signals import bill_run_finished, bill_run_posted
from core.dates import date_range_problem, parse_date
from core.fields import ExactSum
from customers.models import Account, Charge, Status, Subscription
from invoices import sequences
from invoices.delivery import EmailOutcome, documents_email
from invoices.models import Document, DocumentItem, DocumentStatus, DocumentType, TenantSettings
from invoices.services import documents_post_for_run

logger = logging.getLogger(__name__)

# A chunk whose attempts reach this number without finishing is not one
# account's fault (those are isolated): the run as a whole fails (Error).
MAX_CHUNK_ATTEMPTS = 3


class BillRunActionRefused(Exception):
    """The rules refuse the action; the message says why, for a person."""


class InvalidRunParameters(BillRunActionRefused):
    """Bad parameters for a new run; ``errors`` maps field names to messages."""

    def __init__(self, errors):
        self.errors = errors
        super().__init__(
            "; ".join(
                message if field == "__all__" else f"{field}: {message}"
                for field, messages in errors.items()
                for message in messages
            )
        )


# --- helpers -----------------------------------------------------------------


def _lock(run_id):
    return BillRun.objects.select_for_update().get(pk=run_id)


def _record(run, to_status, user, note=""):
    """Move ``run`` to ``to_status`` and write the event, in the caller's transaction."""
    BillRunEvent.objects.create(
        bill_run=run,
        from_status=run.status,
        to_status=to_status,
        user=user if user is not None and user.pk else None,
        at=timezone.now(),
        note=note,
    )
    run.status = to_status


def _statuses_allowing(action):
    return [status.label for status, actions in ALLOWED_ACTIONS.items() if action in actions]


def _require(run, action):
    if not run.allows(action):
        allowed = " or ".join(_statuses_allowing(action))
        raise BillRunActionRefused(
            f"{run.number} is {RunStatus(run.status).label}: "
            f"it can be {_past_tense(action)} only when it is {allowed}."
        )


def _past_tense(action):
    return {
        Action.POST: "posted",
        Action.CANCEL: "canceled",
        Action.DELETE: "deleted",
        Action.RETRY: "retried",
        Action.START: "started",
        Action.FINISH: "completed",
        Action.FAIL: "failed",
    }[action]


def _enqueue(func, *args):
    """Queue a task once the current transaction commits (never before: the
    worker must see what this transaction wrote)."""
    transaction.on_commit(lambda: async_task(func, *args, group=func.rsplit(".", 1)[-1]))


# --- create ------------------------------------------------------------------


DATE_LABELS = {"target_date": "The target date", "invoice_date": "The invoice date"}


def _parse_date(value, field, errors):
    """A date (or ``YYYY-MM-DD``) between 2000-01-01 and 2099-12-31, or None
    after adding the reason to ``errors``."""
    if isinstance(value, datetime.datetime):
        value = value.date()
    try:
        if isinstance(value, datetime.date):
            problem = date_range_problem(value)
            if problem:
                raise ValueError(f"{DATE_LABELS[field]} {problem}")
            return value
        return parse_date(str(value).strip(), label=DATE_LABELS[field])
    except ValueError as exc:
        errors.setdefault(field, []).append(f"{exc}.")
        return None


def _parse_int_list(values, field, low, high, errors, label):
    parsed = []
    for value in values:
        try:
            number = int(str(value).strip())
        except (TypeError, ValueError):
            errors.setdefault(field, []).append(f"{value!r} is not a whole number.")
            continue
        if not low <= number <= high:
            errors.setdefault(field, []).append(
                f"{label} must be between {low} and {high}, not {number}."
            )
            continue
        parsed.append(number)
    return sorted(set(parsed))


def bill_run_create(
    *,
    target_date,
    invoice_date=None,
    batches=(),
    bill_cycle_days=(),
    account=None,
    subscriptions=(),
    auto_post=False,
    auto_email=False,
    no_email_for_zero_amount=False,
    created_by=None,
    schedule=None,
    occurrence=None,
    retry_of=None,
    request_key=None,
    enqueue=True,
) -> BillRun:
    """Create a Pending run and, unless ``enqueue`` is false, queue it.

    Every parameter is checked first; any problem raises InvalidRunParameters
    and nothing is created. ``account`` and ``subscriptions`` take numbers or
    model instances. ``request_key`` makes a repeated request (a double
    submit) return the run the first one made.

    Transaction: one, for the run, its selection and its creation event; the
    task is queued after it commits.
    """
    if request_key:
        existing = BillRun.objects.filter(request_key=request_key).first()
        if existing:
            return existing
    errors = {}
    target = _parse_date(target_date, "target_date", errors)
    # Only None means "the target date": an empty value is a mistake (a
    # script's empty variable), not a choice. The invoice date may be before
    # or after the target date (INTERFACES.md, "Numbers and dates").
    invoice = target if invoice_date is None else _parse_date(invoice_date, "invoice_date", errors)
    batch_list = _parse_int_list(batches, "batches", 1, 50, errors, "A batch")
    day_list = _parse_int_list(
        bill_cycle_days, "bill_cycle_days", 1, 31, errors, "A bill cycle day"
    )

    account_obj = None
    subscription_objs = []
    # Only None means "no account": an empty number (a script's empty
    # variable) must not select every account.
    if isinstance(account, str) and not account.strip():
        errors.setdefault("account", []).append("Enter the account number.")
    elif account is not None:
        if batch_list or day_list:
            errors.setdefault("__all__", []).append(
                "Select either one account or batches and bill cycle days, not both."
            )
        account_obj = (
            account
            if isinstance(account, Account)
            else Account.objects.filter(number=str(account).strip()).first()
        )
        if account_obj is None:
            errors.setdefault("account", []).append(f"No account has the number {account!r}.")
        elif account_obj.status != Status.ACTIVE:
            errors.setdefault("account", []).append(
                f"Account {account_obj.number} is {account_obj.status}; "
                "only Active accounts are billed."
            )
    for subscription in subscriptions:
        if account is None:
            errors.setdefault("subscriptions", []).append(
                "Subscriptions can be chosen only together with their account."
            )
            break
        sub = (
            subscription
            if isinstance(subscription, Subscription)
            else Subscription.objects.filter(number=str(subscription).strip()).first()
        )
        if sub is None:
            errors.setdefault("subscriptions", []).append(
                f"No subscription has the number {subscription!r}."
            )
        elif account_obj is not None and sub.account_id != account_obj.id:
            errors.setdefault("subscriptions", []).append(
                f"Subscription {sub.number} belongs to account {sub.account.number}, "
                f"not to {account_obj.number}."
            )
        elif sub.status != Status.ACTIVE:
            errors.setdefault("subscriptions", []).append(
                f"Subscription {sub.number} is {sub.status}; only Active subscriptions are billed."
            )
        else:
            subscription_objs.append(sub)
    if errors:
        raise InvalidRunParameters(errors)

    try:
        with transaction.atomic():
            run = BillRun.objects.create(
                number=sequences.allocate("BR")[0],
                target_date=target,
                invoice_date=invoice,
                account=account_obj,
                batches=batch_list,
                bill_cycle_days=day_list,
                auto_post=auto_post,
                auto_email=auto_email,
                no_email_for_zero_amount=no_email_for_zero_amount,
                created_by=created_by,
                schedule=schedule,
                occurrence=occurrence,
                retry_of=retry_of,
                request_key=request_key or None,
            )
            if subscription_objs:
                run.subscriptions.set(subscription_objs)
            BillRunEvent.objects.create(
                bill_run=run,
                from_status="",
                to_status=RunStatus.PENDING,
                user=created_by,
                at=run.created_at,
                note="Retry of " + retry_of.number if retry_of else "",
            )
            if enqueue:
                _enqueue("billruns.tasks.start_bill_run", run.pk)
    except IntegrityError:
        # A concurrent request with the same key (or schedule occurrence) won.
        if request_key:
            return BillRun.objects.get(request_key=request_key)
        if schedule is not None and occurrence is not None:
            return BillRun.objects.get(schedule=schedule, occurrence=occurrence)
        raise
    return run


# --- execute -----------------------------------------------------------------


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

    Returns the ids of the chunks still to do (all of them when this call
    started the run; the unfinished ones when the run was already
    Processing, so a redelivered start task picks up where it stopped).
    A selection that cannot be evaluated ends the run in Error.
    """
    try:
        return _start(run_id, enqueue_chunks)
    except Exception as exc:
        logger.exception("bill run %s: selection failed", run_id)
        bill_run_fail(run_id=run_id, message=f"The selection could not be evaluated: {exc}")
        return []


def _start(run_id, enqueue_chunks):
    with transaction.atomic():
        run = _lock(run_id)
        if run.status == RunStatus.PROCESSING:
            pending = list(
                run.chunks.filter(status=ChunkStatus.PENDING).values_list("id", flat=True)
            )
        elif run.status != RunStatus.PENDING:
            return []
        else:
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
            run.started_at = run.heartbeat_at = timezone.now()
            _record(run, RunStatus.PROCESSING, None)
            run.save(update_fields=["status", "accounts_selected", "started_at", "heartbeat_at"])
            pending = list(run.chunks.values_list("id", flat=True))
        if enqueue_chunks:
            for chunk_id in pending:
                _enqueue("billruns.tasks.process_bill_run_chunk", chunk_id)
            if not pending:
                transaction.on_commit(lambda: bill_run_finish_if_done(run_id=run_id))
    return pending


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
        chunk = BillRunChunk.objects.select_for_update().filter(pk=chunk_id).first()
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


def _document_counters(run):
    rows = (
        Document.objects.filter(bill_run=run)
        .exclude(status=DocumentStatus.CANCELED)
        .values("document_type", "currency")
        .annotate(count=Count("id"), total=ExactSum("amount"))
    )
    counts = defaultdict(int)
    totals = defaultdict(lambda: Decimal("0.00"))
    for row in rows:
        counts[row["document_type"]] += row["count"]
        sign = -1 if row["document_type"] == DocumentType.CREDIT_MEMO else 1
        totals[row["currency"]] += sign * row["total"]
    return counts, {currency: f"{total:.2f}" for currency, total in sorted(totals.items())}


def _refresh_counters(run):
    counts, totals = _document_counters(run)
    run.invoices_count = counts[DocumentType.INVOICE]
    run.credit_memos_count = counts[DocumentType.CREDIT_MEMO]
    run.totals = totals
    run.accounts_failed = (
        BillRunFailure.objects.filter(bill_run=run).values("account_id").distinct().count()
    )
    run.has_errors = run.accounts_failed > 0


COUNTER_FIELDS = ["invoices_count", "credit_memos_count", "totals", "accounts_failed", "has_errors"]


def bill_run_finish_if_done(*, run_id):
    """Processing -> Completed once every chunk is done; then auto-post, then announce.

    Safe to call any number of times, from any chunk: the run row lock makes
    exactly one caller complete the run.
    """
    # Every chunk but the last finds chunks still pending: it need not queue
    # for the run's row lock to learn that.
    if BillRunChunk.objects.filter(bill_run_id=run_id, status=ChunkStatus.PENDING).exists():
        return BillRun.objects.get(pk=run_id)
    with transaction.atomic():
        run = _lock(run_id)
        if run.status != RunStatus.PROCESSING:
            return run
        if run.chunks.filter(status=ChunkStatus.PENDING).exists():
            return run
        _refresh_counters(run)
        run.completed_at = timezone.now()
        _record(run, RunStatus.COMPLETED, None, note="with errors" if run.has_errors else "")
        run.save(update_fields=["status", "completed_at", *COUNTER_FIELDS])
    _refresh_statistics(run)
    if run.auto_post:
        run = _auto_post(run)
    return _announce(run)


# A run that wrote this many documents changes the tables enough for the
# planner's statistics to mislead it until autovacuum catches up. (Seen at
# 2,000: canceling a 2,000-account run right after the accounts were
# imported took 165 s on statistics from before the run, 3 s after ANALYZE.)
ANALYZE_AFTER_DOCUMENTS = 1000


def _refresh_statistics(run):
    """ANALYZE the tables a large run has just filled (PostgreSQL).

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
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {', '.join(tables)}")
    except DatabaseError as exc:  # e.g. a database user that does not own the tables
        logger.warning("could not refresh planner statistics after %s: %s", run.number, exc)


def _auto_post(run):
    try:
        return bill_run_post(run=run, user=run.created_by, wait=True, automatic=True)
    except BillRunActionRefused as exc:
        logger.warning("auto-post of %s failed: %s", run.number, exc)
        run.refresh_from_db()
        return run


def _announce(run):
    """Tell the listeners (notifications) that the run ended, then mark it
    announced. Listeners are idempotent: if this process dies between the
    two, the sweeper announces the run again and nothing is sent twice."""
    bill_run_finished.send(sender=BillRun, run=run)
    BillRun.objects.filter(pk=run.pk).update(announced_at=timezone.now())
    return run


def _undo_generated(run, user):
    """Cancel the run's Draft documents and roll back exactly the
    charged-through dates they advanced. Runs inside the caller's
    transaction, which holds the run's lock."""
    drafts = Document.objects.filter(bill_run=run, status=DocumentStatus.DRAFT)
    live_items = DocumentItem.objects.filter(document__in=drafts, document_canceled=False)
    # Every item of a charge in one run carries the same previous value:
    # the charge's charged-through date before the run.
    Charge.objects.filter(id__in=live_items.values("charge_id")).update(
        charged_through_date=Subquery(
            live_items.filter(charge_id=OuterRef("pk"))
            .order_by("service_start")
            .values("previous_charged_through")[:1]
        )
    )
    DocumentItem.objects.filter(document__in=drafts).update(document_canceled=True)
    drafts.update(
        status=DocumentStatus.CANCELED,
        canceled_at=timezone.now(),
        canceled_by=user if user is not None and user.pk else None,
    )


def bill_run_fail(*, run_id, message):
    """Processing -> Error: undo what the run generated, as cancel does."""
    with transaction.atomic():
        run = _lock(run_id)
        if run.status not in (RunStatus.PROCESSING, RunStatus.PENDING):
            return run
        _undo_generated(run, None)
        _refresh_counters(run)
        run.error_message = message
        run.completed_at = timezone.now()
        _record(run, RunStatus.ERROR, None, note=message)
        run.save(update_fields=["status", "error_message", "completed_at", *COUNTER_FIELDS])
    return _announce(run)


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


# --- post --------------------------------------------------------------------


def bill_run_post(*, run, user, wait=False, automatic=False) -> BillRun:
    """Completed -> PostInProgress -> Posted.

    Posts every Draft invoice of the run, and its Draft credit memos when
    Advanced AR Settlement is on, in batches (invoices.services); documents
    already posted stay exactly as they are. If posting fails, what was
    posted stays Posted, the run returns to Completed with the reason, and
    BillRunActionRefused is raised; posting again posts the rest.

    With ``wait`` the posting happens in this process; otherwise it is
    queued and the run is PostInProgress when this returns.
    """
    with transaction.atomic():
        locked = _lock(run.pk)
        _require(locked, Action.POST)
        locked.last_post_error = ""
        locked.heartbeat_at = timezone.now()
        _record(locked, RunStatus.POST_IN_PROGRESS, user, note="auto-post" if automatic else "")
        locked.save(update_fields=["status", "last_post_error", "heartbeat_at"])
        if not wait:
            _enqueue("billruns.tasks.continue_posting", locked.pk, user.pk if user else None)
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
            run = _lock(run_id)
            if run.status == RunStatus.POST_IN_PROGRESS:
                run.last_post_error = reason
                _record(run, RunStatus.COMPLETED, user, note=f"Posting failed: {reason}")
                run.save(update_fields=["status", "last_post_error"])
        raise BillRunActionRefused(
            f"Posting {run.number} failed: {reason}. Documents posted so far stay Posted; "
            "post the run again to post the rest."
        ) from exc
    with transaction.atomic():
        run = _lock(run_id)
        if run.status != RunStatus.POST_IN_PROGRESS:
            return run
        run.posted_at = timezone.now()
        run.posted_by = user if user is not None and user.pk else None
        _record(run, RunStatus.POSTED, user)
        run.save(update_fields=["status", "posted_at", "posted_by"])
        transaction.on_commit(lambda: bill_run_posted.send(sender=BillRun, run=run))
        if run.auto_email:
            _enqueue("billruns.tasks.email_bill_run_documents", run.pk)
    return run


# --- cancel ------------------------------------------------------------------

# The start of the note on the event of a cancel that found, when it came to
# be done, that another run had billed the run's charges again meanwhile.
CANCEL_STOPPED = "Cancel stopped:"


def _cancel_blocker(run):
    """Why a Completed run cannot be canceled, or None."""
    if Document.objects.filter(bill_run=run, status=DocumentStatus.POSTED).exists():
        return f"{run.number} has posted documents; a run with posted documents cannot be canceled."
    # A live item of another run that bills one of this run's charges for a
    # later period: canceling this run would roll the charge back under it.
    run_items = DocumentItem.objects.filter(document__bill_run=run, document_canceled=False)
    later = (
        DocumentItem.objects.filter(document_canceled=False)
        .exclude(document__bill_run=run)
        .filter(
            Exists(
                run_items.filter(
                    charge_id=OuterRef("charge_id"), service_start__lt=OuterRef("service_start")
                )
            )
        )
        .select_related("document__bill_run")
        .order_by("document_id")
        .first()
    )
    if later is not None:
        other = later.document.bill_run.number if later.document.bill_run_id else later.document
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
    racing roll back once.
    """
    with transaction.atomic():
        locked = _lock(run.pk)
        _require(locked, Action.CANCEL)
        if locked.status == RunStatus.PENDING:
            locked.canceled_at = timezone.now()
            locked.canceled_by = user if user is not None and user.pk else None
            _record(locked, RunStatus.CANCELED, user)
            locked.save(update_fields=["status", "canceled_at", "canceled_by"])
            return locked
        blocker = _cancel_blocker(locked)
        if blocker:
            raise BillRunActionRefused(blocker)
        locked.heartbeat_at = timezone.now()
        _record(locked, RunStatus.CANCEL_IN_PROGRESS, user)
        locked.save(update_fields=["status", "heartbeat_at"])
        if not wait:
            _enqueue("billruns.tasks.continue_canceling", locked.pk, user.pk if user else None)
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


def _renew_run(run_id, status):
    leases.renew(BillRun, run_id, status=status)


def _continue_canceling(run_id, user):
    with transaction.atomic():
        run = _lock(run_id)
        if run.status != RunStatus.CANCEL_IN_PROGRESS:
            return run
        accounts = Account.objects.filter(
            id__in=Document.objects.filter(bill_run=run, status=DocumentStatus.DRAFT).values(
                "account_id"
            )
        )
        # Locked in id order, as generation locks them: no deadlock.
        list(accounts.select_for_update().order_by("id").values_list("id", flat=True))
        blocker = _cancel_blocker(run)
        if blocker:
            _record(run, RunStatus.COMPLETED, user, note=f"{CANCEL_STOPPED} {blocker}")
            run.save(update_fields=["status"])
            return run
        _undo_generated(run, user)
        _refresh_counters(run)
        run.canceled_at = timezone.now()
        run.canceled_by = user if user is not None and user.pk else None
        _record(run, RunStatus.CANCELED, user)
        run.save(update_fields=["status", "canceled_at", "canceled_by", *COUNTER_FIELDS])
    return run


# --- retry and delete --------------------------------------------------------


def bill_run_retry(*, run, user, wait=False) -> BillRun:
    """A new run over exactly the failed accounts of a Completed or Posted run,
    with its target date, invoice date and auto-post.

    A run has at most one retry that is not Canceled or Error: the run's row
    is locked while its retries are checked and the new one is created (and
    the database holds one live retry per run), so two clerks retrying at
    once make one run and the second is refused with its number.
    """
    with transaction.atomic():
        locked = _lock(run.pk)
        _require(locked, Action.RETRY)
        if not locked.failures.exists():
            raise BillRunActionRefused(
                f"{locked.number} is {RunStatus(locked.status).label} and has no failed "
                "accounts to retry."
            )
        live = (
            locked.retries.exclude(status__in=[RunStatus.CANCELED, RunStatus.ERROR])
            .order_by("id")
            .first()
        )
        if live is not None:
            raise BillRunActionRefused(
                f"{locked.number} is already retried by {live.number} "
                f"({RunStatus(live.status).label}): retry {live.number} instead, "
                f"or cancel it to retry {locked.number} again."
            )
        new_run = bill_run_create(
            target_date=locked.target_date,
            invoice_date=locked.invoice_date,
            auto_post=locked.auto_post,
            auto_email=locked.auto_email,
            no_email_for_zero_amount=locked.no_email_for_zero_amount,
            created_by=user,
            retry_of=locked,
            enqueue=not wait,
        )
    if wait:
        return bill_run_execute(run_id=new_run.pk)
    return new_run


def bill_run_delete(*, run, user) -> None:
    """Remove a Canceled or Error run with its canceled documents. A run
    holding a document that is not Canceled is refused: a posted document is
    never deleted."""
    with transaction.atomic():
        locked = _lock(run.pk)
        _require(locked, Action.DELETE)
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
        Document.objects.filter(bill_run=locked).delete()
        locked.delete()


# --- the sweeper ---------------------------------------------------------------


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
    # A run whose worker died between completing and auto-posting or
    # announcing: finish what that worker would have done.
    grace = now - datetime.timedelta(seconds=pending_grace_seconds)
    unposted = BillRun.objects.filter(
        status=RunStatus.COMPLETED, auto_post=True, completed_at__lt=grace
    ).exclude(events__to_status=RunStatus.POST_IN_PROGRESS)
    for run in unposted:
        _announce(_auto_post(run))
    unannounced = BillRun.objects.filter(
        status__in=[RunStatus.COMPLETED, RunStatus.POSTED, RunStatus.ERROR],
        announced_at__isnull=True,
        completed_at__lt=grace,
        completed_at__gt=now - datetime.timedelta(days=1),
    )
    for run in unannounced:
        _announce(run)


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
            stuck = list(stuck.select_for_update(skip_locked=True).values_list("id", flat=True))
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
        claimed = list(
            BillRunChunk.objects.select_for_update(skip_locked=True)
            .filter(pk__in=chunk_ids, status=ChunkStatus.PENDING, leased_at__lt=expired)
            .exclude(_live_holder(expired))
            .values_list("id", flat=True)
        )
        BillRunChunk.objects.filter(pk__in=claimed).update(leased_at=now)
    for chunk_id in claimed:
        logger.info("chunk %s: its worker or its task is gone; queued again", chunk_id)
        async_task("billruns.tasks.process_bill_run_chunk", chunk_id, group="chunk")


# --- email the documents -------------------------------------------------------

# Documents handed to documents_email at a time: their ids are one keyset
# page (id > last), so memory stays flat however large the run; each document
# is still its own short transaction inside documents_email.
EMAIL_BATCH_SIZE = 500


def bill_run_email(
    *, run, user, resend=False, wait=True, resend_request: uuid.UUID | None = None
) -> EmailOutcome | None:
    """Email a Posted run's Posted documents to their accounts' bill-to
    contacts, PDF attached (invoices.delivery.documents_email), skipping
    zero-amount invoices when the run says so.

    Only documents never emailed before, or all of them with ``resend``.
    Refused (BillRunActionRefused) unless the run is Posted. With ``wait``
    the emails go out in this process and the outcome is returned;
    otherwise the task ``email_bill_run_documents`` is queued after commit
    and None is returned.

    Transaction and locking: none of its own; each document is locked while
    it is emailed (see documents_email). Idempotent: without ``resend`` a
    second call, or a task delivered twice, sends nothing more; a resend is
    one request named by ``resend_request`` (a new key when not given, made
    before the task is queued), and the same request made again sends each
    document at most once.
    """
    run = BillRun.objects.get(pk=run.pk)
    if run.status != RunStatus.POSTED:
        raise BillRunActionRefused(
            f"{run.number} is {RunStatus(run.status).label}: "
            "its documents can be emailed only when it is Posted."
        )
    if resend and resend_request is None:
        resend_request = uuid.uuid4()
    if not wait:
        _enqueue(
            "billruns.tasks.email_bill_run_documents",
            run.pk,
            user.pk if user is not None and user.pk else None,
            resend,
            str(resend_request) if resend else None,
        )
        return None
    outcome = EmailOutcome()
    posted = Document.objects.filter(bill_run=run, status=DocumentStatus.POSTED).order_by("id")
    posted_ids = posted.values_list("id", flat=True)
    last_id = 0
    while batch := list(posted_ids.filter(id__gt=last_id)[:EMAIL_BATCH_SIZE]):
        outcome += documents_email(
            document_ids=batch,
            resend=resend,
            resend_request=resend_request,
            skip_zero_amount=run.no_email_for_zero_amount,
            requested_by=user if user is not None and user.pk else None,
        )
        last_id = batch[-1]
    return outcome
