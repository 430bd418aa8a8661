"""A Posted run's documents to its customers: each to its account's bill-to
contact with its PDF attached (``invoices.delivery``), when a run with
auto-email is posted (``receivers.on_bill_run_posted``) and when a clerk asks
(``billruns.services.bill_run_email``, which names ``EMAIL_TASK`` through
the setting ``BILLRUN_EMAIL_DOCUMENTS_TASK``: billruns sits below this app
and imports no mailer).
"""

import uuid

from django.db import transaction
from django_q.tasks import async_task

from billruns.models import BillRun
from core.users import acting_user
from invoices.delivery import EmailOutcome, documents_email
from invoices.models import Document, DocumentStatus

EMAIL_TASK = "notifications.tasks.email_run_documents"

# Documents handed to documents_email at a time: their ids are one keyset
# page (id > last), so memory stays flat however large the run; each document
# is still its own short transaction inside documents_email.
EMAIL_BATCH_SIZE = 500


def run_documents_email(
    *, run_id, user=None, resend=False, resend_request: uuid.UUID | None = None
) -> EmailOutcome:
    """Email the run's Posted documents to their accounts' bill-to contacts,
    skipping zero-amount invoices when the run says so: only documents never
    emailed before, or all of them with ``resend`` (one request, named by
    ``resend_request``).

    Transaction and locking: none of its own; each document is locked while
    it is emailed (see documents_email), so call it outside any transaction.
    Idempotent: without ``resend`` a second call, or a task delivered twice,
    sends nothing more; the same resend request made again sends each
    document at most once.
    """
    run = BillRun.objects.get(pk=run_id)
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


def run_documents_email_after_commit(*, run_id):
    """Queue the first emailing of the run's documents (no user: automatic)
    once the current transaction commits."""
    transaction.on_commit(lambda: async_task(EMAIL_TASK, run_id, group="email_run_documents"))
