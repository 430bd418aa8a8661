"""Listeners of the engine's signals (billruns.signals): thin, each calls a
service. They run inside the transaction of the run's change: what they
write commits with it, and what is slow (sending) is queued for after the
commit."""

import logging

from django.db import transaction

from notifications import documents, services

logger = logging.getLogger(__name__)


def on_bill_run_finished(sender, run, **kwargs):
    # A preview's end too: its owner's in-app notice (no email: services).
    # A problem here must not undo the run's end (a finished run is finished
    # whatever happens to its email): the savepoint takes back this
    # listener's writes alone, and the problem is logged.
    try:
        with transaction.atomic():
            services.run_finished_notify(run_id=run.pk)
    except Exception:
        logger.exception("notifying the end of bill run %s failed", run.number)


def on_bill_run_posted(sender, run, **kwargs):
    # A run created with auto-email emails its documents once posted
    # (BILLING_RULES.md); the emails go out after the posting commits.
    if run.auto_email and not run.preview:  # (a preview is never posted)
        documents.run_documents_email_after_commit(run_id=run.pk)
