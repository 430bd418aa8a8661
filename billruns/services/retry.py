"""Retrying a bill run: a new run over exactly the failed accounts of a
Completed or Posted run."""

from django.db import transaction

from billruns.models import Action, BillRun, RunStatus
from billruns.services.common import BillRunActionRefused, _require
from billruns.services.create import bill_run_create
from billruns.services.execution import bill_run_execute
from core import locks


def bill_run_retry(*, run, user, wait=False) -> BillRun:
    """A new run over exactly the failed accounts of a Completed or Posted run,
    with its target date, invoice date, options and excluded charge types.

    A run has at most one retry that is not Canceled or Error: the run's row
    is locked while its retries are checked and the new one is created (and
    the database holds one live retry per run), so two clerks retrying at
    once make one run and the second is refused with its number.
    """
    with transaction.atomic():
        locked = locks.lock_one(BillRun, run.pk)
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
            exclude_charge_types=locked.exclude_charge_types,
            created_by=user,
            retry_of=locked,
            enqueue=not wait,
        )
    if wait:
        return bill_run_execute(run_id=new_run.pk)
    return new_run
