"""Reads of bill runs shared by views, commands and tables."""

from billruns.models import BillRun
from invoices.models import Document, DocumentItem


def run_progress(run: BillRun) -> tuple[int, int]:
    """(accounts processed, accounts selected); kept current by each chunk."""
    return run.accounts_processed, run.accounts_selected


def _date(value):
    return value.isoformat() if value else None


def document_as_dict(document, items):
    return {
        "type": document.document_type,
        "number": document.number,
        "account": document.account.number,
        "status": document.status,
        "currency": document.currency,
        "amount": f"{document.amount:.2f}",
        "balance": f"{document.balance:.2f}",
        "invoice_date": _date(document.invoice_date),
        "due_date": _date(document.due_date),
        "items": [
            {
                "subscription": item.subscription.number,
                "charge": item.charge_name,
                "service_start": _date(item.service_start),
                "service_end": _date(item.service_end),
                "amount": f"{item.amount:.2f}",
            }
            for item in items
        ],
    }


def run_summary(run: BillRun, *, documents=False) -> dict:
    """The run as ``billrun show --json`` prints it (INTERFACES.md)."""
    failures = run.failures.select_related("account", "subscription").order_by("id")
    summary = {
        "number": run.number,
        "status": run.status,
        "has_errors": run.has_errors,
        "target_date": _date(run.target_date),
        "invoice_date": _date(run.invoice_date),
        "created_by": run.created_by.get_username() if run.created_by_id else None,
        "schedule": run.schedule.name if run.schedule_id else None,
        "retry_of": run.retry_of.number if run.retry_of_id else None,
        "auto_post": run.auto_post,
        "accounts_selected": run.accounts_selected,
        "accounts_processed": run.accounts_processed,
        "accounts_failed": run.accounts_failed,
        "invoices": run.invoices_count,
        "credit_memos": run.credit_memos_count,
        "totals": dict(run.totals),
        "failures": [
            {
                "account": failure.account.number,
                "subscription": failure.subscription.number if failure.subscription_id else None,
                "reason": failure.reason,
            }
            for failure in failures
        ],
    }
    if run.error_message:
        summary["error"] = run.error_message
    if run.last_post_error:
        summary["last_post_error"] = run.last_post_error
    if documents:
        docs = list(Document.objects.filter(bill_run=run).select_related("account").order_by("id"))
        items_by_document = {}
        for item in (
            DocumentItem.objects.filter(document__bill_run=run)
            .select_related("subscription")
            .order_by("document_id", "id")
        ):
            items_by_document.setdefault(item.document_id, []).append(item)
        summary["documents"] = [
            document_as_dict(document, items_by_document.get(document.id, [])) for document in docs
        ]
    return summary
