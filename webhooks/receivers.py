"""Listeners of the engine's announcements (billruns.signals,
invoices.signals): each asks once which enabled endpoints want the event,
and only when one does, reads what the event reports and writes its outbox
rows (webhooks.services.events_write). They run inside the transaction of
the change, without a savepoint of their own: an outbox row commits with
the change it reports or not at all, so a change is never reported that did
not happen, and never happens unreported. Delivery is queued for after the
commit. A preview run (a run with ``preview`` true) sends nothing."""

from billruns.models import BillRun
from billruns.selectors import documents_as_dicts, run_summary
from invoices.models import Document
from webhooks import services
from webhooks.models import EventType


def _run_event(event_type, run):
    if getattr(run, "preview", False):
        return
    endpoints = services.endpoints_wanting(event_type)
    if not endpoints:
        return
    # Read again: the run's schedule, creator and failures as committed
    # with this change.
    run = BillRun.objects.select_related("created_by", "schedule", "retry_of").get(pk=run.pk)
    services.events_write(event_type, endpoints, [(f"{event_type}:{run.pk}", run_summary(run))])


def on_bill_run_completed(sender, run, **kwargs):
    _run_event(EventType.BILL_RUN_COMPLETED, run)


def on_bill_run_failed(sender, run, **kwargs):
    _run_event(EventType.BILL_RUN_FAILED, run)


def on_bill_run_posted(sender, run, **kwargs):
    _run_event(EventType.BILL_RUN_POSTED, run)


def on_bill_run_canceled(sender, run, **kwargs):
    _run_event(EventType.BILL_RUN_CANCELED, run)


def _documents_event(documents):
    endpoints = services.endpoints_wanting(EventType.DOCUMENT_POSTED)
    if not endpoints:
        return
    services.events_write(
        EventType.DOCUMENT_POSTED,
        endpoints,
        [
            (f"{EventType.DOCUMENT_POSTED}:{data['number']}", data)
            for data in documents_as_dicts(documents)
        ],
    )


def on_documents_posted(sender, document_ids, **kwargs):
    # A batch of a run's posting: document_ids stays unread (a lazy query)
    # unless an endpoint wants it.
    _documents_event(Document.objects.filter(pk__in=document_ids))


def on_document_posted(sender, document, **kwargs):
    _documents_event(Document.objects.filter(pk=document.pk))


def on_payment_recorded(sender, payment, document, **kwargs):
    endpoints = services.endpoints_wanting(EventType.PAYMENT_RECORDED)
    if not endpoints:
        return
    data = {
        "document": document.number,
        "account": document.account.number,
        "currency": document.currency,
        "amount": f"{payment.amount:.2f}",
        "date": payment.payment_date.isoformat(),
        "method": payment.method,
        "reference": payment.reference,
        "balance": f"{document.balance:.2f}",
    }
    services.events_write(
        EventType.PAYMENT_RECORDED,
        endpoints,
        [(f"{EventType.PAYMENT_RECORDED}:{payment.pk}", data)],
    )
