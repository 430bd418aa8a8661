"""What every flow of a bill run shares: the refusal, the run's lock and the
recording of a transition, the queue, the lease of a run's step and the
announcement of its end.

Each action is one function. It locks the run row (``core.locks``),
checks the transition table (``billruns.models.ALLOWED_ACTIONS``) under the
lock, writes the change and its event row in one short transaction, and
raises ``BillRunActionRefused`` (a message naming the run, its status and
what is allowed) when the rules say no. Slow work (generating, posting) runs
outside that transaction, on the task queue or, with ``wait=True``, in the
caller's process; every step is idempotent, so a redelivered task or a
sweeper taking up a dead worker's run does no harm.
"""

from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from billruns import leases
from billruns.models import (
    ALLOWED_ACTIONS,
    PREVIEW_ALLOWED_ACTIONS,
    Action,
    BillRun,
    BillRunEvent,
    RunStatus,
)
from billruns.signals import bill_run_finished
from core import locks
from core.users import acting_user


class BillRunActionRefused(Exception):
    """The rules refuse the action; the message says why, for a person."""


def _record(run, to_status, user, note=""):
    """Move ``run`` to ``to_status`` and write the event, in the caller's transaction."""
    BillRunEvent.objects.create(
        bill_run=run,
        from_status=run.status,
        to_status=to_status,
        user=acting_user(user),
        at=timezone.now(),
        note=note,
    )
    run.status = to_status


def _statuses_allowing(action, table=ALLOWED_ACTIONS):
    return [status.label for status, actions in table.items() if action in actions]


# What a preview never does, and what the clerk does instead.
PREVIEW_REFUSALS = {
    Action.POST: "posted",
    Action.RETRY: "retried",
}


def preview_refusal(run, what):
    """The refusal of ``what`` (posted, emailed, retried) for a preview."""
    return (
        f"{run.number} is a preview: a preview is never {what}. "
        "Create this run to make the real one."
    )


def _require(run, action):
    if not run.allows(action):
        if run.preview and action in PREVIEW_REFUSALS:
            raise BillRunActionRefused(preview_refusal(run, PREVIEW_REFUSALS[action]))
        table = PREVIEW_ALLOWED_ACTIONS if run.preview else ALLOWED_ACTIONS
        allowed = " or ".join(_statuses_allowing(action, table))
        if run.preview:
            raise BillRunActionRefused(
                f"{run.number} is a {RunStatus(run.status).label} preview: "
                f"a preview can be {_past_tense(action)} only when it is {allowed}."
            )
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


# Writes a completed run's review (billruns.review.run_review_write).
REVIEW_TASK = "billruns.tasks.write_review"


def _enqueue(func, *args):
    """Queue a task once the current transaction commits (never before: the
    worker must see what this transaction wrote)."""
    transaction.on_commit(lambda: async_task(func, *args, group=func.rsplit(".", 1)[-1]))


def _renew_run(run_id, status):
    leases.renew(BillRun, run_id, status=status)


def _announce(run):
    """Announce the end of ``run`` (``bill_run_finished``) and mark it
    announced, in the caller's transaction, which holds the run's lock and
    has saved its final status; a run already announced is not announced
    again."""
    if run.announced_at is not None:
        return run
    run.announced_at = timezone.now()
    BillRun.objects.filter(pk=run.pk).update(announced_at=run.announced_at)
    bill_run_finished.send(sender=BillRun, run=run)
    return run


def _announce_now(run_id):
    """Announce the end of a run that was left unannounced, in a transaction
    of its own (the sweeper, a refused auto-post)."""
    with transaction.atomic():
        return _announce(locks.lock_one(BillRun, run_id))
