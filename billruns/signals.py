"""What the bill run engine announces. Other apps listen (notifications: the
owner's notice and email, the customers' documents; webhooks: the outbox);
the engine imports none of them. invoices.signals announces documents
posted and payments recorded the same way.

Every signal is sent synchronously INSIDE the transaction of the change it
announces, while that transaction holds the run's row lock, after the run's
new status is saved. So what a listener writes commits with the change, or
rolls back with it: a notice is never left behind for a change that did not
happen, and a change never commits without its notice. Two rules for
listeners follow:

- Slow work (sending an email, calling a URL) is not done in the listener:
  the listener queues it with ``transaction.on_commit``, so it starts once
  the change is committed and never for a change that was rolled back, and
  the run's lock is held only as long as the listener's writes take.
- An exception a listener lets out rolls the change back. A listener whose
  failure must not stop the change does its work in a savepoint
  (``with transaction.atomic():``) and catches the failure, as
  ``notifications.receivers`` does.

Every signal is sent with ``sender=BillRun`` and ``run``: the BillRun as it
is after the change. A preview (``run.preview``) announces its completion,
failure and end too (its owner's in-app notice); it is never posted, and
canceling it deletes it without ``bill_run_canceled``. A listener that
reaches outside (emails, webhooks) must skip a preview: previews send no
email and no webhook (INTERFACES.md, Previews). Listeners must be
idempotent: the sweeper may announce a run's end that a dead worker left
unannounced.
"""

from django.dispatch import Signal

# Processing -> Completed: every chunk is done, counters and totals are
# final (failures allowed: run.has_errors). An auto-post run is posted after
# this, in transactions of its own. Arguments: run.
bill_run_completed = Signal()

# -> Error: the run could not execute; what it generated is canceled.
# Arguments: run (run.error_message says why).
bill_run_failed = Signal()

# PostInProgress -> Posted: every Draft document it posts is Posted.
# Arguments: run, user (who posted it; None for nobody).
bill_run_posted = Signal()

# -> Canceled, from Pending or from CancelInProgress (its Draft documents
# are canceled and its charges due again). Arguments: run, user.
bill_run_canceled = Signal()

# The end of a run as its owner hears of it, once per run: Completed (for an
# auto-post run, at the end of its auto-post: Posted, or Completed again
# when posting failed) or Error. Sent in the transaction of that change,
# which marks the run announced (BillRun.announced_at); the sweeper sends it
# for a run left unannounced. Arguments: run.
bill_run_finished = Signal()
