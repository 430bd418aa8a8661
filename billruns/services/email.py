"""Emailing a Posted run's documents to their accounts' bill-to contacts.

billruns decides whether a run's documents may be emailed; sending them is
the work of the code that sends customer emails, which sits above billruns
(notifications.documents). billruns names it only by the task in the
setting ``BILLRUN_EMAIL_DOCUMENTS_TASK`` (billing_site/settings.py wires
it, as ``EMAIL_BACKEND`` names a mail backend), and imports no mailer.
"""

import uuid

from django.conf import settings
from django.utils.module_loading import import_string

from billruns.models import BillRun, RunStatus
from billruns.services.common import BillRunActionRefused, _enqueue, preview_refusal
from core.users import acting_user_id


def bill_run_email(*, run, user, resend=False, wait=True, resend_request: uuid.UUID | None = None):
    """Email a Posted run's Posted documents to their accounts' bill-to
    contacts, PDF attached, skipping zero-amount invoices when the run says
    so: only documents never emailed before, or all of them with ``resend``.

    Refused (BillRunActionRefused) unless the run is Posted, and always for a
    preview. With ``wait``
    the task runs in this process and its outcome (sent, skipped, failed;
    ``invoices.delivery.EmailOutcome``) is returned; otherwise the task is
    queued after commit and None is returned.

    Transaction and locking: none of its own; each document is locked while
    it is emailed. Idempotent: without ``resend`` a second call, or a task
    delivered twice, sends nothing more; a resend is one request named by
    ``resend_request`` (a new key when not given, made before the task is
    queued), and the same request made again sends each document at most
    once.
    """
    run = BillRun.objects.get(pk=run.pk)
    if run.preview:
        raise BillRunActionRefused(preview_refusal(run, "emailed"))
    if run.status != RunStatus.POSTED:
        raise BillRunActionRefused(
            f"{run.number} is {RunStatus(run.status).label}: "
            "its documents can be emailed only when it is Posted."
        )
    if resend and resend_request is None:
        resend_request = uuid.uuid4()
    task = settings.BILLRUN_EMAIL_DOCUMENTS_TASK
    arguments = (run.pk, acting_user_id(user), resend, str(resend_request) if resend else None)
    if not wait:
        _enqueue(task, *arguments)
        return None
    return import_string(task)(*arguments)
