"""Emailing a Posted run's documents to their accounts' bill-to contacts."""

import uuid

from billruns.models import BillRun, RunStatus
from billruns.services.common import BillRunActionRefused, _enqueue
from core.users import acting_user, acting_user_id
from invoices.delivery import EmailOutcome, documents_email
from invoices.models import Document, DocumentStatus

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
            acting_user_id(user),
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
            requested_by=acting_user(user),
        )
        last_id = batch[-1]
    return outcome
