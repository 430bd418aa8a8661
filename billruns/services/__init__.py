"""Everything that changes a bill run, one module per flow:

- ``create``: a new Pending run (``bill_run_create``; a preview's real run:
  ``bill_run_create_from_preview``);
- ``execution``: start, chunks, finish, fail (``bill_run_start``,
  ``bill_run_process_chunk``, ``bill_run_finish_if_done``, ``bill_run_fail``,
  ``bill_run_execute``);
- ``counters``: a run's counters and totals;
- ``posting``: ``bill_run_post``, ``bill_run_continue_posting``;
- ``cancel``: ``bill_run_cancel``, ``bill_run_continue_canceling``,
  ``bill_run_delete``;
- ``retry``: ``bill_run_retry``;
- ``sweeper``: ``bill_runs_sweep``, ``bill_runs_sweep_leases``;
- ``email``: ``bill_run_email``;
- ``previews``: ``previews_sweep`` (previews older than 7 days deleted);
- ``common``: what they share (the refusal, the run's lock and transition,
  the queue, the announcement).

Callers import the services from here.
"""

from billruns.services.cancel import (
    CANCEL_STOPPED,
    bill_run_cancel,
    bill_run_continue_canceling,
    bill_run_delete,
)
from billruns.services.common import BillRunActionRefused
from billruns.services.create import (
    CHARGE_TYPE_VALUES,
    InvalidRunParameters,
    bill_run_create,
    bill_run_create_from_preview,
    charge_types_to_exclude,
)
from billruns.services.email import bill_run_email
from billruns.services.execution import (
    MAX_CHUNK_ATTEMPTS,
    bill_run_execute,
    bill_run_fail,
    bill_run_finish_if_done,
    bill_run_process_chunk,
    bill_run_start,
)
from billruns.services.posting import bill_run_continue_posting, bill_run_post
from billruns.services.previews import previews_sweep
from billruns.services.retry import bill_run_retry
from billruns.services.sweeper import bill_runs_sweep, bill_runs_sweep_leases

__all__ = [
    "CANCEL_STOPPED",
    "CHARGE_TYPE_VALUES",
    "MAX_CHUNK_ATTEMPTS",
    "BillRunActionRefused",
    "InvalidRunParameters",
    "bill_run_cancel",
    "bill_run_continue_canceling",
    "bill_run_continue_posting",
    "bill_run_create",
    "bill_run_create_from_preview",
    "bill_run_delete",
    "bill_run_email",
    "bill_run_execute",
    "bill_run_fail",
    "bill_run_finish_if_done",
    "bill_run_post",
    "bill_run_process_chunk",
    "bill_run_retry",
    "bill_run_start",
    "bill_runs_sweep",
    "bill_runs_sweep_leases",
    "charge_types_to_exclude",
    "previews_sweep",
]
