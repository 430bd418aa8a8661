"""A run's counters and totals, read from its documents and failures: final
when it completes, written again when it is canceled or fails."""

from collections import defaultdict
from decimal import Decimal

from django.db.models import Count

from billruns.models import BillRunFailure
from core.fields import ExactSum
from invoices.models import Document, DocumentStatus, DocumentTax, DocumentType


def _document_counters(run):
    rows = (
        # (all_objects: a preview's own documents count for it)
        Document.all_objects.filter(bill_run=run)
        .exclude(status=DocumentStatus.CANCELED)
        .values("document_type", "currency")
        .annotate(count=Count("id"), total=ExactSum("amount"))
    )
    counts = defaultdict(int)
    totals = defaultdict(lambda: Decimal("0.00"))
    for row in rows:
        counts[row["document_type"]] += row["count"]
        sign = -1 if row["document_type"] == DocumentType.CREDIT_MEMO else 1
        totals[row["currency"]] += sign * row["total"]
    return counts, {currency: f"{total:.2f}" for currency, total in sorted(totals.items())}


def _tax_totals(run):
    """Per currency, the tax in the run's totals: its documents' tax lines
    (not canceled), signed as computed, which is how ``totals`` counts them
    (an invoice's tax adds, a credit memo's, negative, takes off). One query;
    a currency appears only when some document of it has a tax line."""
    rows = (
        DocumentTax.objects.filter(document__bill_run=run)
        .exclude(document__status=DocumentStatus.CANCELED)
        .values("document__currency")
        .annotate(total=ExactSum("amount"))
        .order_by("document__currency")
    )
    return {row["document__currency"]: f"{row['total']:.2f}" for row in rows}


def _refresh_counters(run):
    counts, totals = _document_counters(run)
    run.invoices_count = counts[DocumentType.INVOICE]
    run.credit_memos_count = counts[DocumentType.CREDIT_MEMO]
    run.totals = totals
    run.tax_totals = _tax_totals(run)
    run.accounts_failed = (
        BillRunFailure.objects.filter(bill_run=run).values("account_id").distinct().count()
    )
    run.has_errors = run.accounts_failed > 0


COUNTER_FIELDS = [
    "invoices_count",
    "credit_memos_count",
    "totals",
    "tax_totals",
    "accounts_failed",
    "has_errors",
]
